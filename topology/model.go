// Package topology models the host's CPU topology as read from sysfs: online,
// offline and isolated CPUs, sockets, dies, NUMA nodes, last-level-cache
// groups, physical cores and their sibling threads.
//
// The model is plain data. It is built once by Read (from a sysfs root) or by
// tests, and then only read: the allocator and the plugin never change it.
package topology

import (
	"fmt"

	"github.com/coreguard/coreguard/cpuset"
)

// Topology is one machine's CPU topology. Only online CPUs appear in sockets,
// dies, NUMA nodes, LLC groups and cores; offline CPUs are listed in Offline.
type Topology struct {
	// Online are the CPUs the kernel runs (cpu/online).
	Online cpuset.CPUSet
	// Offline are present CPUs that are not online (cpu/offline, or present
	// minus online). They have no topology: the kernel removes it.
	Offline cpuset.CPUSet
	// Isolated are the CPUs taken out of the scheduler's load balancing at
	// boot (isolcpus=, cpu/isolated); a subset of Online. Empty when none.
	Isolated cpuset.CPUSet
	// SMTControl is the content of cpu/smt/control ("on", "off",
	// "forceoff", "notsupported", "notimplemented"), or "" when the file is
	// absent (older kernels, some architectures).
	SMTControl string

	// Sockets, ordered by ID.
	Sockets []Socket
	// Dies, ordered by (Socket, ID). A machine without die information has
	// one die per socket, with ID 0.
	Dies []Die
	// NUMANodes that have online CPUs, ordered by ID. Nodes without CPUs
	// (memory-only, CXL, offline) are left out. A machine without NUMA
	// information has one implicit node 0 holding every online CPU.
	NUMANodes []NUMANode
	// LLCs are the last-level-cache groups: the CPU sets sharing one level-3
	// cache, ordered by their first CPU. A machine without L3 information
	// has one implicit group per socket, as kubelet assumes.
	LLCs []LLC
	// Cores are the physical cores, ordered by their first online CPU. Core
	// i has Index i.
	Cores []Core

	// cpus maps an online CPU number to its place in the topology.
	cpus map[int]CPU
}

// Socket is one physical package.
type Socket struct {
	ID   int // physical_package_id
	CPUs cpuset.CPUSet
}

// Die is one die of a multi-die package.
type Die struct {
	Socket int // physical_package_id of the package holding it
	ID     int // die_id, unique only within its socket
	CPUs   cpuset.CPUSet
}

// NUMANode is one NUMA node that has online CPUs.
type NUMANode struct {
	ID   int // N of sysfs node/nodeN
	CPUs cpuset.CPUSet
}

// LLC is one group of CPUs sharing a last-level (L3) cache.
type LLC struct {
	Index int // position in Topology.LLCs
	// ID is the cache's id file when sysfs has one, -1 otherwise. Cache ids
	// need not be contiguous (AMD EPYC) and only tell groups apart.
	ID   int
	CPUs cpuset.CPUSet
	// Implicit is true when sysfs gave no L3 information and the group is
	// the whole socket.
	Implicit bool
}

// Core is one physical core. It is identified by its set of sibling
// threads: core_id repeats across packages and dies.
type Core struct {
	Index  int           // position in Topology.Cores
	CoreID int           // sysfs core_id, for display only
	CPUs   cpuset.CPUSet // its online threads (one on a machine without SMT)
	Socket int           // Socket.ID
	Die    int           // Die.ID within Socket
	NUMA   int           // NUMANode.ID
	LLC    int           // LLC.Index
}

// CPU is one online logical CPU's place in the topology.
type CPU struct {
	ID     int
	Core   int // Core.Index
	Socket int // Socket.ID
	Die    int // Die.ID within Socket
	NUMA   int // NUMANode.ID
	LLC    int // LLC.Index
}

// CPU returns the place of an online CPU; false when cpu is not online.
func (t *Topology) CPU(cpu int) (CPU, bool) {
	c, ok := t.cpus[cpu]
	return c, ok
}

// ThreadsPerCore returns the largest number of online threads of any core:
// 2 on SMT2 machines, 1 without SMT. Hybrid machines mix cores with fewer.
func (t *Topology) ThreadsPerCore() int {
	n := 0
	for _, c := range t.Cores {
		n = max(n, c.CPUs.Size())
	}
	return n
}

// CoreOf returns the core holding an online CPU.
func (t *Topology) CoreOf(cpu int) (*Core, bool) {
	c, ok := t.cpus[cpu]
	if !ok {
		return nil, false
	}
	return &t.Cores[c.Core], true
}

// Index fills the per-CPU lookup from Cores and checks that the model holds
// together: every online CPU in exactly one core, cores ordered and indexed,
// each core inside one socket, die, NUMA node and LLC group that exist. Read
// calls it; tests that build a Topology by hand must call it too.
func (t *Topology) Index() error {
	t.cpus = make(map[int]CPU, t.Online.Size())
	sockets := map[int]bool{}
	for _, s := range t.Sockets {
		sockets[s.ID] = true
	}
	dies := map[[2]int]bool{}
	for _, d := range t.Dies {
		dies[[2]int{d.Socket, d.ID}] = true
	}
	nodes := map[int]bool{}
	for _, n := range t.NUMANodes {
		nodes[n.ID] = true
	}
	prevFirst := -1
	for i, c := range t.Cores {
		switch {
		case c.Index != i:
			return fmt.Errorf("topology: core %d has index %d", i, c.Index)
		case c.CPUs.IsEmpty():
			return fmt.Errorf("topology: core %d has no online CPUs", i)
		case c.CPUs.Min() <= prevFirst:
			return fmt.Errorf("topology: cores are not ordered by first CPU at core %d (%s)", i, c.CPUs)
		case !sockets[c.Socket]:
			return fmt.Errorf("topology: core %s is on unknown socket %d", c.CPUs, c.Socket)
		case !dies[[2]int{c.Socket, c.Die}]:
			return fmt.Errorf("topology: core %s is on unknown die %d of socket %d", c.CPUs, c.Die, c.Socket)
		case !nodes[c.NUMA]:
			return fmt.Errorf("topology: core %s is on unknown NUMA node %d", c.CPUs, c.NUMA)
		case c.LLC < 0 || c.LLC >= len(t.LLCs):
			return fmt.Errorf("topology: core %s is in unknown LLC group %d", c.CPUs, c.LLC)
		}
		prevFirst = c.CPUs.Min()
		for cpu := range c.CPUs.All() {
			if prev, dup := t.cpus[cpu]; dup {
				return fmt.Errorf("topology: CPU %d is in two cores: %s and %s",
					cpu, t.Cores[prev.Core].CPUs, c.CPUs)
			}
			t.cpus[cpu] = CPU{ID: cpu, Core: i, Socket: c.Socket, Die: c.Die, NUMA: c.NUMA, LLC: c.LLC}
		}
	}
	var all cpuset.Builder
	for _, c := range t.Cores {
		all.AddSet(c.CPUs)
	}
	if got := all.Set(); !got.Equals(t.Online) {
		return fmt.Errorf("topology: cores hold CPUs %s but online CPUs are %s", got, t.Online)
	}
	if !t.Isolated.IsSubsetOf(t.Online) {
		return fmt.Errorf("topology: isolated CPUs %s are not all online (%s)", t.Isolated, t.Online)
	}
	return nil
}
