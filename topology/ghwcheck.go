package topology

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/jaypipes/ghw"
	ghwcpu "github.com/jaypipes/ghw/pkg/cpu"
)

// Why ghw is a cross-check here and not the main source (ghw v0.27.0):
//   - ghw.CPU drops every logical CPU that /proc/cpuinfo does not list, so on
//     a sysfs tree alone (tests, snapshots, --sysfs-root) it finds nothing;
//     and it keys cores by (package, core_id), which repeats across dies.
//   - ghw.Topology stops at the first node whose memory it cannot read from
//     /proc/meminfo and node/nodeN/meminfo, so a sysfs tree alone gives no
//     nodes; it also keeps nodes without CPUs.
//   - Neither reads online/offline/isolated lists, die ids or sibling lists.
// What ghw does read well from sysfs alone is a node's CPUs, through the
// node/nodeN/cpuX links (skipping offline ones): Read uses it to confirm
// node/nodeN/cpulist. ghw's memory.CachesForNode would confirm the L3
// groups too, but it reads three files per cache level per CPU and alone
// took longer than the rest of Read on a 384-CPU tree.

// ghwContext points ghw at sysfsRoot: ghw's chroot is the directory that
// holds sys/, so the /sys path is overridden to the chroot itself.
func ghwContext(sysfsRoot string) context.Context {
	ctx := context.Background()
	for _, m := range []ghw.Modifier{
		ghw.WithChroot(sysfsRoot),
		ghw.WithPathOverrides(map[string]string{"/sys": "/"}),
		// ghw logs to stderr; its warnings repeat errors Read reports itself.
		ghw.WithLogger(slog.New(slog.DiscardHandler)),
	} {
		ctx = m(ctx)
	}
	return ctx
}

// crossCheckWithGHW confirms, node by node, that ghw sees the same online
// CPUs in each node. Nodes whose folder has no cpuX links (some snapshots)
// are not checked.
func crossCheckWithGHW(sysfsRoot string, t *Topology) error {
	ctx := ghwContext(sysfsRoot)
	for _, n := range t.NUMANodes {
		nodeDir := filepath.Join(sysfsRoot, "devices", "system", "node", "node"+strconv.Itoa(n.ID))
		cores, err := ghwcpu.CoresForNode(ctx, n.ID)
		if err != nil {
			return fmt.Errorf("topology: ghw: %w", err)
		}
		var linked cpuset.Builder
		for _, c := range cores {
			for _, cpu := range c.LogicalProcessors {
				if cpu >= 0 && cpu < cpuset.MaxCPUs {
					linked.Add(cpu)
				}
			}
		}
		seen := linked.Set().Intersection(t.Online)
		if seen.IsEmpty() {
			continue
		}
		if !seen.Equals(n.CPUs) {
			return fileError(filepath.Join(nodeDir, "cpulist"),
				"online CPUs %q disagree with the node's cpuN links %q (read by ghw)", n.CPUs, seen)
		}
	}
	return nil
}
