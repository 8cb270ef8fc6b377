package alloc

import (
	"fmt"
	"slices"

	"github.com/coreguard/coreguard/topology"
)

// kind is one way the machine groups cores.
type kind int

const (
	socketKind kind = iota
	dieKind
	numaKind
	llcKind
	numKinds
)

// The packer's ladder has one rung per kind, finest first, and the machine
// on top. Level 0 is always the finest rung (a cell).
const numLevels = int(numKinds) + 1

// domain is one node of the tree machine → … → cell. The rungs between are
// the kinds ordered coarse to fine for this machine, and each domain is the
// intersection of its parent with one group of its kind, so the tree stays
// a tree even where the hardware does not nest: an L3 group spanning two
// NUMA nodes (Intel sub-NUMA clustering) is two cells, one per node.
type domain struct {
	level    int // 0 for cells, numLevels-1 for the machine
	name     string
	parent   int   // index into Allocator.domains; -1 for the machine
	children []int // smaller domains; nil for cells
	cores    []int // cells only: core indices, most threads first, then lowest CPU
	first    int   // lowest CPU, for deterministic tie-breaking
}

// ladder orders the kinds coarse to fine for t: the kind with fewer groups
// is the coarser. Usually that is socket, die, NUMA node, L3 group; where a
// NUMA node spans sockets, NUMA nodes come first, so a request that fits
// one node is kept in it. Ties keep that usual order.
func ladder(t *topology.Topology) [numKinds]kind {
	counts := [numKinds]map[[2]int]bool{}
	for k := range counts {
		counts[k] = map[[2]int]bool{}
	}
	for _, c := range t.Cores {
		for k := socketKind; k < numKinds; k++ {
			counts[k][groupOf(c, k)] = true
		}
	}
	order := [numKinds]kind{socketKind, dieKind, numaKind, llcKind}
	slices.SortStableFunc(order[:], func(a, b kind) int { return len(counts[a]) - len(counts[b]) })
	return order
}

// groupOf identifies a core's group of one kind (dies are numbered within
// their socket).
func groupOf(c topology.Core, k kind) [2]int {
	switch k {
	case socketKind:
		return [2]int{c.Socket, 0}
	case dieKind:
		return [2]int{c.Socket, c.Die}
	case numaKind:
		return [2]int{c.NUMA, 0}
	}
	return [2]int{c.LLC, 0}
}

func groupName(t *topology.Topology, k kind, g [2]int) string {
	switch k {
	case socketKind:
		return fmt.Sprintf("socket %d", g[0])
	case dieKind:
		return fmt.Sprintf("die %d of socket %d", g[1], g[0])
	case numaKind:
		return fmt.Sprintf("NUMA node %d", g[0])
	}
	if id := t.LLCs[g[0]].ID; id >= 0 {
		return fmt.Sprintf("L3 group %d", id)
	}
	return fmt.Sprintf("L3 group #%d", g[0])
}

// buildDomains makes the domain tree; it returns the domains (the machine
// first) and, per core, the cell holding it.
func buildDomains(t *topology.Topology) ([]domain, []int) {
	order := ladder(t)
	domains := []domain{{level: numLevels - 1, name: "machine", parent: -1, first: t.Online.Min()}}
	index := map[[numKinds + 1][2]int]int{}
	coreCell := make([]int, len(t.Cores))
	// Cores come ordered by first CPU, so a domain's first CPU is the first
	// CPU of the first core that reaches it.
	for _, c := range t.Cores {
		parent := 0
		var key [numKinds + 1][2]int
		for i, k := range order {
			key[i] = groupOf(c, k)
			key[numKinds] = [2]int{i, 0} // the depth, so prefixes differ from full keys
			d, ok := index[key]
			if !ok {
				d = len(domains)
				index[key] = d
				domains = append(domains, domain{level: numLevels - 2 - i, name: groupName(t, k, key[i]),
					parent: parent, first: c.CPUs.Min()})
				domains[parent].children = append(domains[parent].children, d)
			}
			parent = d
		}
		domains[parent].cores = append(domains[parent].cores, c.Index)
		coreCell[c.Index] = parent
	}
	for i := range domains {
		slices.SortStableFunc(domains[i].cores, func(a, b int) int {
			return t.Cores[b].CPUs.Size() - t.Cores[a].CPUs.Size()
		})
	}
	return domains, coreCell
}
