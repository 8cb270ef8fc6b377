package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

const reserveCPU0 = `reservedSystemCPUs: "0"`

// TestPluginRestartKeepsState is scenario (c), with (e) on the way:
// coreguard killed with SIGKILL and started again rebuilds its state from
// what the runtime reports in Synchronize, so the pinned container keeps
// CPU 1 and nothing else is given it.
func TestPluginRestartKeepsState(t *testing.T) {
	forEachRuntime(t, testPluginRestartKeepsState)
}

func testPluginRestartKeepsState(t *testing.T, x expect) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rt, cg, b, g := pinnedBesideShared(ctx, t, x)

	// (e) What any plugin connecting now is told: the annotation coreguard
	// added by adjustment, and the cpusets as updated.
	seen := observeSync(t, rt.NRISocket)
	sg, sb := seen[g.ID], seen[b.ID]
	if sg == nil || sb == nil {
		t.Fatalf("Synchronize lists %d containers, not both of ours (%s, %s)", len(seen), g.ID, b.ID)
	}
	if got := sg.GetAnnotations()[pinning.AnnotationCPUs]; got != "1" {
		t.Errorf("Synchronize: pinned container's annotation %s = %q, want \"1\"", pinning.AnnotationCPUs, got)
	}
	if got := sg.GetLinux().GetResources().GetCpu().GetCpus(); got != "1" {
		t.Errorf("Synchronize: pinned container's cpuset %q, want \"1\"", got)
	}
	// sharedPoolUpdates: cgroup-first (the default) wrote the burstable
	// container's cgroup, not the runtime's copy of its cpuset, which
	// keeps what it was created with (docs/config.md); the cgroup is
	// checked below.
	if got := sb.GetLinux().GetResources().GetCpu().GetCpus(); got != "0-1" {
		t.Errorf("Synchronize: burstable container's cpuset %q, want \"0-1\" (as created: cgroup-first sends the runtime no update)", got)
	}

	cg.Kill()
	t0 := time.Now()
	if err := cg.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("coreguard restarted and synchronized in %v", time.Since(t0).Round(time.Millisecond))

	b2 := runPod(ctx, t, rt, "burstable-2", burstable)
	wantCPUs(ctx, t, b2, "0")
	wantCPUs(ctx, t, g, "1")
	wantCPUs(ctx, t, b, "0")

	_, err := tryRunPod(ctx, rt, "guaranteed-2", guaranteed1)
	if err == nil || !strings.Contains(err.Error(), "desc = "+x.refusal+"coreguard:") || !strings.Contains(err.Error(), "exclusive CPUs") {
		t.Fatalf("second Guaranteed cpu:1 after the restart: err = %v, want coreguard's refusal (CPU 1 is taken, CPU 0 reserved)", err)
	}
	t.Logf("refused as expected: %v", err)
	wantCPUs(ctx, t, g, "1")
}

// TestRuntimeRestartReconnects is scenario (d): the runtime restarts under
// a running coreguard, which reconnects by itself, resynchronizes, and
// keeps pinning and releasing as before.
func TestRuntimeRestartReconnects(t *testing.T) {
	forEachRuntime(t, testRuntimeRestartReconnects)
}

func testRuntimeRestartReconnects(t *testing.T, x expect) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rt, cg, b, g := pinnedBesideShared(ctx, t, x)

	syncs, pid := cg.Syncs(), cg.Pid()
	t0 := time.Now()
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := cg.WaitSyncs(syncs+1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted; coreguard reconnected and synchronized %v after the restart began", x.name, time.Since(t0).Round(time.Millisecond))
	if cg.Pid() != pid || !cg.Running() {
		t.Fatalf("coreguard process changed or exited (pid %d -> %d)", pid, cg.Pid())
	}

	// The state survived: releasing the pinned container grows the pool,
	// and the next Guaranteed container gets CPU 1 again.
	wantCPUs(ctx, t, g, "1")
	wantCPUs(ctx, t, b, "0")
	stopAndRemove(ctx, t, g)
	waitCPUs(ctx, t, b, "0-1")
	g2 := runPod(ctx, t, rt, "guaranteed-2", guaranteed1)
	wantCPUs(ctx, t, g2, "1")
	wantAnnotation(ctx, t, g2, pinning.AnnotationCPUs, "1")
	waitCPUs(ctx, t, b, "0")
}

// pinnedBesideShared starts the runtime and coreguard on two single-thread
// cores with CPU 0 reserved, then a burstable pod and a Guaranteed cpu: 1
// pod: the pinned one on CPU 1, the burstable one shrunk to CPU 0.
// coreguard is external: these scenarios restart it, or the runtime under
// it, and see it reconnect (a pre-installed one restarts with the runtime:
// TestPreinstalled).
func pinnedBesideShared(ctx context.Context, t *testing.T, x expect) (*harness.Runtime, *coreguard.Process, *harness.Container, *harness.Container) {
	t.Helper()
	rt := startRuntime(t, x)
	cg := startExternalCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0)
	b := runPod(ctx, t, rt, "burstable", burstable)
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
	return rt, cg, b, g
}
