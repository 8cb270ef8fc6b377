package topology_test

import (
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// readSpec writes spec to a fresh tree and reads it back.
func readSpec(t *testing.T, spec sysfsgen.Spec) *topology.Topology {
	t.Helper()
	dir := sysfstest.TempDir(t)
	if err := sysfsgen.Write(dir, spec); err != nil {
		t.Fatalf("Write: %v", err)
	}
	topo, err := topology.Read(dir)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return topo
}

// shape is what a generated machine must read back as.
type shape struct {
	sockets, dies, nodes, llcs, cores, threadsPerCore int
	online, offline, isolated, smt                    string
	coreOf                                            map[int]string // CPU -> its core's CPUs
	check                                             func(t *testing.T, topo *topology.Topology)
}

func TestReadGeneratedShapes(t *testing.T) {
	shapes := sysfsgen.Shapes()
	tests := map[string]struct {
		spec sysfsgen.Spec
		want shape
	}{
		sysfsgen.IntelHT2S: {shapes[sysfsgen.IntelHT2S], shape{2, 2, 2, 2, 40, 2, "0-79", "", "", "on",
			map[int]string{0: "0,40", 25: "25,65", 65: "25,65"}, func(t *testing.T, topo *topology.Topology) {
				wantSocket(t, topo, map[int]int{0: 0, 19: 0, 20: 1, 59: 0, 60: 1})
				if topo.LLCs[1].ID != 1 || topo.LLCs[1].CPUs.String() != "20-39,60-79" {
					t.Errorf("LLC 1 = %+v", topo.LLCs[1])
				}
			}}},
		sysfsgen.EPYC384: {shapes[sysfsgen.EPYC384], shape{2, 2, 2, 24, 192, 2, "0-383", "", "", "on",
			map[int]string{0: "0,192", 200: "8,200", 383: "191,383"}, func(t *testing.T, topo *topology.Topology) {
				for cpu := range topo.Online.All() {
					if c, _ := topo.CoreOf(cpu); c.CPUs.Min() != cpu%192 {
						t.Fatalf("cpu %d is on core %s, want core of %d", cpu, c.CPUs, cpu%192)
					}
				}
				for _, g := range topo.LLCs {
					if g.CPUs.Size() != 16 {
						t.Errorf("L3 group %s has %d CPUs, want 16", g.CPUs, g.CPUs.Size())
					}
				}
				if got := topo.LLCs[1].CPUs.String(); got != "8-15,200-207" {
					t.Errorf("LLC 1 = %s", got)
				}
			}}},
		sysfsgen.HybridAlderLake: {shapes[sysfsgen.HybridAlderLake], shape{1, 1, 1, 1, 16, 2, "0-23", "", "", "on",
			map[int]string{0: "0-1", 15: "14-15", 16: "16", 23: "23"}, nil}},
		sysfsgen.SMT4: {shapes[sysfsgen.SMT4], shape{1, 1, 1, 1, 16, 4, "0-63", "", "", "on",
			map[int]string{0: "0-3", 62: "60-63"}, nil}},
		sysfsgen.SMT8: {shapes[sysfsgen.SMT8], shape{2, 2, 2, 2, 8, 8, "0-63", "", "", "",
			map[int]string{33: "32-39"}, func(t *testing.T, topo *topology.Topology) {
				wantSocket(t, topo, map[int]int{31: 0, 32: 1})
			}}},
		sysfsgen.OfflineCPUs: {shapes[sysfsgen.OfflineCPUs], shape{1, 1, 1, 1, 7, 2, "0-2,4-13", "3,14-15", "", "on",
			map[int]string{2: "2", 12: "12-13"}, nil}},
		sysfsgen.IsolCPUs: {shapes[sysfsgen.IsolCPUs], shape{1, 1, 1, 1, 8, 2, "0-15", "", "2-3,10-11", "on",
			map[int]string{2: "2,10"}, nil}},
		sysfsgen.NoSMT: {shapes[sysfsgen.NoSMT], shape{1, 1, 1, 1, 8, 1, "0-7", "", "", "notsupported",
			map[int]string{5: "5"}, nil}},
		sysfsgen.Interleaved2S: {shapes[sysfsgen.Interleaved2S], shape{2, 2, 4, 2, 16, 2, "0-31", "", "", "on",
			map[int]string{0: "0,16", 1: "1,17"}, func(t *testing.T, topo *topology.Topology) {
				wantSocket(t, topo, map[int]int{0: 1, 1: 0, 2: 1, 17: 0})
				if got := topo.NUMANodes[0].CPUs.String(); got != "1,3,5,7,17,19,21,23" {
					t.Errorf("node 0 = %s, want the scattered 1,3,5,7,17,19,21,23", got)
				}
				if topo.Sockets[0].ID != 0 || topo.Cores[0].Socket != 1 {
					t.Errorf("sockets %+v, core 0 on socket %d", topo.Sockets, topo.Cores[0].Socket)
				}
			}}},
		sysfsgen.SNC2S: {shapes[sysfsgen.SNC2S], shape{2, 2, 4, 2, 20, 2, "0-39", "", "", "on",
			map[int]string{0: "0,20"}, func(t *testing.T, topo *topology.Topology) {
				if got := topo.LLCs[0].CPUs.String(); got != "0-9,20-29" {
					t.Errorf("L3 0 = %s", got)
				}
				if got := topo.NUMANodes[1].CPUs.String(); got != "5-9,25-29" {
					t.Errorf("node 1 = %s", got)
				}
				c, _ := topo.CPU(5)
				if c.NUMA != 1 || c.LLC != 0 {
					t.Errorf("cpu 5 = %+v, want node 1 in L3 group 0", c)
				}
			}}},
		sysfsgen.MultiDie: {shapes[sysfsgen.MultiDie], shape{1, 2, 2, 2, 16, 2, "0-31", "", "", "on",
			map[int]string{8: "8,24"}, func(t *testing.T, topo *topology.Topology) {
				// core_id restarts on each die: identity is the sibling set.
				if a, b := topo.Cores[0], topo.Cores[8]; a.CoreID != b.CoreID || a.Die == b.Die {
					t.Errorf("cores %+v and %+v should share core_id 0 on different dies", a, b)
				}
			}}},
		sysfsgen.MemoryOnlyNodes: {shapes[sysfsgen.MemoryOnlyNodes], shape{2, 2, 2, 2, 8, 2, "0-15", "", "", "on",
			nil, nil}},
		sysfsgen.NoL3NoNUMA: {shapes[sysfsgen.NoL3NoNUMA], shape{1, 1, 1, 1, 8, 1, "0-7", "", "", "",
			nil, func(t *testing.T, topo *topology.Topology) {
				if g := topo.LLCs[0]; !g.Implicit || g.ID != -1 || topo.NUMANodes[0].ID != 0 {
					t.Errorf("want implicit L3 group and node 0, got %+v %+v", g, topo.NUMANodes)
				}
			}}},
		sysfsgen.TwoCPUsOneCore:  {shapes[sysfsgen.TwoCPUsOneCore], shape{1, 1, 1, 1, 1, 2, "0-1", "", "", "on", nil, nil}},
		sysfsgen.TwoCPUsTwoCores: {shapes[sysfsgen.TwoCPUsTwoCores], shape{1, 1, 1, 1, 2, 1, "0-1", "", "", "notsupported", nil, nil}},
		"2 sockets without L3: one implicit group per socket": {
			sysfsgen.Spec{Sockets: 2, CoresPerSocket: 4, ThreadsPerCore: 2, Numbering: sysfsgen.SMTSplit, NoL3: true, NoDieID: true},
			shape{2, 2, 2, 2, 8, 2, "0-15", "", "", "", nil, func(t *testing.T, topo *topology.Topology) {
				if g := topo.LLCs[1]; !g.Implicit || g.CPUs.String() != "4-7,12-15" {
					t.Errorf("LLC 1 = %+v", g)
				}
			}}},
		"offline and isolated overlap: isolated keeps online CPUs only": {
			sysfsgen.Spec{CoresPerSocket: 4, ThreadsPerCore: 2, Offline: cpuset.New(7), Isolated: cpuset.MustParse("5-7")},
			shape{1, 1, 1, 1, 4, 2, "0-6", "7", "5-6", "", map[int]string{6: "6"}, nil}},
		"no NUMA, interleaved, hybrid": {
			sysfsgen.Spec{Sockets: 2, CoresPerSocket: 2, ThreadsPerCore: 2, ECoresPerSocket: 2, NoNUMA: true,
				Numbering: sysfsgen.InterleavedSockets, CacheIDs: true},
			shape{2, 2, 1, 2, 8, 2, "0-11", "", "", "", map[int]string{0: "0,8", 1: "1,9", 4: "4"}, nil}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			topo := readSpec(t, tc.spec)
			checkShape(t, topo, tc.want)
			checkNesting(t, topo)
		})
	}
}

func checkShape(t *testing.T, topo *topology.Topology, w shape) {
	t.Helper()
	got := shape{len(topo.Sockets), len(topo.Dies), len(topo.NUMANodes), len(topo.LLCs), len(topo.Cores),
		topo.ThreadsPerCore(), topo.Online.String(), topo.Offline.String(), topo.Isolated.String(), topo.SMTControl, nil, nil}
	w2 := w
	w2.coreOf, w2.check = nil, nil
	if got.sockets != w2.sockets || got.dies != w2.dies || got.nodes != w2.nodes || got.llcs != w2.llcs ||
		got.cores != w2.cores || got.threadsPerCore != w2.threadsPerCore || got.online != w2.online ||
		got.offline != w2.offline || got.isolated != w2.isolated || got.smt != w2.smt {
		t.Errorf("read\n %+v\nwant\n %+v", got, w2)
	}
	for cpu, want := range w.coreOf {
		c, ok := topo.CoreOf(cpu)
		if !ok || c.CPUs.String() != want {
			t.Errorf("core of cpu %d = %v, want %s", cpu, c, want)
		}
	}
	if w.check != nil {
		w.check(t, topo)
	}
}

// checkNesting checks that every core lies inside its socket, die, node and
// L3 group as their CPU sets say.
func checkNesting(t *testing.T, topo *topology.Topology) {
	t.Helper()
	for _, c := range topo.Cores {
		var in []cpuset.CPUSet
		for _, s := range topo.Sockets {
			if s.ID == c.Socket {
				in = append(in, s.CPUs)
			}
		}
		for _, d := range topo.Dies {
			if d.Socket == c.Socket && d.ID == c.Die {
				in = append(in, d.CPUs)
			}
		}
		for _, n := range topo.NUMANodes {
			if n.ID == c.NUMA {
				in = append(in, n.CPUs)
			}
		}
		in = append(in, topo.LLCs[c.LLC].CPUs)
		if len(in) != 4 {
			t.Fatalf("core %s: found %d of its 4 parents", c.CPUs, len(in))
		}
		for _, set := range in {
			if !c.CPUs.IsSubsetOf(set) {
				t.Errorf("core %s is not inside %s", c.CPUs, set)
			}
		}
	}
}

func wantSocket(t *testing.T, topo *topology.Topology, want map[int]int) {
	t.Helper()
	for cpu, s := range want {
		if c, _ := topo.CPU(cpu); c.Socket != s {
			t.Errorf("cpu %d on socket %d, want %d", cpu, c.Socket, s)
		}
	}
}
