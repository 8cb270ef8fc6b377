package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

func TestMain(m *testing.M) {
	code := m.Run()
	coreguard.RemoveBuild()
	if msg := checkBypassTable(); msg != "" && code == 0 {
		fmt.Fprintln(os.Stderr, "FAIL:", msg)
		code = 1
	}
	os.Exit(code)
}

// settle bounds every wait for an asynchronous effect (a cpuset update
// the runtime applies after coreguard answers). Generous: the machine is
// shared; nothing asserts how fast.
const settle = 10 * time.Second

// topologyDir writes a generated sysfs tree for --sysfs-root. The CI
// machine has two CPUs without SMT; both shapes describe those same CPUs
// 0 and 1, so every cpuset coreguard hands out exists and runc applies it.
func topologyDir(t *testing.T, shape string) string {
	t.Helper()
	spec, ok := sysfsgen.Shapes()[shape]
	if !ok {
		t.Fatalf("no sysfsgen shape %q", shape)
	}
	dir := t.TempDir()
	if err := sysfsgen.Write(dir, spec); err != nil {
		t.Fatalf("sysfsgen %s: %v", shape, err)
	}
	return dir
}

// startRuntime builds coreguard (once per process, before the runtime is
// up, so the first test's timings are the runtime's) and starts x's
// runtime; after its teardown it checks nothing is left.
func startRuntime(t *testing.T, x expect) *harness.Runtime {
	t.Helper()
	return startRuntimeWith(t, x, harness.Options{})
}

// startRuntimeWith is startRuntime with harness options.
func startRuntimeWith(t *testing.T, x expect, opts harness.Options) *harness.Runtime {
	t.Helper()
	opts.Runtime = x.runtime
	harness.SkipIfRuntimeUnavailable(t, x.runtime, "")
	if _, err := coreguard.Build(); err != nil {
		t.Fatal(err)
	}
	// Registered before Start's teardown, so it runs after it.
	var rt *harness.Runtime
	t.Cleanup(func() {
		if rt == nil {
			return
		}
		if left := rt.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after teardown:\n%s", strings.Join(left, "\n"))
		}
	})
	rt = harness.Start(t, opts)
	return rt
}

// startCoreguard installs coreguard into rt the way docs/install.md tells
// an admin to for a pre-installed plugin: the files `make install` writes,
// copied into the runtime's NRI plugin and config dirs, its configuration
// edited (cfg, a generated topology as sysfsRoot, a log file), and the
// runtime restarted, which starts it with no arguments. It waits for its
// first Synchronize; on failure its log tail is logged.
func startCoreguard(t *testing.T, rt *harness.Runtime, shape, cfg string) *coreguard.Installed {
	t.Helper()
	t0 := time.Now()
	in := installCoreguard(t, rt, shape, cfg)
	before := in.Syncs()
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := in.WaitSyncs(before+1, 30*time.Second); err != nil {
		t.Fatalf("%v\nruntime log:\n%s", err, rt.LogTail(30))
	}
	t.Logf("pre-installed coreguard (pid %d) synchronized %v after the runtime's restart", in.Pid(), time.Since(t0).Round(time.Millisecond))
	return in
}

// installCoreguard is startCoreguard without the runtime's restart.
func installCoreguard(t *testing.T, rt *harness.Runtime, shape, cfg string) *coreguard.Installed {
	t.Helper()
	in, err := coreguard.Install(coreguard.InstallOptions{PluginDir: rt.PluginPath, ConfigDir: rt.PluginConfigPath,
		Config: cfg, SysfsRoot: topologyDir(t, shape), LogPath: filepath.Join(rt.Dir, "coreguard.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(in.LogTail(60))
		}
	})
	return in
}

// startExternalCoreguard runs coreguard as an external plugin of rt (the
// DaemonSet's shape) on a generated topology and waits for its first
// Synchronize. On failure its log tail is logged; it is killed when the
// test ends (before the runtime's teardown).
func startExternalCoreguard(t *testing.T, rt *harness.Runtime, shape, cfg string) *coreguard.Process {
	t.Helper()
	return startCoreguardWith(t, coreguard.Options{Socket: rt.NRISocket, SysfsRoot: topologyDir(t, shape), Config: cfg, Dir: t.TempDir()})
}

// startCoreguardWith is startExternalCoreguard with every option.
func startCoreguardWith(t *testing.T, opts coreguard.Options) *coreguard.Process {
	t.Helper()
	t0 := time.Now()
	p, err := coreguard.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(p.LogTail(60))
		}
		p.Kill()
	})
	t.Logf("coreguard (pid %d) synchronized after %v", p.Pid(), time.Since(t0).Round(time.Millisecond))
	return p
}

// Pod specs: one container each, as kubelet would see them.
var (
	guaranteed1 = harness.Resources{CPULimit: 1000, MemLimit: 64 << 20}
	burstable   = harness.Resources{CPURequest: 250, CPULimit: 1000, MemLimit: 64 << 20}
)

// runPod starts a one-container pod and its container "main".
func runPod(ctx context.Context, t *testing.T, rt *harness.Runtime, name string, res harness.Resources) *harness.Container {
	t.Helper()
	c, err := tryRunPod(ctx, rt, name, res)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tryRunPod(ctx context.Context, rt *harness.Runtime, name string, res harness.Resources) (*harness.Container, error) {
	pod, err := rt.RunPod(ctx, harness.PodOptions{Name: name, Containers: []harness.Resources{res}})
	if err != nil {
		return nil, err
	}
	return pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Resources: res})
}

// wantCPUs checks what the kernel enforces for c right now: its cgroup's
// cpuset.cpus and its init process's Cpus_allowed_list.
func wantCPUs(ctx context.Context, t *testing.T, c *harness.Container, want string) {
	t.Helper()
	st, err := c.CPU(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpus != want || st.CpusAllowed != want {
		t.Errorf("pod %s: cpuset.cpus %q, Cpus_allowed_list %q; want %q (cgroup %s)",
			c.Pod.Config.Metadata.Name, st.Cpus, st.CpusAllowed, want, st.CgroupsPath)
	}
}

// waitCPUs polls until c's cgroup and process both show want: updates to
// other containers are applied by the runtime after coreguard answers.
func waitCPUs(ctx context.Context, t *testing.T, c *harness.Container, want string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	t0 := time.Now()
	for {
		st, err := c.CPU(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Cpus == want && st.CpusAllowed == want {
			t.Logf("pod %s on CPUs %s after %v", c.Pod.Config.Metadata.Name, want, time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: cpuset.cpus %q, Cpus_allowed_list %q after %v; want %q (cgroup %s)",
				c.Pod.Config.Metadata.Name, st.Cpus, st.CpusAllowed, settle, want, st.CgroupsPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopAndRemove does what kubelet does when a container ends for good.
func stopAndRemove(ctx context.Context, t *testing.T, c *harness.Container) {
	t.Helper()
	if err := c.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}

// journal receives what coreguard sends to the system journal, through the
// syslog socket /dev/log that journald (or a syslog daemon) serves on a
// node. The CI machines run none: the test serves /dev/log itself, for the
// test's duration.
type journal struct {
	mu   sync.Mutex
	text strings.Builder
}

func listenJournal(t *testing.T) *journal {
	t.Helper()
	const path = "/dev/log"
	if _, err := os.Lstat(path); err == nil {
		t.Fatalf("%s exists: a syslog daemon runs here; this test serves %s itself", path, path)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			j.mu.Lock()
			j.text.Write(buf[:n])
			j.text.WriteByte('\n')
			j.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		os.Remove(path)
	})
	return j
}

// wait waits until a message tagged coreguard containing want arrived.
func (j *journal) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		j.mu.Lock()
		text := j.text.String()
		j.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "coreguard") && strings.Contains(line, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no journal message from coreguard with %q; got:\n%s", want, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
