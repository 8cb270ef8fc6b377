package alloc

import (
	"cmp"
	"maps"
	"slices"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

// place is one CPU's position, in the shape kubelet's tests (and kubecmp's
// topology JSON) describe machines: core is unique across the machine.
type place struct {
	CPU    int  `json:"cpu"`
	Core   *int `json:"core"`
	Socket int  `json:"socket"`
	NUMA   *int `json:"numa"`
	L3     *int `json:"l3"`
}

// buildTopology turns per-CPU places into a topology model. Missing core,
// NUMA and L3 fields default as kubecmp documents: own core, node 0, socket.
func buildTopology(tb testing.TB, places []place, isolated cpuset.CPUSet) *topology.Topology {
	tb.Helper()
	type coreAcc struct {
		cpus   cpuset.Builder
		socket int
		numa   int
		l3     int
	}
	cores := map[int]*coreAcc{}
	var keys []int
	sockets := map[int]*cpuset.Builder{}
	nodes := map[int]*cpuset.Builder{}
	llcs := map[int]*cpuset.Builder{}
	var online cpuset.Builder
	add := func(m map[int]*cpuset.Builder, k, cpu int) {
		if m[k] == nil {
			m[k] = &cpuset.Builder{}
		}
		m[k].Add(cpu)
	}
	for _, p := range places {
		core, numa, l3 := p.CPU, 0, p.Socket
		if p.Core != nil {
			core = *p.Core
		}
		if p.NUMA != nil {
			numa = *p.NUMA
		}
		if p.L3 != nil {
			l3 = *p.L3
		}
		if cores[core] == nil {
			cores[core] = &coreAcc{socket: p.Socket, numa: numa, l3: l3}
			keys = append(keys, core)
		}
		cores[core].cpus.Add(p.CPU)
		online.Add(p.CPU)
		add(sockets, p.Socket, p.CPU)
		add(nodes, numa, p.CPU)
		add(llcs, l3, p.CPU)
	}
	t := &topology.Topology{Online: online.Set(), Isolated: isolated}
	for _, id := range slices.Sorted(maps.Keys(sockets)) {
		t.Sockets = append(t.Sockets, topology.Socket{ID: id, CPUs: sockets[id].Set()})
		t.Dies = append(t.Dies, topology.Die{Socket: id, ID: 0, CPUs: sockets[id].Set()})
	}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		t.NUMANodes = append(t.NUMANodes, topology.NUMANode{ID: id, CPUs: nodes[id].Set()})
	}
	l3ids := slices.SortedFunc(maps.Keys(llcs), func(a, b int) int { return cmp.Compare(llcs[a].Set().Min(), llcs[b].Set().Min()) })
	llcIndex := map[int]int{}
	for i, id := range l3ids {
		llcIndex[id] = i
		t.LLCs = append(t.LLCs, topology.LLC{Index: i, ID: id, CPUs: llcs[id].Set()})
	}
	slices.SortFunc(keys, func(a, b int) int { return cmp.Compare(cores[a].cpus.Set().Min(), cores[b].cpus.Set().Min()) })
	for i, k := range keys {
		c := cores[k]
		t.Cores = append(t.Cores, topology.Core{Index: i, CoreID: k, CPUs: c.cpus.Set(), Socket: c.socket, NUMA: c.numa, LLC: llcIndex[c.l3]})
	}
	if err := t.Index(); err != nil {
		tb.Fatalf("test topology: %v", err)
	}
	return t
}

// shape describes a regular machine compactly. Threads of core c are
// c, c+C, c+2C... where C is the number of cores (Intel's numbering), unless
// adjacent is set (threads of a core are consecutive CPUs, as on POWER).
type shape struct {
	sockets, numaPerSocket, l3PerNUMA, coresPerL3, threads int
	adjacent                                               bool
}

func (s shape) places() []place {
	var out []place
	cores := s.sockets * s.numaPerSocket * s.l3PerNUMA * s.coresPerL3
	for c := 0; c < cores; c++ {
		l3 := c / s.coresPerL3
		numa := l3 / s.l3PerNUMA
		socket := numa / s.numaPerSocket
		for th := 0; th < s.threads; th++ {
			cpu := c + th*cores
			if s.adjacent {
				cpu = c*s.threads + th
			}
			out = append(out, place{CPU: cpu, Core: ptr(c), Socket: socket, NUMA: ptr(numa), L3: ptr(l3)})
		}
	}
	return out
}

func ptr(i int) *int { return &i }

func (s shape) build(tb testing.TB) *topology.Topology {
	return buildTopology(tb, s.places(), cpuset.CPUSet{})
}
