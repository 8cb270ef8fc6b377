package topology_test

import (
	"os"
	"testing"

	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// TestReadHost reads the real /sys loosely: machines differ, so it only
// asks for no error and some online CPUs.
func TestReadHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu"); err != nil {
		t.Skipf("no sysfs here: %v", err)
	}
	topo, err := topology.Read(topology.DefaultSysfsRoot)
	if err != nil {
		t.Fatalf("Read(/sys): %v", err)
	}
	if topo.Online.IsEmpty() || len(topo.Cores) == 0 {
		t.Errorf("host topology has no online CPUs: %+v", topo)
	}
	t.Logf("host: %d sockets, %d cores, online %s", len(topo.Sockets), len(topo.Cores), topo.Online)
}

// BenchmarkRead384 reads the 384-CPU EPYC-like tree (budget: well under 100 ms).
func BenchmarkRead384(b *testing.B) {
	root := sysfstest.TempDir(b)
	if err := writeShape(root, "epyc-2s-384"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := topology.Read(root); err != nil {
			b.Fatal(err)
		}
	}
}
