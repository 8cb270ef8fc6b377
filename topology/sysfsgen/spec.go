// Package sysfsgen writes synthetic sysfs trees (devices/system/{cpu,node})
// for tests: from a compact Spec of a machine's shape, or from a hand-made
// topology.Topology. topology.Read reads them back like a real /sys.
package sysfsgen

import (
	"fmt"

	"github.com/coreguard/coreguard/cpuset"
)

// Numbering says how CPU numbers are handed to the threads of the cores.
type Numbering string

const (
	// Linear numbers core by core: a core's threads are adjacent (0,1 then
	// 2,3), as on AMD desktops, POWER and Alder Lake P-cores.
	Linear Numbering = "linear"
	// SMTSplit numbers the first thread of every core, then the second of
	// every core...: siblings are n and n+cores, as on Intel servers and
	// EPYC (cpu c is on core c%cores).
	SMTSplit Numbering = "smt-split"
	// InterleavedSockets is SMTSplit dealt round-robin across sockets,
	// starting with the last one: cpu0 is on the highest package, cpu1 on
	// the next, and NUMA cpulists come out scattered (1,3,5,...,17,19,...).
	InterleavedSockets Numbering = "interleaved-sockets"
)

// Spec is a machine's shape. Zero counts mean 1. Each socket's cores are
// numbered 0..n-1 (P-cores first, then E-cores) and cut into equal
// consecutive runs three independent ways: dies, NUMA nodes and L3 groups.
// So an L3 group may hold several NUMA nodes (Intel SNC: NUMAPerSocket 2,
// LLCPerSocket 1) or a NUMA node several L3 groups (EPYC: LLCPerSocket 12).
// core_id restarts on each die, as on real multi-die parts, so only the
// sibling lists tell cores apart.
type Spec struct {
	Sockets         int // physical packages
	DiesPerSocket   int
	NUMAPerSocket   int // NUMA nodes with CPUs, per socket
	LLCPerSocket    int // level-3 cache groups, per socket
	CoresPerSocket  int // cores with ThreadsPerCore threads each
	ThreadsPerCore  int // 2 for SMT2 (Hyper-Threading), 4, 8...
	ECoresPerSocket int // extra single-thread cores after those (hybrid CPUs)

	Numbering Numbering // "" is Linear

	Offline  cpuset.CPUSet // present but offline: no topology or cache folder
	Isolated cpuset.CPUSet // cpu/isolated (may name offline CPUs)

	SMTControl      string // cpu/smt/control content; "" leaves the file out
	NoL3            bool   // write L1 and L2 caches only
	NoNUMA          bool   // write no node folder at all
	NoDieID         bool   // leave out die_id and die_cpus_list (pre-5.2 kernels)
	CacheIDs        bool   // write cache id files (Linux 5.0+ on x86)
	MemoryOnlyNodes int    // extra NUMA nodes without CPUs, numbered after the others
}

func orOne(n int) int { return max(n, 1) }

// coresPerSocket counts P-cores and E-cores.
func (s Spec) coresPerSocket() int { return s.CoresPerSocket + s.ECoresPerSocket }

// threadsOf gives the thread count of core k of a socket.
func (s Spec) threadsOf(k int) int {
	if k < s.CoresPerSocket {
		return orOne(s.ThreadsPerCore)
	}
	return 1
}

// CPUs is the number of CPUs the spec describes, offline ones included.
func (s Spec) CPUs() int {
	return orOne(s.Sockets) * (s.CoresPerSocket*orOne(s.ThreadsPerCore) + s.ECoresPerSocket)
}

func (s Spec) validate() error {
	cps := s.coresPerSocket()
	switch {
	case s.Sockets < 0 || s.DiesPerSocket < 0 || s.NUMAPerSocket < 0 || s.LLCPerSocket < 0 ||
		s.CoresPerSocket < 0 || s.ThreadsPerCore < 0 || s.ECoresPerSocket < 0 || s.MemoryOnlyNodes < 0:
		return fmt.Errorf("sysfsgen: negative count in %+v", s)
	case cps == 0:
		return fmt.Errorf("sysfsgen: no cores per socket")
	case s.CPUs() > cpuset.MaxCPUs:
		return fmt.Errorf("sysfsgen: %d CPUs exceed %d", s.CPUs(), cpuset.MaxCPUs)
	}
	for name, parts := range map[string]int{"DiesPerSocket": s.DiesPerSocket,
		"NUMAPerSocket": s.NUMAPerSocket, "LLCPerSocket": s.LLCPerSocket} {
		if cps%orOne(parts) != 0 {
			return fmt.Errorf("sysfsgen: %s %d does not divide %d cores per socket", name, parts, cps)
		}
	}
	switch s.Numbering {
	case "", Linear, SMTSplit, InterleavedSockets:
	default:
		return fmt.Errorf("sysfsgen: unknown numbering %q", s.Numbering)
	}
	if m := max(s.Offline.Max(), s.Isolated.Max()); m >= s.CPUs() {
		return fmt.Errorf("sysfsgen: CPU %d is beyond the spec's %d CPUs", m, s.CPUs())
	}
	if s.Offline.Equals(cpuset.Range(0, s.CPUs()-1)) {
		return fmt.Errorf("sysfsgen: every CPU is offline")
	}
	return nil
}
