package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// CRI-O-only checks: what only CRI-O has (running without any CNI config,
// drop-in config dirs the project ships files for). Every scenario of the
// shared table runs on CRI-O through forEachRuntime.

// crio is CRI-O's row of the runtimes table.
func crio(t *testing.T) expect {
	t.Helper()
	for _, x := range runtimes {
		if x.runtime == harness.CRIO {
			return x
		}
	}
	t.Fatal("no CRI-O row in the runtimes table")
	return expect{}
}

// TestCRIOHostNetworkWithoutCNI: with no CNI config at all, CRI-O reports
// NetworkReady=false and still runs host-network pods; it holds a
// pod-network RunPodSandbox until a CNI config appears or the call's
// deadline passes.
func TestCRIOHostNetworkWithoutCNI(t *testing.T) {
	rt := startRuntimeWith(t, crio(t), harness.Options{NoCNI: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pod, err := rt.RunPod(ctx, harness.PodOptions{Name: "hostnet", HostNetwork: true, Containers: []harness.Resources{burstable}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Resources: burstable}); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := rt.RunPod(short, harness.PodOptions{Name: "podnet"}); err == nil {
		t.Errorf("a pod-network pod started without any CNI config")
	} else {
		t.Logf("pod-network pod without CNI: %v", err)
	}
}

// TestCRIODeployDropIns: the project's own CRI-O drop-ins
// (deploy/crio/10-nri.conf, 11-nri-required.conf), with their host paths
// moved under the test's dir, in CRI-O's config dir. CRI-O starts with
// them and listens on their NRI socket. 11-nri-required.conf is accepted and
// ignored by v1.34.0: with coreguard required and absent a container is
// created. Then CRI-O starts 10-coreguard from their plugin dir and hands
// it 10-coreguard.conf from their config dir (CPU 0 reserved: the
// Guaranteed container gets CPU 1).
func TestCRIODeployDropIns(t *testing.T) {
	rt := startRuntimeWith(t, crio(t), harness.Options{DropIns: deployDropIns(t)})
	dropDir := filepath.Join(rt.Dir, "dropin")
	if _, err := os.Stat(filepath.Join(dropDir, "nri.sock")); err != nil {
		t.Fatalf("the drop-in's nri_listen is not in use: %v\n%s", err, rt.LogTail(40))
	}
	if _, err := os.Stat(rt.NRISocket); err == nil {
		t.Errorf("CRI-O listens on crio.conf's NRI socket %s too; the drop-in should replace it", rt.NRISocket)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	u := runPod(ctx, t, rt, "unguarded", harness.Resources{})
	wantRunning(ctx, t, u)
	t.Log("11-nri-required.conf in force, coreguard absent: container created and running (no default validator in CRI-O 1.34.0)")

	cg, err := coreguard.Install(coreguard.InstallOptions{PluginDir: filepath.Join(dropDir, "plugins"),
		ConfigDir: filepath.Join(dropDir, "conf.d"), Config: reserveCPU0,
		LogPath: filepath.Join(rt.Dir, "coreguard.log"), SysfsRoot: topologyDir(t, sysfsgen.TwoCPUsTwoCores)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(cg.LogTail(60))
		}
	})
	if err := rt.Restart(); err != nil { // CRI-O starts pre-installed plugins when it starts
		t.Fatal(err)
	}
	if err := cg.WaitSyncs(1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cg.LogPath); !strings.Contains(string(b), "using the runtime-provided configuration") {
		t.Errorf("coreguard did not report taking the runtime's configuration:\n%s", b)
	}
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, u, "0")
}

// deployDir holds the node configuration the project ships.
const deployDir = "../../deploy/crio"

// deployDropIns reads deploy/crio's drop-ins with every host path they name
// moved under the test's dir ({{DIR}}/dropin); a path not moved fails the
// test, so a test CRI-O never uses the host's NRI socket or plugin dirs.
func deployDropIns(t *testing.T) map[string]string {
	t.Helper()
	moves := []string{
		`"/var/run/nri/nri.sock"`, `"{{DIR}}/dropin/nri.sock"`,
		`"/opt/nri/plugins"`, `"{{DIR}}/dropin/plugins"`,
		`"/etc/nri/conf.d"`, `"{{DIR}}/dropin/conf.d"`,
	}
	out := map[string]string{}
	for _, name := range []string{"10-nri.conf", "11-nri-required.conf"} {
		b, err := os.ReadFile(filepath.Join(deployDir, name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer(moves...).Replace(string(b))
		for _, line := range strings.Split(text, "\n") {
			if i := strings.Index(line, `"/`); i >= 0 && !strings.HasPrefix(strings.TrimSpace(line), "#") {
				t.Fatalf("deploy/crio/%s names a host path the test does not move: %s", name, line)
			}
		}
		out[name] = text
	}
	if !strings.Contains(out["10-nri.conf"], "{{DIR}}/dropin/nri.sock") {
		t.Fatalf("deploy/crio/10-nri.conf sets no nri_listen:\n%s", out["10-nri.conf"])
	}
	if !strings.Contains(out["11-nri-required.conf"], "nri_validator_required_plugins") {
		t.Fatalf("deploy/crio/11-nri-required.conf requires no plugin:\n%s", out["11-nri-required.conf"])
	}
	return out
}

// TestTeardownAfterKill: a test that leaves the runtime killed with pods
// running still gets a clean teardown (the runtime is started again to
// remove the pods); startRuntime checks nothing is left.
func TestTeardownAfterKill(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, x expect) {
		rt := startRuntime(t, x)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		runPod(ctx, t, rt, "left", burstable)
		pod, err := rt.RunPod(ctx, harness.PodOptions{Name: "left-hostnet", HostNetwork: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "main"})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Status(ctx); err != nil || st.CRI.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("host-network container: %v %v", st, err)
		}
		if err := rt.Kill(); err != nil {
			t.Fatal(err)
		}
	})
}
