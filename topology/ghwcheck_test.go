package topology_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jaypipes/ghw"
	ghwcpu "github.com/jaypipes/ghw/pkg/cpu"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// Why ghw is a cross-check in tests and not Read's source (ghw v0.27.0):
//   - ghw.CPU drops every logical CPU that /proc/cpuinfo does not list, so on
//     a sysfs tree alone (tests, snapshots, --sysfs-root) it finds nothing;
//     and it keys cores by (package, core_id), which repeats across dies.
//   - ghw.Topology stops at the first node whose memory it cannot read from
//     /proc/meminfo and node/nodeN/meminfo, so a sysfs tree alone gives no
//     nodes; it also keeps nodes without CPUs.
//   - Neither reads online/offline/isolated lists, die ids or sibling lists.
//
// What ghw does read well from sysfs alone is a node's CPUs, through the
// node/nodeN/cpuX links (skipping offline ones). Read compares
// node/nodeN/cpulist with those links itself, one directory read per node;
// the tests here confirm with ghw's independent reading, on every generated
// shape and (from TestCorpus) every real machine. Read no longer calls ghw
// so that ghw and its pci, gpu, usb, ... packages stay out of the coreguard
// binary and from under cpuset/alloc. ghw's memory.CachesForNode would
// confirm the L3 groups too, but it reads three files per cache level per
// CPU and alone took longer than all of Read on a 384-CPU tree.

// ghwContext points ghw at sysfsRoot: ghw's chroot is the directory that
// holds sys/, so the /sys path is overridden to the chroot itself.
func ghwContext(sysfsRoot string) context.Context {
	ctx := context.Background()
	for _, m := range []ghw.Modifier{
		ghw.WithChroot(sysfsRoot),
		ghw.WithPathOverrides(map[string]string{"/sys": "/"}),
		// ghw logs to stderr; its warnings repeat what the tests report.
		ghw.WithLogger(slog.New(slog.DiscardHandler)),
	} {
		ctx = m(ctx)
	}
	return ctx
}

// ghwNodeMismatch compares, node by node, Read's CPUs with the online CPUs
// ghw finds in the node's folder. The one node Read makes up when there are
// no node folders, and nodes whose folder has no cpuN links (some
// snapshots), are not compared.
func ghwNodeMismatch(sysfsRoot string, topo *topology.Topology) error {
	ctx := ghwContext(sysfsRoot)
	for _, n := range topo.NUMANodes {
		dir := filepath.Join(sysfsRoot, "devices", "system", "node", "node"+strconv.Itoa(n.ID))
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		cores, err := ghwcpu.CoresForNode(ctx, n.ID)
		if err != nil {
			return fmt.Errorf("ghw: node%d: %w", n.ID, err)
		}
		var linked cpuset.Builder
		for _, c := range cores {
			for _, cpu := range c.LogicalProcessors {
				if cpu >= 0 && cpu < cpuset.MaxCPUs {
					linked.Add(cpu)
				}
			}
		}
		seen := linked.Set().Intersection(topo.Online)
		if !seen.IsEmpty() && !seen.Equals(n.CPUs) {
			return fmt.Errorf("node%d: Read has online CPUs %s, ghw finds %s through the cpuN links", n.ID, n.CPUs, seen)
		}
	}
	return nil
}

func TestGHWAgreesOnGeneratedShapes(t *testing.T) {
	for name, spec := range sysfsgen.Shapes() {
		t.Run(name, func(t *testing.T) {
			root := sysfstest.TempDir(t)
			if err := sysfsgen.Write(root, spec); err != nil {
				t.Fatal(err)
			}
			topo, err := topology.Read(root)
			if err != nil {
				t.Fatal(err)
			}
			if err := ghwNodeMismatch(root, topo); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestGHWSeesMovedLink makes sure the cross-check can fail: with node0's
// link to CPU 1 moved to node1, ghw must disagree with the nodes Read
// found before the move (Read itself now refuses the tree).
func TestGHWSeesMovedLink(t *testing.T) {
	root := sysfstest.TempDir(t)
	if err := sysfsgen.Write(root, smallMachine); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	applyEdits(t, root, []edit{{nodeDir + "/node0/cpu1", "<remove>"}, {nodeDir + "/node1/cpu1", "<link>../../cpu/cpu1"}})
	if err := ghwNodeMismatch(root, topo); err == nil {
		t.Error("ghw agrees with node0 = 0-1,4-5 after its cpu1 link moved to node1")
	} else {
		t.Log(err)
	}
}
