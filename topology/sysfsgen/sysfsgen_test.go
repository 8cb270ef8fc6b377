package sysfsgen_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

func TestShapesBuild(t *testing.T) {
	for name, spec := range sysfsgen.Shapes() {
		t.Run(name, func(t *testing.T) {
			topo, err := sysfsgen.BuildShape(name)
			if err != nil {
				t.Fatal(err)
			}
			if want := spec.CPUs() - spec.Offline.Size(); topo.Online.Size() != want {
				t.Errorf("%d online CPUs, want %d", topo.Online.Size(), want)
			}
		})
	}
	if _, err := sysfsgen.BuildShape("no-such-shape"); err == nil {
		t.Error("BuildShape of an unknown name succeeded")
	}
}

func TestSpecValidation(t *testing.T) {
	tests := map[string]struct {
		spec sysfsgen.Spec
		want string
	}{
		"no cores":            {sysfsgen.Spec{Sockets: 2}, "no cores"},
		"uneven LLC split":    {sysfsgen.Spec{CoresPerSocket: 6, LLCPerSocket: 4}, "LLCPerSocket 4 does not divide 6"},
		"negative":            {sysfsgen.Spec{CoresPerSocket: -1}, "negative"},
		"unknown numbering":   {sysfsgen.Spec{CoresPerSocket: 2, Numbering: "zigzag"}, `unknown numbering "zigzag"`},
		"offline beyond CPUs": {sysfsgen.Spec{CoresPerSocket: 2, Offline: cpuset.New(2)}, "CPU 2 is beyond"},
		"all offline":         {sysfsgen.Spec{CoresPerSocket: 2, Offline: cpuset.Range(0, 1)}, "every CPU is offline"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := sysfsgen.Write(t.TempDir(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestOfflineCPUFiles checks the kernel's way with offline CPUs: an online
// file saying 0, a node link, and no topology or cache folder.
func TestOfflineCPUFiles(t *testing.T) {
	root := sysfstest.TempDir(t)
	if err := sysfsgen.Write(root, sysfsgen.Spec{CoresPerSocket: 2, ThreadsPerCore: 2, Offline: cpuset.New(3)}); err != nil {
		t.Fatal(err)
	}
	cpu3 := filepath.Join(root, "devices/system/cpu/cpu3")
	if b, err := os.ReadFile(filepath.Join(cpu3, "online")); err != nil || string(b) != "0\n" {
		t.Errorf("cpu3/online = %q, %v", b, err)
	}
	for _, gone := range []string{"topology", "cache"} {
		if _, err := os.Stat(filepath.Join(cpu3, gone)); !os.IsNotExist(err) {
			t.Errorf("offline cpu3 has %s (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "devices/system/node/node0/cpu3")); err != nil {
		t.Errorf("node0 lacks its offline cpu3 link: %v", err)
	}
	for file, want := range map[string]string{"online": "0-2\n", "offline": "3\n", "present": "0-3\n",
		"cpu2/topology/core_cpus_list": "2\n", "cpu0/topology/core_cpus_list": "0-1\n"} {
		if b, _ := os.ReadFile(filepath.Join(root, "devices/system/cpu", file)); string(b) != want {
			t.Errorf("cpu/%s = %q, want %q", file, b, want)
		}
	}
}

// TestWriteTopologyRoundTrip writes a hand-made model and reads it back.
func TestWriteTopologyRoundTrip(t *testing.T) {
	orig, err := sysfsgen.Build(sysfsgen.Shapes()[sysfsgen.SNC2S])
	if err != nil {
		t.Fatal(err)
	}
	hand := &topology.Topology{
		Online: cpuset.MustParse("0-2"), Offline: cpuset.New(3), Isolated: cpuset.New(2), SMTControl: "on",
		Sockets:   []topology.Socket{{ID: 1, CPUs: cpuset.MustParse("0-2")}},
		Dies:      []topology.Die{{Socket: 1, ID: 0, CPUs: cpuset.MustParse("0-2")}},
		NUMANodes: []topology.NUMANode{{ID: 3, CPUs: cpuset.MustParse("0-2")}},
		LLCs:      []topology.LLC{{Index: 0, ID: 5, CPUs: cpuset.MustParse("0-2")}},
		Cores: []topology.Core{
			{Index: 0, CoreID: 0, CPUs: cpuset.MustParse("0-1"), Socket: 1, NUMA: 3},
			{Index: 1, CoreID: 1, CPUs: cpuset.New(2), Socket: 1, NUMA: 3},
		},
	}
	for name, model := range map[string]*topology.Topology{"generated SNC": orig, "hand-made": hand} {
		t.Run(name, func(t *testing.T) {
			root := sysfstest.TempDir(t)
			if err := sysfsgen.WriteTopology(root, model); err != nil {
				t.Fatal(err)
			}
			back, err := topology.Read(root)
			if err != nil {
				t.Fatal(err)
			}
			a, b := topology.Summary(model), topology.Summary(back)
			if got, want := strings.Join(b.CoreList, " "), strings.Join(a.CoreList, " "); got != want ||
				a.Online != b.Online || a.Offline != b.Offline || a.Isolated != b.Isolated ||
				a.Sockets != b.Sockets || a.NUMANodes != b.NUMANodes || a.LLCGroups != b.LLCGroups ||
				a.SMTControl != b.SMTControl {
				t.Errorf("read back\n %+v\nwant\n %+v", b, a)
			}
			for i := range a.CoresDetail {
				if a.CoresDetail[i] != b.CoresDetail[i] {
					t.Errorf("core %d: read back %+v, want %+v", i, b.CoresDetail[i], a.CoresDetail[i])
				}
			}
		})
	}
}
