package alloc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

// kubeletCase is one request sequence run through kubelet's own static
// policy (v1.37.2, via ../shared/tools/kubecmp); testdata/kubelet/README.md
// says how the data was made.
type kubeletCase struct {
	Name          string   `json:"name"`
	Topology      string   `json:"topology"`
	Reserved      string   `json:"reserved"`
	Options       string   `json:"options"`
	InitialShared *string  `json:"initial_shared"`
	Anomalies     []string `json:"kubelet_anomalies"`
	Ops           []struct {
		Request int  `json:"request"`
		Free    *int `json:"free"`
	} `json:"ops"`
	Kubelet []struct {
		Request   int    `json:"request"`
		CPUs      string `json:"cpus"`
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	} `json:"kubelet"`
}

// TestAgainstKubelet replays kubelet's choices and, before each of its
// allocations, asks coreguard for the same request on the same free CPUs.
// coreguard must never span more sockets, NUMA nodes or L3 groups than
// kubelet did; it must run every request kubelet ran; and it must run the
// odd requests kubelet refused with SMTAlignmentError when whole cores
// are free.
func TestAgainstKubelet(t *testing.T) {
	data, err := os.ReadFile("testdata/kubelet/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []kubeletCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	topos := map[string]*topology.Topology{}
	var compared, better, oddRun, skipped int
	for _, kc := range cases {
		// Only full-pcpus-only gives whole cores, the ground coreguard
		// stands on; kubelet's answers on its hybrid shape give one CPU to
		// two containers (see the README) and are no target.
		if !strings.Contains(kc.Options, "full-pcpus-only") || len(kc.Anomalies) > 0 {
			continue
		}
		topo := topos[kc.Topology]
		if topo == nil {
			topo = loadKubeletTopology(t, kc.Topology)
			topos[kc.Topology] = topo
		}
		if kubeletSplitsCores(topo, kc) {
			// kubelet takes a hybrid machine's CPUs per core to be 1 and
			// splits its P-cores: no whole-core target to compare with.
			skipped++
			continue
		}
		t.Run(kc.Name, func(t *testing.T) {
			c, b, o := replayKubelet(t, topo, kc)
			compared, better, oddRun = compared+c, better+b, oddRun+o
		})
	}
	if compared < 1000 {
		t.Fatalf("compared only %d allocations with kubelet's", compared)
	}
	t.Logf("compared %d allocations with kubelet's: %d more compact than kubelet; %d odd requests kubelet refused ran on whole cores; %d cases skipped where kubelet split cores",
		compared, better, oddRun, skipped)
}

func replayKubelet(t *testing.T, topo *topology.Topology, kc kubeletCase) (compared, better, oddRun int) {
	reserved := cpuset.MustParse(kc.Reserved)
	// Cases from kubelet's own tests may start from a mock state: CPUs
	// outside its initial shared pool are held by someone else.
	var initial cpuset.CPUSet
	if kc.InitialShared != nil {
		initial = topo.Online.Difference(cpuset.MustParse(*kc.InitialShared))
	}
	var live []cpuset.CPUSet // kubelet's allocations by request index; empty once freed
	for i, op := range kc.Ops {
		got := kc.Kubelet[i]
		if op.Free != nil {
			live[*op.Free] = cpuset.CPUSet{}
			continue
		}
		a, err := New(topo, Options{Reserved: reserved})
		if err != nil {
			t.Fatal(err)
		}
		// kubelet's mock states leave the reserved CPUs out of the shared
		// pool too: they are reserved here, not held.
		held := initial.Difference(a.Reserved())
		for _, s := range live {
			held = held.Union(s)
		}
		if !held.IsEmpty() {
			if _, err := a.Take("kubelet", held); err != nil {
				t.Fatalf("op %d: kubelet's allocations %s: %v", i, held, err)
			}
		}
		ours, ourErr := a.Allocate("coreguard", op.Request)
		theirs := cpuset.MustParse(got.CPUs)
		live = append(live, theirs)
		switch {
		case got.Error == "":
			if ourErr != nil {
				t.Fatalf("op %d: kubelet gave %d CPUs %s, coreguard refused: %v", i, op.Request, theirs, ourErr)
			}
			compared++
			if msg := moreSpread(topo, ours.Cores(), theirs); msg != "" {
				t.Errorf("op %d: %d CPUs on free %s: coreguard %s spans more %s than kubelet's %s",
					i, op.Request, a.Free().Union(ours.Cores()), ours.CPUs, msg, theirs)
			}
			if spanCost(topo, ours.Cores()) < spanCost(topo, theirs) {
				better++
			}
		case got.ErrorType == "SMTAlignmentError" && strings.Contains(got.Error, "not multiple"):
			var ex *ExhaustedError
			if ourErr != nil && !(errors.As(ourErr, &ex) && a.Free().Size() < op.Request) {
				t.Fatalf("op %d: kubelet refused odd %d (%s); coreguard should run it: %v", i, op.Request, got.Error, ourErr)
			}
			if ourErr == nil {
				oddRun++
			}
		}
	}
	return compared, better, oddRun
}

func kubeletSplitsCores(topo *topology.Topology, kc kubeletCase) bool {
	for _, k := range kc.Kubelet {
		for cpu := range cpuset.MustParse(k.CPUs).All() {
			if core, _ := topo.CoreOf(cpu); !core.CPUs.IsSubsetOf(cpuset.MustParse(k.CPUs)) {
				return true
			}
		}
	}
	return false
}

// spanCounts counts the sockets, NUMA nodes and L3 groups a set touches.
func spanCounts(t *topology.Topology, s cpuset.CPUSet) [3]int {
	sockets, nodes, llcs := map[int]bool{}, map[int]bool{}, map[int]bool{}
	for cpu := range s.All() {
		c, _ := t.CPU(cpu)
		sockets[c.Socket], nodes[c.NUMA], llcs[c.LLC] = true, true, true
	}
	return [3]int{len(sockets), len(nodes), len(llcs)}
}

func moreSpread(t *topology.Topology, ours, theirs cpuset.CPUSet) string {
	o, k := spanCounts(t, ours), spanCounts(t, theirs)
	var worse []string
	for i, what := range []string{"sockets", "NUMA nodes", "L3 groups"} {
		if o[i] > k[i] {
			worse = append(worse, fmt.Sprintf("%s (%d > %d)", what, o[i], k[i]))
		}
	}
	return strings.Join(worse, ", ")
}

func spanCost(t *topology.Topology, s cpuset.CPUSet) int {
	sp := spanCounts(t, s)
	return sp[0]*10000 + sp[1]*100 + sp[2]
}

func loadKubeletTopology(t *testing.T, name string) *topology.Topology {
	data, err := os.ReadFile(filepath.Join("testdata/kubelet/topologies", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		CPUs []place `json:"cpus"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return buildTopology(t, doc.CPUs, cpuset.CPUSet{})
}
