package topology_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// machine holds the facts the fixtures' README lists for one tarball.
type machine struct {
	online, offline, isolated        string
	sockets, nodes, llcs, cores, tpc int
	siblingOffset                    int // core of cpu n < offset is {n, n+offset}; 0: not checked
	check                            func(t *testing.T, topo *topology.Topology)
}

var corpus = map[string]machine{
	"amd-ryzen-1600-2ccx-12t": {online: "0-11", sockets: 1, nodes: 1, llcs: 2, cores: 6, tpc: 2, siblingOffset: 6,
		check: func(t *testing.T, topo *topology.Topology) {
			wantLists(t, "L3 groups", llcLists(topo), "0-2,6-8", "3-5,9-11")
		}},
	"desktop-10c-20t": {online: "0-19", sockets: 1, nodes: 1, llcs: 1, cores: 10, tpc: 2, siblingOffset: 10},
	"offline-cpus-4t": {online: "0-1", offline: "2-3", sockets: 2, nodes: 1, llcs: 2, cores: 2, tpc: 1},
	"server-8numa-112t": {online: "0-111", isolated: "4-7,60-63", sockets: 2, nodes: 4, llcs: 2, cores: 56, tpc: 2,
		siblingOffset: 56, check: func(t *testing.T, topo *topology.Topology) {
			// NUMA nodes take CPUs round-robin: node n holds n, n+4, n+8...
			for _, n := range topo.NUMANodes {
				for cpu := range n.CPUs.All() {
					if cpu%4 != n.ID {
						t.Fatalf("cpu %d in node %d", cpu, n.ID)
					}
				}
			}
		}},
	"xeon-2s-4numa-80t": {online: "0-79", sockets: 2, nodes: 4, llcs: 2, cores: 40, tpc: 2, siblingOffset: 40,
		check: func(t *testing.T, topo *topology.Topology) {
			if got := topo.NUMANodes[0].CPUs.String(); got != "0-2,5-6,10-12,15-16,40-42,45-46,50-52,55-56" {
				t.Errorf("node 0 = %s", got)
			}
			wantLists(t, "L3 groups", llcLists(topo), "0-19,40-59", "20-39,60-79")
		}},
	"xeon-2s-6numa-112t": {online: "0-111", isolated: "4-7,60-63", sockets: 2, nodes: 4, llcs: 2, cores: 56, tpc: 2,
		siblingOffset: 56},
	"xeon-4s-144t": {online: "0-143", sockets: 4, nodes: 4, llcs: 4, cores: 72, tpc: 2, siblingOffset: 72,
		check: func(t *testing.T, topo *topology.Topology) {
			wantLists(t, "L3 groups", llcLists(topo), "0-17,72-89", "18-35,90-107", "36-53,108-125", "54-71,126-143")
		}},
}

func TestCorpus(t *testing.T) {
	dir, names := sysfstest.Fixtures(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := corpus[name]
			if !ok {
				t.Fatalf("%s is not in the corpus table: add its facts from the README", name)
			}
			root := sysfstest.ExtractFixture(t, name)
			topo, err := topology.Read(root)
			if err != nil {
				t.Fatal(err)
			}
			checkMachine(t, topo, want)
			checkNesting(t, topo)
			// Here rather than in its own test, to unpack each tarball once.
			if err := ghwNodeMismatch(root, topo); err != nil {
				t.Error(err)
			}
		})
	}
	for name := range corpus {
		if !slices.Contains(names, name) {
			t.Errorf("corpus table lists %s but %s has no such tarball", name, dir)
		}
	}
}

func checkMachine(t *testing.T, topo *topology.Topology, w machine) {
	t.Helper()
	got := machine{topo.Online.String(), topo.Offline.String(), topo.Isolated.String(), len(topo.Sockets),
		len(topo.NUMANodes), len(topo.LLCs), len(topo.Cores), topo.ThreadsPerCore(), w.siblingOffset, nil}
	w2 := w
	w2.check = nil
	if fmt.Sprint(got) != fmt.Sprint(w2) {
		t.Errorf("read\n %+v\nwant\n %+v", got, w2)
	}
	if off := w.siblingOffset; off > 0 {
		for cpu := range off {
			if c, _ := topo.CoreOf(cpu); c == nil || c.CPUs.String() != fmt.Sprintf("%d,%d", cpu, cpu+off) {
				t.Fatalf("core of cpu %d = %v, want %d,%d", cpu, c, cpu, cpu+off)
			}
		}
	}
	if w.check != nil {
		w.check(t, topo)
	}
}

func llcLists(topo *topology.Topology) []string {
	var out []string
	for _, g := range topo.LLCs {
		out = append(out, g.CPUs.String())
	}
	return out
}

func wantLists(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
