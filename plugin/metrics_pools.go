package plugin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/topology"
)

// poolCollector reads the pinning state at scrape time.
type poolCollector struct{ m *Metrics }

// poolStates split the online CPUs, and the cores, into parts that add up
// to all of them: each is in exactly one. The whole is not among them
// (sum them), and reserved CPUs are not counted again inside shared.
var poolStates = []string{"exclusive", "withheld", "reserved", "shared", "isolated"}

var (
	coresDesc = prometheus.NewDesc("coreguard_cores",
		"Online physical cores by state, adding up to all of them: exclusive (held by pinned containers), withheld (held by a pinned container that runs on only some of its threads), "+
			"reserved (reservedSystemCPUs, in the shared pool), shared (the rest of the shared pool), isolated (isolated CPUs not given out).",
		[]string{"state"}, nil)
	cpusDesc = prometheus.NewDesc("coreguard_cpus",
		"Online logical CPUs by pool, adding up to all of them: exclusive, withheld (idle siblings of odd requests), reserved (reservedSystemCPUs, in the shared pool), "+
			"shared (the rest of the shared pool), isolated (isolated CPUs not given out).",
		[]string{"pool"}, nil)
	exclusiveDesc = prometheus.NewDesc("coreguard_exclusive_containers",
		"Containers holding exclusive CPUs.", nil, nil)
	sharedDesc = prometheus.NewDesc("coreguard_shared_containers",
		"Containers running in the shared pool.", nil, nil)
	pendingDesc = prometheus.NewDesc("coreguard_unstarted_containers",
		"Containers coreguard answered that have not started yet (counted among the exclusive and shared ones too): what they hold is given back after startTimeout.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- coresDesc
	ch <- cpusDesc
	ch <- exclusiveDesc
	ch <- sharedDesc
	ch <- pendingDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	p, _ := c.m.watched()
	if p == nil {
		return
	}
	s := p.Snapshot()
	topo := p.Topology()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	cpus := cpuParts(s, topo.Online)
	cores := coreParts(cpus, topo.Cores)
	for _, state := range poolStates {
		gauge(cpusDesc, cpus[state].Size(), state)
		gauge(coresDesc, cores[state], state)
	}
	gauge(exclusiveDesc, len(s.Allocations))
	gauge(sharedDesc, s.SharedContainers)
	gauge(pendingDesc, s.Unstarted)
}

// cpuParts splits the online CPUs by poolStates. Whatever the allocator
// neither gives out nor shares is isolated (isolatedCPUs keeps isolated
// CPUs out of the shared pool).
func cpuParts(s pinning.Snapshot, online cpuset.CPUSet) map[string]cpuset.CPUSet {
	reserved := s.Reserved.Intersection(s.Shared)
	used := s.Exclusive.Union(s.Withheld).Union(s.Shared)
	return map[string]cpuset.CPUSet{
		"exclusive": s.Exclusive,
		"withheld":  s.Withheld,
		"reserved":  reserved,
		"shared":    s.Shared.Difference(reserved),
		"isolated":  online.Difference(used),
	}
}

// coreParts counts the cores by poolStates: a core is in the first state
// any of its threads is in (a pinned container's core with a withheld
// thread is withheld; a shared core with an isolated thread is shared).
func coreParts(cpus map[string]cpuset.CPUSet, cores []topology.Core) map[string]int {
	n := map[string]int{}
	for _, core := range cores {
		n[coreState(core.CPUs, cpus)]++
	}
	return n
}

func coreState(threads cpuset.CPUSet, parts map[string]cpuset.CPUSet) string {
	for _, state := range []string{"withheld", "exclusive", "reserved", "shared"} {
		if threads.Intersects(parts[state]) {
			return state
		}
	}
	return "isolated"
}
