// Command demo is `make demo`: a private containerd with NRI and
// coreguard, a few pods made the way kubelet makes them, a table of what
// each got (read from the cgroup files), a dry-run plan on a bigger
// simulated machine, and a full clean-up, also on Ctrl-C. Run as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/coreguard/coreguard/internal/interrupt"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology"
)

func main() { os.Exit(demo()) }

func demo() int {
	bin := flag.String("coreguard", "", "coreguard binary (default: go build it into a temp dir)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: must run as root: it starts a private containerd and writes cgroups.\n  sudo make demo")
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupt.OnFirst(cancel, "cleaning up (pods, containerd, coreguard, cgroups)")

	tmp, err := os.MkdirTemp("", "coreguard-demo-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		defer coreguard.RemoveBuild()
		if *bin, err = coreguard.Build(); err != nil {
			return fail(err)
		}
	}
	root, what, err := machineTopology(tmp)
	if err != nil {
		return fail(err)
	}
	topo, err := topology.Read(root)
	if err != nil {
		return fail(err)
	}
	cfg := reservedConfig(topo)

	section("Topology")
	fmt.Println(what)
	show(ctx, *bin, "topology", "--sysfs-root", root)

	section("Runtime")
	rt, err := harness.Launch(harness.Options{OwnProcessGroup: true}, func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
	if err != nil {
		return fail(err)
	}
	defer closeRuntime(rt)
	if ctx.Err() != nil {
		return 130
	}
	cg, err := coreguard.Start(coreguard.Options{Bin: *bin, Socket: rt.NRISocket, SysfsRoot: root,
		Config: cfg, Dir: tmp, OwnProcessGroup: true})
	if err != nil {
		return fail(err)
	}
	defer cg.Stop()
	fmt.Printf("coreguard connected over NRI; config: %s\n", strings.Join(strings.Fields(strings.ReplaceAll(cfg, "\n", "; ")), " "))

	section("Pods (created through CRI like kubelet; values read from the cgroup files)")
	var results []result
	pods, afterwards := demoPods(topo.Online.Size(), topo.ThreadsPerCore())
	for i, p := range pods {
		if ctx.Err() != nil {
			return 130
		}
		results = append(results, startPod(ctx, rt, p, i+1))
	}
	// Shared containers are moved by updates containerd applies just after
	// coreguard answers; give them a moment before reading.
	time.Sleep(200 * time.Millisecond)
	for i := range results {
		results[i].read(ctx)
	}
	printTable(os.Stdout, results, topo.ThreadsPerCore())
	if len(afterwards) > 0 {
		// One core: while the odd pod holds it whole, a shared container
		// would have no CPU. Remove it, and the core is shared again.
		fmt.Println("\nThe odd pod holds the machine's only core whole. Deleting it; then a burstable pod:")
		for _, r := range results {
			if r.pod != nil {
				_ = r.pod.Stop(ctx)
				_ = r.pod.Remove(ctx)
			}
		}
		var later []result
		for i, p := range afterwards {
			later = append(later, startPod(ctx, rt, p, len(pods)+i+1))
		}
		time.Sleep(200 * time.Millisecond)
		for i := range later {
			later[i].read(ctx)
		}
		printTable(os.Stdout, later, topo.ThreadsPerCore())
	}

	section("Dry run on a bigger simulated machine (generated sysfs: 2 sockets x 20 cores x 2 threads, 80 CPUs)")
	big, err := bigTopology(tmp)
	if err != nil {
		return fail(err)
	}
	if err := printPlan(ctx, os.Stdout, *bin, big); err != nil && ctx.Err() == nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		return 130
	}
	section("Clean-up")
	return 0
}

// reservedConfig keeps the core of CPU 0 for system daemons and shared
// containers, as kubelet's reservedSystemCPUs would, unless that core is
// the whole machine.
func reservedConfig(t *topology.Topology) string {
	c, ok := t.CoreOf(0)
	if !ok || len(t.Cores) < 2 {
		return "oddCPUs: round-up\n"
	}
	return fmt.Sprintf("oddCPUs: round-up\nreservedSystemCPUs: %q\n", c.CPUs.String())
}

func closeRuntime(rt *harness.Runtime) {
	t0 := time.Now()
	err := rt.Close()
	left := rt.Leftovers()
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "clean-up error: %v\n", err)
	case len(left) > 0:
		fmt.Fprintf(os.Stderr, "left behind:\n  %s\n", strings.Join(left, "\n  "))
	default:
		fmt.Printf("removed pods, containerd, shims, coreguard, cgroups and %s in %v: nothing left behind\n",
			rt.Dir, time.Since(t0).Round(time.Millisecond))
	}
}

func show(ctx context.Context, bin string, args ...string) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	_ = cmd.Run()
}

func section(title string) { fmt.Printf("\n== %s ==\n", title) }

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "demo: %v\n", err)
	return 1
}
