package alloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

// propertyTopologies are the machines the random walk runs on; more come
// from extraPropertyTopologies (generated sysfs trees and real machines).
func propertyTopologies(tb testing.TB) map[string]*topology.Topology {
	out := map[string]*topology.Topology{
		"single-socket-ht": singleSocketHT.build(tb),
		"2s-4numa":         twoSocketsFourNodes.build(tb),
		"4l3":              fourL3.build(tb),
		"smt4":             smt4.build(tb),
		"no-smt":           noSMT.build(tb),
		"hybrid":           hybrid(tb),
		"epyc-384":         shape{sockets: 2, numaPerSocket: 1, l3PerNUMA: 12, coresPerL3: 8, threads: 2}.build(tb),
	}
	for name, t := range extraPropertyTopologies(tb) {
		out[name] = t
	}
	return out
}

// TestRandomWalk runs random allocate / release / take sequences and checks
// after every step that no core is split, nothing overlaps, every online CPU
// is accounted for once, releases give back exactly what was taken, a
// request is refused only when it cannot be met, and a request that fits one
// L3 group, NUMA node or socket is placed inside one.
func TestRandomWalk(t *testing.T) {
	topos := propertyTopologies(t)
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	perTopo := total / len(topos)
	policies := []OddCPUs{RoundUp, Isolate, Reject}
	ops := 0
	for name, topo := range topos {
		for pi, policy := range policies {
			seed := uint64(len(name)*7919 + pi)
			t.Run(fmt.Sprintf("%s/%s", name, policy), func(t *testing.T) {
				ops += randomWalk(t, topo, policy, seed, perTopo/len(policies))
			})
		}
	}
	if ops < total-len(topos)*len(policies) {
		t.Fatalf("ran %d operations, want at least %d", ops, total)
	}
}

func randomWalk(t *testing.T, topo *topology.Topology, policy OddCPUs, seed uint64, steps int) int {
	rng := rand.New(rand.NewPCG(seed, 42))
	first := topo.Cores[0].CPUs
	a, err := New(topo, Options{Reserved: cpuset.New(first.Min()), OddCPUs: policy})
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	maxReq := max(2, topo.Online.Size()/3)
	for i := 0; i < steps; i++ {
		switch op := rng.IntN(10); {
		case op < 5 || len(owners) == 0: // allocate
			owner := fmt.Sprintf("c%d", i)
			n := 1 + rng.IntN(maxReq)
			if rng.IntN(4) == 0 {
				n = 1 + rng.IntN(4) // small requests dominate real nodes
			}
			freeBefore := a.Free()
			al, err := a.Allocate(owner, n)
			checkAllocation(t, a, policy, n, freeBefore, al, err)
			if err == nil {
				owners = append(owners, owner)
			}
		case op < 9: // release
			k := rng.IntN(len(owners))
			owner := owners[k]
			owners = append(owners[:k], owners[k+1:]...)
			held, _ := a.Get(owner)
			freeBefore := a.Free()
			al, err := a.Release(owner)
			if err != nil {
				t.Fatalf("release %s: %v", owner, err)
			}
			if !al.CPUs.Equals(held.CPUs) || !al.Withheld.Equals(held.Withheld) {
				t.Fatalf("release %s returned %s/%s, held %s/%s", owner, al.CPUs, al.Withheld, held.CPUs, held.Withheld)
			}
			if !a.Free().Equals(freeBefore.Union(al.Cores())) || freeBefore.Intersects(al.Cores()) {
				t.Fatalf("release %s: free %s -> %s, released %s", owner, freeBefore, a.Free(), al.Cores())
			}
		default: // take a random free CPU, as a restart would find it
			free := a.Free().List()
			if len(free) == 0 {
				continue
			}
			cpu := free[rng.IntN(len(free))]
			owner := fmt.Sprintf("t%d", i)
			if _, err := a.Take(owner, cpuset.New(cpu)); err == nil {
				owners = append(owners, owner)
			} else if a.Shared().Size() > 1 {
				t.Fatalf("take %d: %v", cpu, err)
			}
		}
		checkInvariants(t, a)
	}
	return steps
}

// checkAllocation judges one Allocate call against the free whole cores it
// started from.
func checkAllocation(t *testing.T, a *Allocator, policy OddCPUs, n int, freeBefore cpuset.CPUSet, al Allocation, err error) {
	t.Helper()
	topo := a.Topology()
	if err != nil {
		var ex *ExhaustedError
		var odd *OddRequestError
		switch {
		case errors.As(err, &odd):
			if policy != Reject {
				t.Fatalf("odd-request error under %s: %v", policy, err)
			}
		case errors.As(err, &ex) && ex.Reason != "":
			if !strings.Contains(ex.Reason, "shared pool") {
				t.Fatalf("unexpected refusal: %v", err)
			}
		case errors.As(err, &ex):
			if freeBefore.Size() >= n {
				t.Fatalf("refused %d CPUs with %d free whole-core CPUs (%s): %v", n, freeBefore.Size(), freeBefore, err)
			}
		default:
			t.Fatalf("allocate %d: unexpected error %v", n, err)
		}
		return
	}
	if !al.Cores().IsSubsetOf(freeBefore) {
		t.Fatalf("allocated %s outside the free cores %s", al.Cores(), freeBefore)
	}
	switch policy {
	case RoundUp:
		if al.CPUs.Size() < n || !al.Withheld.IsEmpty() {
			t.Fatalf("round-up %d gave %s withheld %s", n, al.CPUs, al.Withheld)
		}
	default:
		if al.CPUs.Size() != n {
			t.Fatalf("%s %d gave %d CPUs (%s)", policy, n, al.CPUs.Size(), al.CPUs)
		}
	}
	// No more threads than the smallest core set could give: the spare is
	// less than the largest core.
	if spare := al.Cores().Size() - n; spare >= topo.ThreadsPerCore() {
		t.Fatalf("%d CPUs took %s: %d spare threads", n, al.Cores(), spare)
	}
	// Compactness: if a domain held the request whole, the result lies in one.
	for _, lv := range []struct {
		name   string
		groups []cpuset.CPUSet
	}{
		{"NUMA node", numaSets(topo)},
		{"socket", socketSets(topo)},
	} {
		fits, inOne := false, false
		for _, g := range lv.groups {
			if freeBefore.Intersection(g).Size() >= al.Cores().Size() {
				fits = true
			}
			if al.Cores().IsSubsetOf(g) {
				inOne = true
			}
		}
		if fits && !inOne {
			t.Fatalf("%d CPUs fit one %s but got %s", n, lv.name, al.Cores())
		}
	}
}

func numaSets(t *topology.Topology) []cpuset.CPUSet {
	var out []cpuset.CPUSet
	for _, n := range t.NUMANodes {
		out = append(out, n.CPUs)
	}
	return out
}

func socketSets(t *topology.Topology) []cpuset.CPUSet {
	var out []cpuset.CPUSet
	for _, s := range t.Sockets {
		out = append(out, s.CPUs)
	}
	return out
}

// TestDeterministic replays one sequence twice: same inputs, same answers.
func TestDeterministic(t *testing.T) {
	run := func() string {
		topo := twoSocketsFourNodes.build(t)
		a, err := New(topo, Options{Reserved: cpuset.New(0, 16)})
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for i, n := range []int{2, 6, 3, 8, 1, 4, 2} {
			al, err := a.Allocate(fmt.Sprint(i), n)
			fmt.Fprintf(&sb, "%s %v;", al.CPUs, err)
			if i == 3 {
				_, _ = a.Release("1")
			}
		}
		return sb.String()
	}
	if x, y := run(), run(); x != y {
		t.Fatalf("two runs differ:\n%s\n%s", x, y)
	}
}
