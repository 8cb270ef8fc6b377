package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/kernel"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// TestPreinstalled is scenario (f) as an admin installs it: the files
// `make install` writes (the bare binary as 10-coreguard, its
// 10-coreguard.conf), in the runtime's NRI plugin and config dirs, the
// configuration edited, the runtime restarted; the runtime starts coreguard
// with no arguments. Everything comes from that configuration: the
// topology (two cores, CPU 0 reserved: the Guaranteed container gets CPU
// 1), the log file, the metrics address (the test reads /metrics there) and
// a kernel rule declaring the running kernel buggy, whose verdict takes
// effect: cfsQuota auto lifts a Burstable container's quota, container and
// pod level, which this kernel alone would keep. A privileged pod in
// default is refused by the installed binary; a runtime restart restarts
// and resynchronizes it.
func TestPreinstalled(t *testing.T) {
	forEachRuntime(t, testPreinstalled)
}

func testPreinstalled(t *testing.T, x expect) {
	release, err := kernel.Running()
	if err != nil {
		t.Fatal(err)
	}
	rt := startRuntime(t, x)
	cg := startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, fmt.Sprintf(`%s
metricsAddress: "127.0.0.1:0"
kernel:
  add:
    - name: this-node
      from: %q
      verdict: buggy
      source: "e2e: the running kernel, declared buggy by the admin"
`, reserveCPU0, release))
	log, _ := os.ReadFile(cg.LogPath)
	for _, want := range []string{"using the runtime-provided configuration", "verdict=buggy", "rule=this-node"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("coreguard's log lacks %q:\n%s", want, cg.LogTail(30))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := runPod(ctx, t, rt, "burstable", burstable)
	wantCPUs(ctx, t, b, "0-1")
	wantQuota(ctx, t, b, -1)
	wantPodQuota(t, b.Pod, -1)
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	wantQuota(ctx, t, g, -1)
	waitCPUs(ctx, t, b, "0")

	refused, _, err := debugPod.run(ctx, rt, "default")
	wantRefusal(ctx, t, refused, err, x.refusal+"coreguard: privileged container")
	if _, c, err := debugPod.run(ctx, rt, "kube-system"); err != nil {
		t.Errorf("privileged pod in kube-system refused: %v", err)
	} else {
		wantRunning(ctx, t, c)
	}

	body := scrape(t, cg)
	for _, line := range []string{
		`coreguard_kernel_cfs_bug{rule="this-node",verdict="buggy"} 1`,
		`coreguard_pinning_enabled 1`,
		`coreguard_runtime_connected 1`,
		`coreguard_exclusive_containers 1`,
		`coreguard_admission_rejections_total{namespace="default",reason="privileged"} 1`,
	} {
		wantMetric(t, body, line)
	}
	if lines := metricLines(body, "coreguard_build_info{"); len(lines) != 1 || !strings.HasSuffix(lines[0], " 1") {
		t.Errorf("coreguard_build_info: %q, want one series at 1", lines)
	}

	// A pre-installed coreguard exits with its connection; the runtime
	// starts a new one when it comes back, which resynchronizes.
	syncs := cg.Syncs()
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := cg.WaitSyncs(syncs+1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	stopAndRemove(ctx, t, g)
	waitCPUs(ctx, t, b, "0-1")
}

// TestPreinstalledBadConfig: an installed configuration with a bad value
// keeps coreguard from registering: it names the field and value in the
// system journal (journalctl -t coreguard: a pre-installed plugin has no
// stdout or stderr, and log.file comes from the configuration that was
// refused), and the runtime's log says configuring coreguard failed. The
// runtime runs on, creating containers without coreguard (NRI fails open
// for a plugin that is not there, unless required: docs/admission.md).
func TestPreinstalledBadConfig(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, x expect) {
		rt := startRuntime(t, x)
		journal := listenJournal(t)
		installCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, "cfsQuota: sometimes\n")
		if err := rt.Restart(); err != nil {
			t.Fatal(err)
		}
		const want = `cfsQuota: \"sometimes\" is not one of auto, clear, keep`
		journal.wait(t, want)
		// Both runtimes log this; what follows races: NRI's stub closes the
		// connection as soon as Configure fails, so the runtime logs either
		// coreguard's answer naming the field or "ttrpc: closed".
		const failed = `failed to start pre-installed NRI plugin \"coreguard\": failed to configure plugin: `
		deadline := time.Now().Add(settle)
		for !strings.Contains(rt.LogTail(400), failed) {
			if time.Now().After(deadline) {
				t.Fatalf("the runtime's log does not say %q:\n%s", failed, rt.LogTail(40))
			}
			time.Sleep(50 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		wantRunning(ctx, t, runPod(ctx, t, rt, "unguarded", harness.Resources{}))
		recordBypass(x, "bad-config-first", "runs: coreguard does not start, the node is unguarded unless the runtime requires it")
	})
}

// TestPreinstalledKeepsLastGoodConfig: coreguard installed with a good
// configuration keeps it as its last good one; a bad edit rolled out and the
// runtime restarted does not turn the guard off: coreguard runs on the last
// good configuration (its log says why, coreguard_config_rejected is 1) and
// still refuses a privileged pod in default.
func TestPreinstalledKeepsLastGoodConfig(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, x expect) {
		rt := startRuntime(t, x)
		good := reserveCPU0 + "\nmetricsAddress: \"127.0.0.1:0\"\n"
		cg := startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, good)
		kept := filepath.Join(rt.PluginPath, ".10-coreguard.last-good.yaml")
		if _, err := os.Stat(kept); err != nil {
			t.Fatalf("the configuration in force was not kept: %v", err)
		}
		syncs := cg.Syncs()
		if err := cg.Edit(good + "cfsQuota: sometimes\n"); err != nil { // the bad edit
			t.Fatal(err)
		}
		if err := rt.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := cg.WaitSyncs(syncs+1, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		log, _ := os.ReadFile(cg.LogPath)
		for _, want := range []string{`cfsQuota: \"sometimes\" is not one of`, "running on the last good configuration"} {
			if !strings.Contains(string(log), want) {
				t.Errorf("coreguard's log lacks %q:\n%s", want, cg.LogTail(20))
			}
		}
		wantMetric(t, scrape(t, cg), "coreguard_config_rejected 1")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		refused, _, err := debugPod.run(ctx, rt, "default")
		wantRefusal(ctx, t, refused, err, x.refusal+"coreguard: privileged container")
		recordBypass(x, "bad-config", "refused in CreateContainer: the last good configuration is in force")
	})
}
