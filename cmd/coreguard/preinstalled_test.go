package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/kernel"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// testVersion is the version buildBinary stamps, as `make build` stamps
// git's.
const testVersion = "v0.0.0-test"

// buildBinary builds coreguard as `make build` does (static, trimmed,
// version stamped).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coreguard")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+testVersion, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestPreinstalledBareBinary: NRI's own runtime side (pkg/adaptation, the
// code containerd and CRI-O run) starts the bare coreguard binary from its
// plugin dir with no arguments and hands it 10-coreguard.conf. That
// configuration takes full effect: the topology it names (a generated SMT
// tree: pinned containers get whole cores of it), its log file, its metrics
// address, its kernel rule (the running kernel declared buggy: cfsQuota auto
// lifts a Burstable container's quota, and /metrics shows the verdict with
// the rule, and the version the binary was built with), admission (a host-network pod in default is refused) and
// failClosed (a creation coreguard cannot answer in time fails, and
// coreguard stays connected).
func TestPreinstalledBareBinary(t *testing.T) {
	bin := buildBinary(t)
	release, err := kernel.Running()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log", "coreguard.log")
	conf := fmt.Sprintf(`sysfsRoot: %s
cgroupRoot: %s
kubeletRootDir: %s
log:
  level: debug
  file: %s
metricsAddress: "127.0.0.1:0"
kernel:
  add:
    - name: this-node
      from: %q
      verdict: buggy
      source: "TestPreinstalledBareBinary: the running kernel, declared buggy"
admission:
  failClosed: true
`, generated(t, sysfsgen.IntelHT2S), dir, dir, logFile, release)
	rt := nritest.StartPreinstalled(t, nritest.Plugin{Name: "10-coreguard", Binary: bin, Config: conf})
	rt.WaitSync(20 * time.Second)
	logText := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	for _, want := range []string{"using the runtime-provided configuration", "synchronized with the runtime",
		`verdict=buggy`, `rule=this-node`} {
		if !strings.Contains(logText(), want) {
			t.Errorf("coreguard's log file lacks %q:\n%s", want, logText())
		}
	}

	g := rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	gid, err := rt.Create(g, "app", nritest.Resources{RequestMilli: 1000, LimitMilli: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// intel-2s-ht: CPU n and n+40 are one core.
	if cpus := rt.Container(gid).Linux.Resources.Cpu.Cpus; cpus != "0,40" {
		t.Errorf("Guaranteed cpu: 1 on cpus %q, want the whole core 0,40 of the configured topology", cpus)
	}
	b := rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"})
	bid, err := rt.Create(b, "app", nritest.Resources{RequestMilli: 250, LimitMilli: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if q := rt.Container(bid).Linux.Resources.Cpu.GetQuota().GetValue(); q != -1 {
		t.Errorf("Burstable container's quota %d, want -1 (cleared: the configured rule makes this kernel buggy)", q)
	}
	h := rt.RunPod(nritest.PodSpec{Name: "h", HostNetwork: true})
	if _, err := rt.Create(h, "app", nritest.Resources{}); err == nil || !strings.Contains(err.Error(), "host's network namespace") {
		t.Errorf("host-network pod in default: err %v, want coreguard's refusal", err)
	}

	metrics := scrape(t, logText())
	for _, want := range []string{
		`coreguard_kernel_cfs_bug{rule="this-node",verdict="buggy"} 1`,
		fmt.Sprintf(`coreguard_build_info{goarch=%q,goos=%q,goversion=%q,version=%q} 1`, runtime.GOARCH, runtime.GOOS, runtime.Version(), testVersion),
		`coreguard_pinning_enabled 1`,
		`coreguard_admission_rejections_total{namespace="default",reason="hostNetwork"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// failClosed: coreguard stopped (SIGSTOP) cannot answer; the runtime
	// fails the creation after its request timeout instead of creating the
	// container unchecked, and keeps coreguard connected.
	pid := pluginPID(t, rt.PluginPath("10-coreguard"))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, pid)
	_, err = rt.Create(b, "unchecked", nritest.Resources{RequestMilli: 250})
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Errorf("a container was created while coreguard (failClosed: true) could not answer")
	}
	if _, err := rt.Create(b, "checked", nritest.Resources{RequestMilli: 250}); err != nil {
		t.Errorf("after coreguard resumed: %v", err)
	}
}

// metricsLine is coreguard's log line naming where /metrics is served.
var metricsLine = regexp.MustCompile(`msg="serving metrics on /metrics" address="?([^"\s]+)"?`)

func scrape(t *testing.T, log string) string {
	t.Helper()
	m := metricsLine.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("coreguard logged no metrics address:\n%s", log)
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pluginPID finds the process running the executable at path.
// waitStopped waits until every thread of pid is stopped (state T): a
// stop signal takes effect on each thread on its own, after kill returns.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			// The state follows the command name in parentheses.
			if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || !strings.HasPrefix(string(stat[i+1:]), " T") {
				stopped = false
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("coreguard (pid %d) did not stop", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

func pluginPID(t *testing.T, path string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			return pid
		}
	}
	t.Fatalf("no process runs %s", path)
	return 0
}
