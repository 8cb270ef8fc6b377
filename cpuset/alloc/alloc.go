// Package alloc is coreguard's whole-core CPU allocator: it gives exclusive
// CPU sets made only of whole physical cores, packed into the smallest
// topology domain that holds them, and never splits a core.
//
// It is pure: no I/O, no NRI, no clock. The plugin owns one Allocator and
// serialises calls to it; an Allocator is not safe for concurrent use.
package alloc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

// OddCPUs says what to do with a request that does not fill whole cores,
// such as 5 CPUs on a machine with two threads per core.
type OddCPUs string

const (
	// RoundUp gives the smallest set of whole cores holding the request: a
	// 5-CPU container gets 3 cores (6 threads), alone on them. Default,
	// because the pod runs and nothing shares its cores, where kubelet's
	// full-pcpus-only refuses it with SMTAlignmentError.
	RoundUp OddCPUs = "round-up"
	// Isolate gives exactly the requested threads and withholds the unused
	// siblings of the partial core from everyone while the container lives:
	// the cpuset is what was asked for, the core stays quiet.
	Isolate OddCPUs = "isolate"
	// Reject refuses the request, as kubelet's full-pcpus-only does.
	Reject OddCPUs = "reject"
)

// OddCPUsValues are the OddCPUs there are, the default first: the one list
// that New, the configuration and the command line's completion check or
// offer.
var OddCPUsValues = []string{string(RoundUp), string(Isolate), string(Reject)}

// IsolatedCPUs says how CPUs isolated at boot (isolcpus=) are used.
type IsolatedCPUs string

const (
	// IsolatedExclusiveOnly pins exclusive containers to isolated cores like
	// any other but never runs the shared pool there: the scheduler does not
	// balance load across isolated CPUs, so shared tasks would pile up on
	// whichever CPU they started on. Default: it serves the usual reason for
	// isolcpus (quiet CPUs for pinned workloads) and harms nobody.
	IsolatedExclusiveOnly IsolatedCPUs = "exclusive-only"
	// IsolatedExclude leaves isolated CPUs alone entirely: nobody is pinned
	// to them and the shared pool does not use them.
	IsolatedExclude IsolatedCPUs = "exclude"
	// IsolatedIgnore treats isolated CPUs like all others, as kubelet does.
	IsolatedIgnore IsolatedCPUs = "ignore"
)

// IsolatedCPUsValues are the IsolatedCPUs there are, the default first (see
// OddCPUsValues).
var IsolatedCPUsValues = []string{string(IsolatedExclusiveOnly), string(IsolatedExclude), string(IsolatedIgnore)}

// Options configure an Allocator. The zero value is the default.
type Options struct {
	// Reserved are CPUs kept for the system and shared containers, never
	// given out exclusively (kubelet's reservedSystemCPUs). A list that
	// splits a core is widened to whole cores, with a warning.
	Reserved cpuset.CPUSet
	// OddCPUs is the policy for requests that do not fill whole cores;
	// empty means RoundUp.
	OddCPUs OddCPUs
	// IsolatedCPUs is the policy for isolcpus CPUs; empty means
	// IsolatedExclusiveOnly.
	IsolatedCPUs IsolatedCPUs
}

// Allocation is what one owner (a container) holds.
type Allocation struct {
	Owner   string
	Request int // logical CPUs asked for
	// CPUs are the owner's exclusive CPUs: whole cores, except under Isolate
	// where the partial core's unused threads are in Withheld instead.
	CPUs cpuset.CPUSet
	// Withheld are threads of the owner's cores that nobody runs on while
	// the owner lives.
	Withheld cpuset.CPUSet
	cores    []int
}

// Cores returns every CPU of the owner's cores: CPUs and Withheld together.
func (a Allocation) Cores() cpuset.CPUSet { return a.CPUs.Union(a.Withheld) }

// coreUse says who holds a core: nil is free, otherwise an allocation or one
// of the sentinels below.
type coreUse = *Allocation

var (
	reservedCore = &Allocation{Owner: "(reserved)"}
	excludedCore = &Allocation{Owner: "(isolated)"}
)

// Allocator hands out whole cores of one topology.
type Allocator struct {
	topo     *topology.Topology
	odd      OddCPUs
	isolated IsolatedCPUs
	reserved cpuset.CPUSet // widened to whole cores
	warnings []string

	domains  []domain
	byLevel  [numLevels][]int // domain indices of each level, in tree order
	coreCell []int
	use      []coreUse // per core
	owners   map[string]*Allocation

	// exclusive and withheld are the unions over owners, and shared the
	// pool they leave, kept so reading them costs nothing on the plugin's
	// hot path.
	exclusive, withheld, shared cpuset.CPUSet

	// freeThreads counts the threads of wholly free cores per domain, kept
	// up to date by setUse so packing starts without a scan.
	freeThreads []int
	coreThreads []int // online threads per core
	// Scratch space, reused so packing does not allocate: marks for
	// spansOf.
	marks   []int
	stamp   int
	scratch [numLevels][]int // a core buffer per level, see spansBelow
}

// New makes an Allocator for a topology with no allocations.
func New(t *topology.Topology, opts Options) (*Allocator, error) {
	a := &Allocator{topo: t, odd: opts.OddCPUs, isolated: opts.IsolatedCPUs, owners: map[string]*Allocation{}}
	if a.odd == "" {
		a.odd = RoundUp
	}
	if a.isolated == "" {
		a.isolated = IsolatedExclusiveOnly
	}
	if !slices.Contains(OddCPUsValues, string(a.odd)) {
		return nil, fmt.Errorf("oddCPUs: %q is not one of %s", opts.OddCPUs, strings.Join(OddCPUsValues, ", "))
	}
	if !slices.Contains(IsolatedCPUsValues, string(a.isolated)) {
		return nil, fmt.Errorf("isolatedCPUs: %q is not one of %s", opts.IsolatedCPUs, strings.Join(IsolatedCPUsValues, ", "))
	}
	if len(t.Cores) == 0 {
		return nil, fmt.Errorf("topology has no online cores")
	}
	if off := opts.Reserved.Difference(t.Online); !off.IsEmpty() {
		return nil, fmt.Errorf("reservedSystemCPUs: CPUs %s are not online (online: %s)", off, t.Online)
	}
	a.domains, a.coreCell = buildDomains(t)
	for i, d := range a.domains {
		a.byLevel[d.level] = append(a.byLevel[d.level], i)
	}
	a.freeThreads = make([]int, len(a.domains))
	a.coreThreads = make([]int, len(t.Cores))
	a.marks = make([]int, len(a.domains))

	a.use = make([]coreUse, len(t.Cores))
	for i, c := range t.Cores {
		a.coreThreads[i] = c.CPUs.Size()
		a.markFree(i, +1)
	}
	var reserved cpuset.Builder
	for i, c := range t.Cores {
		switch {
		case c.CPUs.Intersects(opts.Reserved):
			a.setUse(i, reservedCore)
			reserved.AddSet(c.CPUs)
		case a.isolated == IsolatedExclude && c.CPUs.Intersects(t.Isolated):
			a.setUse(i, excludedCore)
		}
	}
	a.reserved = reserved.Set()
	a.updateShared()
	if widened := a.reserved.Difference(opts.Reserved); !widened.IsEmpty() {
		a.warnings = append(a.warnings, fmt.Sprintf(
			"reservedSystemCPUs %s splits cores: reserving whole cores %s (added %s) so no exclusive container shares a core with reserved CPUs",
			opts.Reserved, a.reserved, widened))
	}
	if a.freeCores() == 0 {
		return nil, fmt.Errorf("reservedSystemCPUs %s leaves no core to give out exclusively (online: %s)", opts.Reserved, t.Online)
	}
	return a, nil
}

// Warnings are the notices New had about the options (e.g. a reserved list
// widened to whole cores), for the caller to log.
func (a *Allocator) Warnings() []string { return slices.Clone(a.warnings) }

// Topology returns the topology the allocator hands out.
func (a *Allocator) Topology() *topology.Topology { return a.topo }

// Reserved returns the reserved CPUs, widened to whole cores.
func (a *Allocator) Reserved() cpuset.CPUSet { return a.reserved }

// OddPolicy returns the odd-request policy in force.
func (a *Allocator) OddPolicy() OddCPUs { return a.odd }

// Allocate gives owner whole cores for a request of n logical CPUs, packed
// as pack.go describes. It fails, changing nothing, when the owner already
// holds CPUs, when n is not positive, when the odd-request policy refuses n,
// when too few whole cores are free, or when the allocation would leave the
// shared pool without a CPU.
func (a *Allocator) Allocate(owner string, n int) (Allocation, error) {
	return a.allocate(owner, n, true)
}

// AllocateMayEmptyShared is Allocate for a caller that knows no container
// runs in the shared pool (e.g. a node with no reserved CPUs whose only
// container asks for every core): the pool may be left empty.
func (a *Allocator) AllocateMayEmptyShared(owner string, n int) (Allocation, error) {
	return a.allocate(owner, n, false)
}

func (a *Allocator) allocate(owner string, n int, keepShared bool) (Allocation, error) {
	if _, dup := a.owners[owner]; dup {
		return Allocation{}, fmt.Errorf("%q already holds CPUs %s", owner, a.owners[owner].CPUs)
	}
	if n <= 0 {
		return Allocation{}, fmt.Errorf("request for %q: %d CPUs is not a positive number", owner, n)
	}
	if err := a.checkOdd(n); err != nil {
		return Allocation{}, err
	}
	cores, err := a.pack(n)
	if err != nil {
		return Allocation{}, err
	}
	al := a.shape(owner, n, cores)
	if a.odd == Reject && !al.Withheld.IsEmpty() {
		// Only hybrid machines get here: n fits the largest cores' size but
		// not the cores that were free.
		return Allocation{}, a.oddError(n)
	}
	if left := a.Shared().Difference(al.Cores()); keepShared && left.IsEmpty() {
		return Allocation{}, &ExhaustedError{Request: n, Reason: "it would leave the shared pool without a CPU", Free: a.freeSummary()}
	}
	a.record(&al)
	return al, nil
}

// shape turns the packed cores into an allocation: under Isolate the threads
// past n are withheld, from the last core picked (the only one with spare
// threads), highest CPU first; otherwise the owner gets every thread.
func (a *Allocator) shape(owner string, n int, cores []int) Allocation {
	var cpus, withheld cpuset.Builder
	spare := -n
	for _, ci := range cores {
		spare += a.topo.Cores[ci].CPUs.Size()
	}
	if a.odd != Isolate && a.odd != Reject {
		spare = 0
	}
	for i := len(cores) - 1; i >= 0; i-- {
		threads := a.topo.Cores[cores[i]].CPUs.List()
		for j := len(threads) - 1; j >= 0; j-- {
			if spare > 0 {
				withheld.Add(threads[j])
				spare--
			} else {
				cpus.Add(threads[j])
			}
		}
	}
	return Allocation{Owner: owner, Request: n, CPUs: cpus.Set(), Withheld: withheld.Set(), cores: cores}
}

func (a *Allocator) record(al *Allocation) {
	for _, ci := range al.cores {
		a.setUse(ci, al)
	}
	a.owners[al.Owner] = al
	a.exclusive = a.exclusive.Union(al.CPUs)
	a.withheld = a.withheld.Union(al.Withheld)
	a.updateShared()
}

// updateShared recomputes the shared pool after a change of owners.
func (a *Allocator) updateShared() {
	s := a.topo.Online.Difference(a.exclusive.Union(a.withheld))
	if a.isolated != IsolatedIgnore {
		s = s.Difference(a.topo.Isolated)
	}
	a.shared = s
}

// Take records CPUs an owner already holds, as found on a running
// container after a restart or given by `coreguard plan --taken`. The cores
// those CPUs touch become the owner's; their threads outside cpus are
// withheld, since a core is never split between an exclusive owner and
// anyone else. It fails, changing nothing, on an unknown or offline CPU, a
// core held by another owner or reserved, or an owner that holds CPUs.
func (a *Allocator) Take(owner string, cpus cpuset.CPUSet) (Allocation, error) {
	if _, dup := a.owners[owner]; dup {
		return Allocation{}, fmt.Errorf("%q already holds CPUs %s", owner, a.owners[owner].CPUs)
	}
	if cpus.IsEmpty() {
		return Allocation{}, fmt.Errorf("%q: no CPUs to take", owner)
	}
	if off := cpus.Difference(a.topo.Online); !off.IsEmpty() {
		return Allocation{}, fmt.Errorf("%q: CPUs %s are not online (online: %s)", owner, off, a.topo.Online)
	}
	var cores []int
	var all cpuset.Builder
	for cpu := range cpus.All() {
		c, _ := a.topo.CPU(cpu)
		if slices.Contains(cores, c.Core) {
			continue
		}
		if u := a.use[c.Core]; u != nil {
			return Allocation{}, &ConflictError{Owner: owner, CPUs: cpus, Core: a.topo.Cores[c.Core].CPUs, Holder: u.Owner}
		}
		cores = append(cores, c.Core)
		all.AddSet(a.topo.Cores[c.Core].CPUs)
	}
	al := Allocation{Owner: owner, Request: cpus.Size(), CPUs: cpus, Withheld: all.Set().Difference(cpus), cores: cores}
	a.record(&al)
	return al, nil
}

// Release frees what owner holds and returns it. Releasing an owner that
// holds nothing is an error and changes nothing.
func (a *Allocator) Release(owner string) (Allocation, error) {
	al, ok := a.owners[owner]
	if !ok {
		return Allocation{}, fmt.Errorf("release: %q holds no CPUs", owner)
	}
	for _, ci := range al.cores {
		a.setUse(ci, nil)
	}
	delete(a.owners, owner)
	a.exclusive = a.exclusive.Difference(al.CPUs)
	a.withheld = a.withheld.Difference(al.Withheld)
	a.updateShared()
	return *al, nil
}

// setUse gives core ci to u (nil: frees it), keeping the free counts.
func (a *Allocator) setUse(ci int, u coreUse) {
	switch was := a.use[ci]; {
	case was == nil && u != nil:
		a.markFree(ci, -1)
	case was != nil && u == nil:
		a.markFree(ci, +1)
	}
	a.use[ci] = u
}

// markFree adds (sign +1) or removes (-1) core ci's threads from the free
// count of every domain holding it.
func (a *Allocator) markFree(ci, sign int) {
	for d := a.coreCell[ci]; d >= 0; d = a.domains[d].parent {
		a.freeThreads[d] += sign * a.coreThreads[ci]
	}
}

// Get returns what owner holds.
func (a *Allocator) Get(owner string) (Allocation, bool) {
	al, ok := a.owners[owner]
	if !ok {
		return Allocation{}, false
	}
	return *al, true
}

// Allocations returns every owner's allocation, ordered by owner.
func (a *Allocator) Allocations() []Allocation {
	out := make([]Allocation, 0, len(a.owners))
	for _, al := range a.owners {
		out = append(out, *al)
	}
	slices.SortFunc(out, func(x, y Allocation) int {
		if x.Owner < y.Owner {
			return -1
		}
		if x.Owner > y.Owner {
			return 1
		}
		return 0
	})
	return out
}

// Exclusive returns the CPUs held exclusively by owners.
func (a *Allocator) Exclusive() cpuset.CPUSet { return a.exclusive }

// Withheld returns the CPUs nobody runs on (unused siblings under Isolate).
func (a *Allocator) Withheld() cpuset.CPUSet { return a.withheld }

// Shared returns the shared pool: every online CPU that is not exclusive or
// withheld, and not isolated unless IsolatedIgnore. Reserved CPUs are in it.
func (a *Allocator) Shared() cpuset.CPUSet { return a.shared }

// Free returns the CPUs of the free whole cores: what can still be given out.
func (a *Allocator) Free() cpuset.CPUSet {
	var b cpuset.Builder
	for i, u := range a.use {
		if u == nil {
			b.AddSet(a.topo.Cores[i].CPUs)
		}
	}
	return b.Set()
}

func (a *Allocator) freeCores() int {
	n := 0
	for _, u := range a.use {
		if u == nil {
			n++
		}
	}
	return n
}
