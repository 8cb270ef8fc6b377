package topology

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/coreguard/coreguard/cpuset"
)

// groupCores makes one core per distinct sibling set. Every member of a set
// must name the same set, and its threads must share package and die: a
// core is identified by its siblings, since core_id repeats across packages
// and dies. Cores come out ordered by first CPU, as threads are.
func groupCores(threads []thread) ([]Core, error) {
	byCPU := make(map[int]*thread, len(threads))
	for i := range threads {
		byCPU[threads[i].cpu] = &threads[i]
	}
	coreOf := make(map[int]int, len(threads)) // CPU -> core index
	var cores []Core
	for i := range threads {
		th := &threads[i]
		if idx, seen := coreOf[th.cpu]; seen {
			owner := byCPU[cores[idx].CPUs.Min()]
			if !th.siblings.Equals(cores[idx].CPUs) {
				return nil, fileError(th.siblingsFile, "%q disagrees with cpu%d's %q",
					th.siblingsText, owner.cpu, owner.siblingsText)
			}
			continue
		}
		idx := len(cores)
		for m := range th.siblings.All() {
			if other, taken := coreOf[m]; taken {
				owner := byCPU[cores[other].CPUs.Min()]
				return nil, fileError(th.siblingsFile, "%q puts CPU %d in a second core (cpu%d's %q)",
					th.siblingsText, m, owner.cpu, owner.siblingsText)
			}
			if mt := byCPU[m]; mt.pkg != th.pkg || mt.die != th.die {
				return nil, fileError(th.siblingsFile, "%q joins threads of different packages or dies: "+
					"cpu%d is on package %d die %d, cpu%d on package %d die %d",
					th.siblingsText, th.cpu, th.pkg, th.die, m, mt.pkg, mt.die)
			}
			coreOf[m] = idx
		}
		cores = append(cores, Core{
			Index: idx, CoreID: th.coreID, CPUs: th.siblings, Socket: th.pkg, Die: th.die,
		})
	}
	return cores, nil
}

// placeCores sets each core's NUMA node and LLC group from per-CPU maps and
// refuses cores whose threads are split between nodes or groups.
func placeCores(cores []Core, nodeOf, llcOf map[int]int, nodeSource, llcSource string) error {
	for i := range cores {
		c := &cores[i]
		first := c.CPUs.Min()
		c.NUMA, c.LLC = nodeOf[first], llcOf[first]
		for cpu := range c.CPUs.All() {
			if nodeOf[cpu] != c.NUMA {
				return fmt.Errorf("topology: %s: core %s is split: CPU %d is in node %d, CPU %d in node %d",
					nodeSource, c.CPUs, first, c.NUMA, cpu, nodeOf[cpu])
			}
			if llcOf[cpu] != c.LLC {
				return fmt.Errorf("topology: %s: core %s is split between L3 groups at CPU %d and CPU %d",
					llcSource, c.CPUs, first, cpu)
			}
		}
	}
	return nil
}

// groupSockets and groupDies collect the CPUs of each package and die.
func groupSockets(cores []Core) []Socket {
	sets := map[int]*cpuset.Builder{}
	for _, c := range cores {
		if sets[c.Socket] == nil {
			sets[c.Socket] = &cpuset.Builder{}
		}
		sets[c.Socket].AddSet(c.CPUs)
	}
	out := make([]Socket, 0, len(sets))
	for _, id := range sortedKeys(sets) {
		out = append(out, Socket{ID: id, CPUs: sets[id].Set()})
	}
	return out
}

func groupDies(cores []Core) []Die {
	sets := map[[2]int]*cpuset.Builder{} // (socket, die)
	for _, c := range cores {
		k := [2]int{c.Socket, c.Die}
		if sets[k] == nil {
			sets[k] = &cpuset.Builder{}
		}
		sets[k].AddSet(c.CPUs)
	}
	keys := slices.SortedFunc(maps.Keys(sets), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	out := make([]Die, 0, len(sets))
	for _, k := range keys {
		out = append(out, Die{Socket: k[0], ID: k[1], CPUs: sets[k].Set()})
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	return slices.Sorted(maps.Keys(m))
}
