package sysfsgen

import (
	"fmt"

	"github.com/coreguard/coreguard/topology"
)

// WriteTopology writes the sysfs tree of a hand-made model (call t.Index
// first; Write checks it). Offline CPUs get no topology and no node link.
// Implicit LLC groups are written as no L3 information at all, so they
// must be one per socket for the tree to read back the same.
func WriteTopology(dir string, t *topology.Topology) error {
	if err := t.Index(); err != nil {
		return fmt.Errorf("sysfsgen: %w", err)
	}
	l := layout{isolated: t.Isolated, smtControl: t.SMTControl, noL3: true}
	for _, g := range t.LLCs {
		l.llcIDs = append(l.llcIDs, g.ID)
		l.noL3 = l.noL3 && g.Implicit
		l.cacheIDs = l.cacheIDs || g.ID >= 0
	}
	for _, n := range t.NUMANodes {
		l.nodeIDs = append(l.nodeIDs, n.ID)
	}
	last := max(t.Online.Max(), t.Offline.Max())
	for cpu := 0; cpu <= last; cpu++ {
		if t.Offline.Contains(cpu) {
			l.places = append(l.places, place{cpu: cpu, node: -1})
			continue
		}
		c, ok := t.CPU(cpu)
		if !ok {
			continue // not present
		}
		core := t.Cores[c.Core]
		l.places = append(l.places, place{cpu: cpu, online: true, socket: c.Socket, die: c.Die,
			core: c.Core, coreID: max(core.CoreID, 0), node: c.NUMA, llc: c.LLC})
	}
	return writeLayout(dir, l)
}
