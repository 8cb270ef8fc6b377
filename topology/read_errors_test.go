package topology_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// smallMachine is 2 sockets × 2 cores SMT2, split numbering, 2 nodes:
// cores {0,4} {1,5} on socket 0 (node 0), {2,6} {3,7} on socket 1 (node 1).
var smallMachine = sysfsgen.Spec{Sockets: 2, NUMAPerSocket: 1, CoresPerSocket: 2, ThreadsPerCore: 2,
	Numbering: sysfsgen.SMTSplit, CacheIDs: true, SMTControl: "on"}

const (
	cpuDir  = "devices/system/cpu"
	nodeDir = "devices/system/node"
)

type edit struct {
	path    string // relative to the root
	content string // written with a newline; "<remove>" deletes the path
}

func applyEdits(t *testing.T, root string, edits []edit) {
	t.Helper()
	for _, e := range edits {
		path := filepath.Join(root, e.path)
		var err error
		switch {
		case e.content == "<remove>":
			err = os.RemoveAll(path)
		case strings.HasPrefix(e.content, "<link>"):
			err = os.Symlink(strings.TrimPrefix(e.content, "<link>"), path)
		case e.content == "<fifo>":
			err = syscall.Mkfifo(path, 0o644)
		case e.content == "<huge>":
			err = os.WriteFile(path, []byte(strings.Repeat("0,", 64<<10)+"0\n"), 0o644)
		default:
			err = os.WriteFile(path, []byte(e.content+"\n"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadRejectsInconsistentInput(t *testing.T) {
	tests := map[string]struct {
		edits []edit
		file  string // the error must name this file (relative to the root)
		value string // and quote or name this value
	}{
		"sibling lists disagree": {
			[]edit{{cpuDir + "/cpu4/topology/core_cpus_list", "4-5"}},
			cpuDir + "/cpu4/topology/core_cpus_list", `"4-5" disagrees with cpu0's "0,4"`},
		"CPU in two cores": {
			[]edit{{cpuDir + "/cpu1/topology/core_cpus_list", "1,4"}},
			cpuDir + "/cpu1/topology/core_cpus_list", `"1,4" puts CPU 4 in a second core`},
		"sibling list without the CPU itself": {
			[]edit{{cpuDir + "/cpu5/topology/core_cpus_list", "1"}},
			cpuDir + "/cpu5/topology/core_cpus_list", `"1" does not contain CPU 5`},
		"unparsable sibling list": {
			[]edit{{cpuDir + "/cpu2/topology/core_cpus_list", "2-x"}},
			cpuDir + "/cpu2/topology/core_cpus_list", `"2-x"`},
		"unparsable fallback thread_siblings_list": {
			[]edit{{cpuDir + "/cpu2/topology/core_cpus_list", "<remove>"},
				{cpuDir + "/cpu2/topology/thread_siblings_list", "two"}},
			cpuDir + "/cpu2/topology/thread_siblings_list", `"two"`},
		"non-numeric package id": {
			[]edit{{cpuDir + "/cpu3/topology/physical_package_id", "abc"}},
			cpuDir + "/cpu3/topology/physical_package_id", `"abc"`},
		"non-numeric die id": {
			[]edit{{cpuDir + "/cpu3/topology/die_id", "0x1"}},
			cpuDir + "/cpu3/topology/die_id", `"0x1"`},
		"unknown package id beside known ones": {
			[]edit{{cpuDir + "/cpu6/topology/physical_package_id", "-1"}},
			cpuDir + "/cpu6/topology/physical_package_id", `"-1" (unknown)`},
		"core across two sockets": {
			[]edit{{cpuDir + "/cpu4/topology/physical_package_id", "1"}},
			cpuDir + "/cpu0/topology/core_cpus_list", "cpu4 on package 1"},
		"online CPU without topology folder": {
			[]edit{{cpuDir + "/cpu5/topology", "<remove>"}},
			cpuDir + "/cpu5/topology", "CPU 5 is online but has no topology folder"},
		"unparsable online list": {
			[]edit{{cpuDir + "/online", "0-"}},
			cpuDir + "/online", `"0-"`},
		"unparsable isolated list": {
			[]edit{{cpuDir + "/isolated", "1,,2"}},
			cpuDir + "/isolated", `"1,,2"`},
		"unparsable node cpulist": {
			[]edit{{nodeDir + "/node1/cpulist", "zz"}},
			nodeDir + "/node1/cpulist", `"zz"`},
		"CPU in two nodes": {
			[]edit{{nodeDir + "/node1/cpulist", "0,2-3,6-7"}},
			nodeDir + "/node1/cpulist", "puts CPU 0 in a second node"},
		"online CPU in no node": {
			[]edit{{nodeDir + "/node0/cpulist", "1,4-5"}},
			nodeDir, "online CPUs 0 are in no node"},
		"core split between nodes": {
			[]edit{{nodeDir + "/node0/cpulist", "0-1,5"}, {nodeDir + "/node1/cpulist", "2-4,6-7"}},
			nodeDir, "core 0,4 is split"},
		"node cpulist disagrees with its cpu links": {
			[]edit{{nodeDir + "/node0/cpu1", "<remove>"}, {nodeDir + "/node1/cpu1", "<link>../../cpu/cpu1"}},
			nodeDir + "/node0/cpulist", `"0-1,4-5" disagree with the node's cpuN links "0,4-5"`},
		"L3 lists disagree": {
			[]edit{{cpuDir + "/cpu1/cache/index3/shared_cpu_list", "1,5"}},
			cpuDir + "/cpu1/cache/index3/shared_cpu_list", `"1,5" disagrees with cpu0's "0-1,4-5"`},
		"L3 ids disagree": {
			[]edit{{cpuDir + "/cpu5/cache/index3/id", "7"}},
			cpuDir + "/cpu5/cache/index3/id", "cache id 7 disagrees with cpu0's id 0"},
		"L3 id used by two groups": {
			[]edit{{cpuDir + "/cpu2/cache/index3/id", "0"}, {cpuDir + "/cpu3/cache/index3/id", "0"},
				{cpuDir + "/cpu6/cache/index3/id", "0"}, {cpuDir + "/cpu7/cache/index3/id", "0"}},
			cpuDir + "/cpu2/cache/index3/id", "cache id 0 is also the id of L3 group 0-1,4-5"},
		"unparsable L3 id": {
			[]edit{{cpuDir + "/cpu5/cache/index3/id", "x"}},
			cpuDir + "/cpu5/cache/index3/id", `"x"`},
		"L3 missing on some CPUs": {
			[]edit{{cpuDir + "/cpu6/cache/index3", "<remove>"}},
			cpuDir + "/cpu6/cache", "CPU 6 shows no level-3 cache while CPU 0 does"},
		"unparsable cache level": {
			[]edit{{cpuDir + "/cpu6/cache/index3/level", "three"}},
			cpuDir + "/cpu6/cache/index3/level", `"three"`},
		"core split between L3 groups": {
			[]edit{{cpuDir + "/cpu0/cache/index3/shared_cpu_list", "0-1"}, {cpuDir + "/cpu1/cache/index3/shared_cpu_list", "0-1"},
				{cpuDir + "/cpu4/cache/index3/shared_cpu_list", "4-5"}, {cpuDir + "/cpu5/cache/index3/shared_cpu_list", "4-5"},
				{cpuDir + "/cpu4/cache/index3/id", "9"}, {cpuDir + "/cpu5/cache/index3/id", "9"}},
			cpuDir, "core 0,4 is split between L3 groups"},
		// A saved tree may hold anything: Read must neither hang nor
		// read without end.
		"FIFO in place of an attribute": {
			[]edit{{cpuDir + "/online", "<remove>"}, {cpuDir + "/online", "<fifo>"}},
			cpuDir + "/online", "is not a regular file"},
		"link to a device in place of an attribute": {
			[]edit{{cpuDir + "/online", "<remove>"}, {cpuDir + "/online", "<link>/dev/zero"}},
			cpuDir + "/online", "is not a regular file"},
		"oversized attribute": {
			[]edit{{cpuDir + "/cpu2/topology/core_cpus_list", "<huge>"}},
			cpuDir + "/cpu2/topology/core_cpus_list", "is longer than 65536 bytes"},
		"online file of a CPU neither 0 nor 1": {
			[]edit{{cpuDir + "/online", "<remove>"}, {cpuDir + "/cpu3/online", "yes"}},
			cpuDir + "/cpu3/online", `"yes"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := sysfstest.TempDir(t)
			if err := sysfsgen.Write(root, smallMachine); err != nil {
				t.Fatal(err)
			}
			applyEdits(t, root, tc.edits)
			topo, err := topology.Read(root)
			if err == nil {
				t.Fatalf("Read succeeded (%d cores), want an error naming %s", len(topo.Cores), tc.file)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "topology: ") || !strings.Contains(msg, filepath.Join(root, tc.file)+":") ||
				!strings.Contains(msg, tc.value) {
				t.Errorf("error\n  %s\nwant it to name %s and %s", msg, tc.file, tc.value)
			}
		})
	}
}

// TestReadToleratesMissingOptionalFiles removes what old kernels, other
// architectures and snapshots lack, and expects the same machine back.
func TestReadToleratesMissingOptionalFiles(t *testing.T) {
	root := sysfstest.TempDir(t)
	if err := sysfsgen.Write(root, smallMachine); err != nil {
		t.Fatal(err)
	}
	var edits []edit
	for _, f := range []string{"online", "offline", "present", "possible", "isolated", "smt"} {
		edits = append(edits, edit{cpuDir + "/" + f, "<remove>"})
	}
	for cpu := range 8 {
		dir := cpuDir + "/cpu" + strconv.Itoa(cpu)
		edits = append(edits, edit{dir + "/topology/die_id", "<remove>"}, edit{dir + "/topology/core_id", "<remove>"},
			edit{dir + "/topology/core_cpus_list", "<remove>"}, edit{dir + "/cache/index3/id", "<remove>"},
			edit{dir + "/topology/physical_package_id", "-1"})
	}
	applyEdits(t, root, edits)
	topo, err := topology.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	// All package ids said -1 (unknown): one socket, as the kernel means.
	if len(topo.Sockets) != 1 || len(topo.Cores) != 4 || topo.Online.String() != "0-7" || topo.SMTControl != "" ||
		topo.Cores[1].CPUs.String() != "1,5" || topo.Cores[0].CoreID != -1 || topo.LLCs[0].ID != -1 || len(topo.NUMANodes) != 2 {
		t.Errorf("read %+v", topo)
	}
}

// TestReadDerivesOnlineWithoutOnlineFile follows cpuN/online when
// cpu/online is missing, as in old snapshots.
func TestReadDerivesOnlineWithoutOnlineFile(t *testing.T) {
	root := sysfstest.TempDir(t)
	spec := smallMachine
	spec.Offline = cpuset.New(7)
	if err := sysfsgen.Write(root, spec); err != nil {
		t.Fatal(err)
	}
	applyEdits(t, root, []edit{{cpuDir + "/online", "<remove>"}, {cpuDir + "/present", "<remove>"},
		{cpuDir + "/offline", "<remove>"}, {cpuDir + "/cpu0/online", "<remove>"}})
	topo, err := topology.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if topo.Online.String() != "0-6" || topo.Offline.String() != "7" {
		t.Errorf("online %s offline %s, want 0-6 and 7", topo.Online, topo.Offline)
	}
}

func TestReadMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nothing")
	if _, err := topology.Read(root); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("Read of a missing root: %v", err)
	}
}
