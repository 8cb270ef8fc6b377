package topology_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

func writeShape(root, name string) error {
	return sysfsgen.Write(root, sysfsgen.Shapes()[name])
}

func drawShape(t *testing.T, name string, opts topology.DrawOptions) string {
	t.Helper()
	topo := readSpec(t, sysfsgen.Shapes()[name])
	var sb strings.Builder
	if err := topology.Draw(&sb, topo, opts); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestDraw(t *testing.T) {
	tests := map[string]struct {
		opts  topology.DrawOptions
		lines []string // each must appear as a whole line (after trimming indentation)
	}{
		sysfsgen.IntelHT2S: {lines: []string{
			"2 sockets, 2 NUMA nodes, 2 L3 groups, 40 cores, 80 threads (SMT2, smt on), online 0-79, isolated -, offline -",
			"socket 1: 20 cores, 40 threads",
			"NUMA node 1: 20 cores, cpus 20-39,60-79",
			"L3 #1 id 1: 20 cores, cpus 20-39,60-79",
		}},
		sysfsgen.IsolCPUs: {lines: []string{
			"[0 8] [1 9] [2i 10i] [3i 11i] [4 12] [5 13] [6 14] [7 15]",
			"legend: Ni = CPU N is isolated (isolcpus)",
		}},
		sysfsgen.OfflineCPUs: {lines: []string{
			"[0 1] [2] [4 5] [6 7] [8 9] [10 11] [12 13]",
			"offline CPUs (no topology): 3,14-15",
		}},
		sysfsgen.HybridAlderLake: {lines: []string{
			"1 socket, 1 NUMA node, 1 L3 group, 16 cores, 24 threads (8x2 + 8x1 threads, smt on), online 0-23, isolated -, offline -",
			"[0 1] [2 3] [4 5] [6 7] [8 9] [10 11] [12 13] [14 15] [16] [17] [18] [19] [20] [21] [22] [23]",
		}},
		sysfsgen.SNC2S: {lines: []string{
			"NUMA node 1: 5 cores, cpus 5-9,25-29",
			"L3 #0 id 0: 5 of its 10 cores here, shared with NUMA nodes 0,1",
			"[5 25] [6 26] [7 27] [8 28] [9 29]",
		}},
		sysfsgen.MultiDie: {lines: []string{"die 1: 8 cores", "NUMA node 1: 8 cores, cpus 8-15,24-31"}},
		sysfsgen.TwoCPUsTwoCores: {
			opts: topology.DrawOptions{
				CoreTag: func(c topology.Core) string { return map[int]string{0: "R", 1: "#1"}[c.Index] },
				Legend:  []string{"R reserved, #n allocation n"},
			},
			lines: []string{"[0]R [1]#1", "R reserved, #n allocation n"}},
		sysfsgen.NoL3NoNUMA: {lines: []string{"L3 (no cache info): 8 cores, cpus 0-7"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := drawShape(t, name, tc.opts)
			have := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				have[strings.TrimSpace(l)] = true
			}
			for _, want := range tc.lines {
				if !have[want] {
					t.Errorf("drawing lacks line %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestDrawWideMachine keeps the 384-CPU drawing within 120 columns, with
// one line of cores per L3 group, also with tags and scattered lists.
func TestDrawWideMachine(t *testing.T) {
	spec := sysfsgen.Shapes()[sysfsgen.EPYC384]
	var every3rd cpuset.Builder // a long scattered list
	for cpu := 0; cpu < 384; cpu += 3 {
		every3rd.Add(cpu)
	}
	spec.Isolated = every3rd.Set()
	topo := readSpec(t, spec)
	var sb strings.Builder
	err := topology.Draw(&sb, topo, topology.DrawOptions{CoreTag: func(c topology.Core) string { return "#12" }})
	if err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for i, l := range strings.Split(out, "\n") {
		if n := len([]rune(l)); n > 120 {
			t.Errorf("line %d has %d characters: %q", i+1, n, l)
		}
	}
	if !strings.Contains(out, "L3 #23 id 23: 8 cores") || strings.Count(out, "[") != 192 {
		t.Errorf("drawing misses L3 groups or cores:\n%s", out)
	}
	t.Logf("\n%s", out)
}

func TestSummaryJSON(t *testing.T) {
	topo := readSpec(t, sysfsgen.Shapes()[sysfsgen.IsolCPUs])
	b, err := json.Marshal(topology.Summary(topo))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"sockets": 1.0, "numaNodes": 1.0, "llcGroups": 1.0, "cores": 8.0, "threads": 16.0,
		"online": "0-15", "isolated": "2-3,10-11", "offline": "", "dies": 1.0, "threadsPerCore": 2.0, "smtControl": "on"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	cores, _ := got["coreList"].([]any)
	if len(cores) != 8 || cores[0] != "0,8" || cores[7] != "7,15" {
		t.Errorf("coreList = %v", got["coreList"])
	}
	detail, _ := got["coresDetail"].([]any)
	if len(detail) != 8 {
		t.Errorf("coresDetail = %v", got["coresDetail"])
	}
	// Slices print as [] on an empty model, never null.
	empty, _ := json.Marshal(topology.Summary(&topology.Topology{}))
	if strings.Contains(string(empty), "null") {
		t.Errorf("empty summary has null: %s", empty)
	}
}
