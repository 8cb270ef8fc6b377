package alloc

import (
	"testing"

	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// extraPropertyTopologies are the generated machine shapes (read back
// through the real sysfs reader: hybrid, SMT4/8, interleaved sockets,
// offline CPUs, isolcpus, SNC, multi-die...) and the real machines' trees.
func extraPropertyTopologies(tb testing.TB) map[string]*topology.Topology {
	tb.Helper()
	out := map[string]*topology.Topology{}
	for name, spec := range sysfsgen.Shapes() {
		if spec.CPUs() < 4 {
			continue // too small to leave a shared pool after a reserved core
		}
		t, err := sysfsgen.Build(spec)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		out["gen/"+name] = t
	}
	if t, ok := tb.(*testing.T); ok {
		t.Run("real machines", func(t *testing.T) {
			_, names := sysfstest.Fixtures(t)
			for _, name := range names {
				topo, err := topology.Read(sysfstest.ExtractFixture(t, name))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if topo.Online.Size() >= 4 {
					out["real/"+name] = topo
				}
			}
		})
	}
	return out
}
