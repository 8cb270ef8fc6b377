package alloc

import (
	"errors"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

var (
	// 4 cores × SMT2, siblings n and n+4: kubelet's topoSingleSocketHT.
	singleSocketHT = shape{sockets: 1, numaPerSocket: 1, l3PerNUMA: 1, coresPerL3: 4, threads: 2}
	// 2 sockets × 2 NUMA nodes × 1 L3 × 4 cores × SMT2 = 32 CPUs, siblings n and n+16.
	twoSocketsFourNodes = shape{sockets: 2, numaPerSocket: 2, l3PerNUMA: 1, coresPerL3: 4, threads: 2}
	// 1 socket, 1 NUMA node, 4 L3 groups of 2 cores × SMT2 (an EPYC in miniature).
	fourL3 = shape{sockets: 1, numaPerSocket: 1, l3PerNUMA: 4, coresPerL3: 2, threads: 2}
	// SMT4, threads of a core adjacent (POWER-like): 4 cores, 16 CPUs.
	smt4 = shape{sockets: 1, numaPerSocket: 1, l3PerNUMA: 1, coresPerL3: 4, threads: 4, adjacent: true}
	// No SMT: 4 single-thread cores.
	noSMT = shape{sockets: 1, numaPerSocket: 1, l3PerNUMA: 1, coresPerL3: 4, threads: 1}
)

// hybrid is 2 P-cores with two threads (0-1, 2-3) and 4 single-thread
// E-cores (4..7), one L3, like a small Alder Lake.
func hybrid(tb testing.TB) *topology.Topology {
	var ps []place
	for cpu := 0; cpu < 8; cpu++ {
		core := cpu
		if cpu < 4 {
			core = cpu / 2 * 2
		}
		ps = append(ps, place{CPU: cpu, Core: ptr(core)})
	}
	return buildTopology(tb, ps, cpuset.CPUSet{})
}

// step is one allocator call in a scenario: allocate (n > 0), release
// (release set) or take (take set).
type step struct {
	owner    string
	n        int
	release  bool
	take     string
	want     string // CPUs; "" when an error is expected
	withheld string
	err      string // substring of the expected error
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name     string
		topo     func(testing.TB) *topology.Topology
		opts     Options
		steps    []step
		shared   string // shared pool at the end
		warnings []string
	}{
		{
			name: "reserved list splitting a core is widened with a warning",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0)},
			steps:    []step{{owner: "a", n: 2, want: "1,5"}, {owner: "b", n: 4, want: "2-3,6-7"}},
			shared:   "0,4",
			warnings: []string{"splits cores: reserving whole cores 0,4 (added 4)"},
		},
		{
			name: "odd request rounds up to whole cores",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0, 4)},
			steps:  []step{{owner: "a", n: 3, want: "1-2,5-6"}, {owner: "b", n: 1, want: "3,7"}},
			shared: "0,4",
		},
		{
			name: "odd request isolated: exact threads, sibling withheld",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0, 4), OddCPUs: Isolate},
			steps: []step{
				{owner: "a", n: 3, want: "1-2,5", withheld: "6"},
				{owner: "b", n: 1, want: "3", withheld: "7"},
				{owner: "a", release: true, want: "1-2,5", withheld: "6"},
			},
			shared: "0-2,4-6",
		},
		{
			name: "odd request rejected in kubelet's spirit",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0, 4), OddCPUs: Reject},
			steps: []step{
				{owner: "a", n: 5, err: "requested 5 CPUs is not a multiple of 2 threads per core; nearest whole-core sizes are 4 and 6"},
				{owner: "a", n: 1, err: "the smallest whole-core size is 2"},
				{owner: "a", n: 2, want: "1,5"},
			},
			shared: "0,2-4,6-7",
		},
		{
			name: "exhaustion names free cores and where",
			topo: twoSocketsFourNodes.build, opts: Options{Reserved: cpuset.New(0, 16)},
			steps: []step{
				{owner: "a", n: 16, want: "8-15,24-31"},
				{owner: "b", n: 8, want: "4-7,20-23"},
				{owner: "c", n: 8, err: "not enough free whole cores for 8 exclusive CPUs: 3 whole cores (6 CPUs) free: socket 0: 3 (NUMA node 0: 3)"},
			},
			shared: "0-3,16-19",
		},
		{
			name: "a request that fits one NUMA node stays in the fullest one that fits",
			topo: twoSocketsFourNodes.build, opts: Options{Reserved: cpuset.New(0, 16)},
			steps: []step{
				{owner: "a", n: 6, want: "1-3,17-19"}, // node 0 has 3 free cores: exact fit
				{owner: "b", n: 2, want: "4,20"},      // node 1, fullest parent (socket 0)
				{owner: "c", n: 8, want: "8-11,24-27"},
			},
			shared: "0,5-7,12-16,21-23,28-31",
		},
		{
			name: "a request larger than a socket spans two sockets and the fewest nodes",
			topo: twoSocketsFourNodes.build, opts: Options{Reserved: cpuset.New(0, 16)},
			steps: []step{
				// Socket 1 whole, the rest in the fullest node of socket 0.
				{owner: "a", n: 20, want: "1-2,8-15,17-18,24-31"},
			},
			shared: "0,3-7,16,19-23",
		},
		{
			name: "best fit fills the hole a release left",
			topo: fourL3.build, opts: Options{Reserved: cpuset.New(0, 8)},
			steps: []step{
				{owner: "a", n: 4, want: "2-3,10-11"}, // L3 1 whole: L3 0 has only one free core
				{owner: "b", n: 4, want: "4-5,12-13"},
				{owner: "c", n: 2, want: "1,9"}, // L3 0's last core: the fullest group that fits
				{owner: "b", release: true, want: "4-5,12-13"},
				{owner: "d", n: 2, want: "4,12"},
				{owner: "e", n: 4, want: "6-7,14-15"}, // a whole L3 group, not 5 + half of another
			},
			shared: "0,5,8,13",
		},
		{
			name: "SMT4 round-up and isolate",
			topo: smt4.build, opts: Options{Reserved: cpuset.New(0)},
			steps: []step{
				{owner: "a", n: 6, want: "4-11"},
				{owner: "b", n: 1, want: "12-15"},
			},
			shared:   "0-3",
			warnings: []string{"added 1-3"},
		},
		{
			name: "SMT4 isolate withholds three siblings",
			topo: smt4.build, opts: Options{Reserved: cpuset.New(0, 1, 2, 3), OddCPUs: Isolate},
			steps: []step{
				{owner: "a", n: 5, want: "4-8", withheld: "9-11"},
			},
			shared: "0-3,12-15",
		},
		{
			name: "hybrid: odd request filled exactly by a P-core and an E-core",
			topo: hybrid, opts: Options{Reserved: cpuset.New(7), OddCPUs: Reject},
			steps: []step{
				{owner: "a", n: 3, want: "0-1,4"},
				{owner: "b", n: 2, want: "2-3"},
				{owner: "c", n: 1, want: "5"},
			},
			shared: "6-7",
		},
		{
			name: "hybrid reject when only P-cores remain for an odd request",
			topo: hybrid, opts: Options{Reserved: cpuset.Range(4, 7), OddCPUs: Reject},
			steps: []step{
				{owner: "odd", n: 1, err: "SMT alignment error: requested 1 CPUs is not a multiple of 2 threads per core"},
				{owner: "a", n: 2, want: "0-1"},
			},
			shared: "2-7",
		},
		{
			name: "no SMT: one CPU is one core",
			topo: noSMT.build, opts: Options{Reserved: cpuset.New(0)},
			steps: []step{
				{owner: "a", n: 1, want: "1"},
				{owner: "b", n: 3, err: "not enough free whole cores for 3 exclusive CPUs: 2 whole cores (2 CPUs) free"},
				{owner: "b", n: 2, want: "2-3"},
			},
			shared: "0",
		},
		{
			name: "the shared pool never empties",
			topo: noSMT.build,
			steps: []step{
				{owner: "a", n: 3, want: "0-2"},
				{owner: "b", n: 1, err: "it would leave the shared pool without a CPU; 1 whole core (1 CPUs) free"},
			},
			shared: "3",
		},
		{
			name: "owners are unique and release is strict",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0, 4)},
			steps: []step{
				{owner: "a", n: 2, want: "1,5"},
				{owner: "a", n: 2, err: `"a" already holds CPUs 1,5`},
				{owner: "zz", release: true, err: `release: "zz" holds no CPUs`},
				{owner: "b", n: 0, err: "not a positive number"},
			},
			shared: "0,2-4,6-7",
		},
		{
			name: "take records a running container's CPUs and withholds split siblings",
			topo: singleSocketHT.build, opts: Options{Reserved: cpuset.New(0, 4)},
			steps: []step{
				{owner: "old", take: "2", want: "2", withheld: "6"},
				{owner: "clash", take: "6", err: `core 2,6 is held by old`},
				{owner: "res", take: "4", err: `core 0,4 is held by (reserved)`},
				{owner: "off", take: "9", err: `CPUs 9 are not online`},
				{owner: "new", n: 6, err: "not enough free whole cores for 6 exclusive CPUs: 2 whole cores (4 CPUs) free"},
				{owner: "new", n: 2, want: "1,5"},
			},
			shared: "0,3-4,7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.topo(t), tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			warnings := strings.Join(a.Warnings(), "\n")
			for _, w := range tt.warnings {
				if !strings.Contains(warnings, w) {
					t.Errorf("warnings %q lack %q", warnings, w)
				}
			}
			if len(tt.warnings) == 0 && warnings != "" {
				t.Errorf("unexpected warnings: %s", warnings)
			}
			for i, s := range tt.steps {
				var al Allocation
				switch {
				case s.release:
					al, err = a.Release(s.owner)
				case s.take != "":
					al, err = a.Take(s.owner, cpuset.MustParse(s.take))
				default:
					al, err = a.Allocate(s.owner, s.n)
				}
				if s.err != "" {
					if err == nil || !strings.Contains(err.Error(), s.err) {
						t.Fatalf("step %d (%s %d): error %v, want it to contain %q", i, s.owner, s.n, err, s.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d (%s %d): %v", i, s.owner, s.n, err)
				}
				if al.CPUs.String() != s.want || al.Withheld.String() != s.withheld {
					t.Errorf("step %d (%s %d): got CPUs %q withheld %q, want %q withheld %q",
						i, s.owner, s.n, al.CPUs, al.Withheld, s.want, s.withheld)
				}
				checkInvariants(t, a)
			}
			if got := a.Shared().String(); got != tt.shared {
				t.Errorf("shared pool %q, want %q", got, tt.shared)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	topo := singleSocketHT.build(t)
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"odd policy", Options{OddCPUs: "round-down"}, `oddCPUs: "round-down" is not one of round-up, isolate, reject`},
		{"isolated policy", Options{IsolatedCPUs: "yes"}, `isolatedCPUs: "yes" is not one of`},
		{"offline reserved", Options{Reserved: cpuset.New(0, 9)}, "reservedSystemCPUs: CPUs 9 are not online (online: 0-7)"},
		{"everything reserved", Options{Reserved: cpuset.Range(0, 3)}, "leaves no core to give out exclusively"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(topo, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New error %v, want %q", err, tt.err)
			}
		})
	}
}

func TestIsolatedPolicies(t *testing.T) {
	isolated := cpuset.New(3, 7) // core 3 of singleSocketHT
	tests := []struct {
		policy IsolatedCPUs
		alloc  string // what a 6-CPU request gets with CPU 0 reserved
		shared string // the shared pool before it
	}{
		{IsolatedExclusiveOnly, "1-3,5-7", "0-2,4-6"},
		{IsolatedExclude, "", "0-2,4-6"},
		{IsolatedIgnore, "1-3,5-7", "0-7"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			topo := buildTopology(t, singleSocketHT.places(), isolated)
			a, err := New(topo, Options{Reserved: cpuset.New(0, 4), IsolatedCPUs: tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Shared().String(); got != tt.shared {
				t.Errorf("shared %q, want %q", got, tt.shared)
			}
			al, err := a.Allocate("x", 6)
			if tt.alloc == "" {
				var ex *ExhaustedError
				if !errors.As(err, &ex) {
					t.Fatalf("want exhaustion, got %v, %v", al.CPUs, err)
				}
				return
			}
			if err != nil || al.CPUs.String() != tt.alloc {
				t.Fatalf("got %q, %v; want %q", al.CPUs, err, tt.alloc)
			}
		})
	}
}

// checkInvariants asserts what must hold after every operation: owners'
// cores are whole and disjoint, and exclusive + withheld + free + reserved
// (+ excluded) cover the online CPUs exactly once.
func checkInvariants(tb testing.TB, a *Allocator) {
	tb.Helper()
	topo := a.Topology()
	var seen cpuset.CPUSet
	claim := func(what string, s cpuset.CPUSet) {
		if s.Intersects(seen) {
			tb.Fatalf("%s %s overlaps CPUs already accounted for (%s)", what, s, seen.Intersection(s))
		}
		seen = seen.Union(s)
	}
	for _, al := range a.Allocations() {
		if al.CPUs.IsEmpty() {
			tb.Fatalf("%s holds no CPUs", al.Owner)
		}
		for cpu := range al.Cores().All() {
			core, _ := topo.CoreOf(cpu)
			if !core.CPUs.IsSubsetOf(al.Cores()) {
				tb.Fatalf("%s splits core %s: holds %s", al.Owner, core.CPUs, al.Cores())
			}
		}
		if a.OddPolicy() == RoundUp && !al.Withheld.IsEmpty() && al.Request != al.CPUs.Size() {
			tb.Fatalf("%s: round-up allocation withholds %s", al.Owner, al.Withheld)
		}
		if al.CPUs.Size() < al.Request && al.Request != al.CPUs.Size() {
			tb.Fatalf("%s asked for %d CPUs, got %s", al.Owner, al.Request, al.CPUs)
		}
		claim(al.Owner, al.Cores())
	}
	claim("free", a.Free())
	claim("reserved", a.Reserved())
	var excluded cpuset.Builder
	for i, u := range a.use {
		if u == excludedCore {
			excluded.AddSet(topo.Cores[i].CPUs)
		}
	}
	claim("excluded", excluded.Set())
	if !seen.Equals(topo.Online) {
		tb.Fatalf("accounted CPUs %s, online %s", seen, topo.Online)
	}
	if !a.Exclusive().Union(a.Withheld()).Equals(seenOwners(a)) {
		tb.Fatalf("cached exclusive/withheld %s/%s disagree with owners", a.Exclusive(), a.Withheld())
	}
	if a.Shared().IsEmpty() {
		tb.Fatalf("shared pool is empty")
	}
	// The free counts kept incrementally match a fresh count.
	fresh := make([]int, len(a.domains))
	for ci, u := range a.use {
		if u != nil {
			continue
		}
		for d := a.coreCell[ci]; d >= 0; d = a.domains[d].parent {
			fresh[d] += topo.Cores[ci].CPUs.Size()
		}
	}
	for d := range fresh {
		if fresh[d] != a.freeThreads[d] {
			tb.Fatalf("domain %s: %d free threads kept, %d counted", a.domains[d].name, a.freeThreads[d], fresh[d])
		}
	}
}

func seenOwners(a *Allocator) cpuset.CPUSet {
	var b cpuset.Builder
	for _, al := range a.Allocations() {
		b.AddSet(al.Cores())
	}
	return b.Set()
}
