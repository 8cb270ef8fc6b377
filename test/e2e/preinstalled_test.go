package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// TestPreinstalled is scenario (f): the runtime itself starts coreguard
// from its plugin dir as 10-coreguard and hands it 10-coreguard.conf.
// CPU 1 going to the Guaranteed container shows the runtime's
// configuration (CPU 0 reserved) is in force: without it coreguard would
// pin the lowest free core, CPU 0.
func TestPreinstalled(t *testing.T) {
	forEachRuntime(t, testPreinstalled)
}

func testPreinstalled(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	bin, err := coreguard.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Under rt.Dir, so the harness's teardown finds the plugin process by
	// its command line.
	topo := filepath.Join(rt.Dir, "sysfs")
	if err := sysfsgen.Write(topo, sysfsgen.Shapes()[sysfsgen.TwoCPUsTwoCores]); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(rt.Dir, "coreguard.log")
	wrapper := filepath.Join(t.TempDir(), "10-coreguard")
	if err := coreguard.WriteWrapper(wrapper, bin, topo, logPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(tail(logPath, 60))
		}
	})
	if err := rt.InstallPlugin(harness.PluginFile{Name: "10-coreguard", Source: wrapper, Config: reserveCPU0 + "\n"}); err != nil {
		t.Fatal(err)
	}
	// The runtime launches pre-installed plugins when it starts.
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLogSyncs(t, logPath, 1)
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), "using the runtime-provided configuration") {
		t.Errorf("coreguard did not report taking the runtime's configuration:\n%s", log)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := runPod(ctx, t, rt, "burstable", burstable)
	wantCPUs(ctx, t, b, "0-1")
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")

	// A pre-installed coreguard exits with its connection; the runtime
	// starts a new one when it comes back, which resynchronizes.
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLogSyncs(t, logPath, 2)
	stopAndRemove(ctx, t, g)
	waitCPUs(ctx, t, b, "0-1")
}

func waitLogSyncs(t *testing.T, logPath string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for coreguard.CountSyncs(logPath) < n {
		if time.Now().After(deadline) {
			t.Fatalf("pre-installed coreguard synchronized %d times, want %d:\n%s", coreguard.CountSyncs(logPath), n, tail(logPath, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "----- " + path + " -----\n" + strings.Join(lines[max(0, len(lines)-n):], "\n")
}
