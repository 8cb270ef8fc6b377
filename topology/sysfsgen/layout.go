package sysfsgen

import (
	"github.com/coreguard/coreguard/cpuset"
)

// place is where one present CPU sits. Offline CPUs keep their place for
// the node links, as the kernel keeps them, but get no topology files.
type place struct {
	cpu    int
	online bool
	socket int
	die    int
	core   int // machine-wide core number, groups siblings
	coreID int // what core_id says
	node   int // -1: no node link
	llc    int // index into layout.llcIDs
}

// layout is a machine ready to be written: both Spec and hand-made models
// come down to it.
type layout struct {
	places     []place // every present CPU, by CPU number
	isolated   cpuset.CPUSet
	smtControl string
	llcIDs     []int // per LLC group: its cache id, -1 for no id file
	noL3       bool
	noDieID    bool
	cacheIDs   bool  // write id files (L3 ids come from llcIDs)
	nodeIDs    []int // every node folder to write, memory-only ones included
}

// fromSpec lays a Spec out.
func fromSpec(s Spec) layout {
	sockets, cps := orOne(s.Sockets), s.coresPerSocket()
	perDie := cps / orOne(s.DiesPerSocket)
	perNode := cps / orOne(s.NUMAPerSocket)
	perLLC := cps / orOne(s.LLCPerSocket)

	// Cores in machine order: socket by socket.
	type coreSlot struct{ socket, k int }
	var slots []coreSlot
	for sk := range sockets {
		for k := range cps {
			slots = append(slots, coreSlot{sk, k})
		}
	}
	// The numbering decides the order in which (core, thread) pairs get
	// CPU numbers; each produces the list of machine core numbers.
	var order []int
	maxThreads := orOne(s.ThreadsPerCore)
	switch s.Numbering {
	case SMTSplit:
		for t := range maxThreads {
			for g, sl := range slots {
				if s.threadsOf(sl.k) > t {
					order = append(order, g)
				}
			}
		}
	case InterleavedSockets:
		for t := range maxThreads {
			for k := range cps {
				for sk := sockets - 1; sk >= 0; sk-- {
					if s.threadsOf(k) > t {
						order = append(order, sk*cps+k)
					}
				}
			}
		}
	default:
		for g, sl := range slots {
			for range s.threadsOf(sl.k) {
				order = append(order, g)
			}
		}
	}

	l := layout{isolated: s.Isolated, smtControl: s.SMTControl, noL3: s.NoL3, noDieID: s.NoDieID, cacheIDs: s.CacheIDs}
	for cpu, g := range order {
		sl := slots[g]
		p := place{
			cpu: cpu, online: !s.Offline.Contains(cpu), socket: sl.socket,
			die: sl.k / perDie, core: g, coreID: sl.k % perDie,
			node: sl.socket*orOne(s.NUMAPerSocket) + sl.k/perNode,
			llc:  sl.socket*orOne(s.LLCPerSocket) + sl.k/perLLC,
		}
		if s.NoNUMA {
			p.node = -1
		}
		l.places = append(l.places, p)
	}
	for i := range sockets * orOne(s.LLCPerSocket) {
		id := -1
		if s.CacheIDs {
			id = i
		}
		l.llcIDs = append(l.llcIDs, id)
	}
	if !s.NoNUMA {
		for i := range sockets*orOne(s.NUMAPerSocket) + s.MemoryOnlyNodes {
			l.nodeIDs = append(l.nodeIDs, i)
		}
	}
	return l
}
