package crioharness_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/crioharness"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

func TestMain(m *testing.M) {
	code := m.Run()
	coreguard.RemoveBuild()
	os.Exit(code)
}

const settle = 5 * time.Second

var (
	guaranteed1 = harness.Resources{CPULimit: 1000, MemLimit: 64 << 20}
	burstable   = harness.Resources{CPURequest: 250, CPULimit: 1000, MemLimit: 64 << 20}
)

// startCRIO starts a CRI-O and, after its teardown, checks nothing is left.
func startCRIO(t *testing.T, opts crioharness.Options) *crioharness.Runtime {
	t.Helper()
	crioharness.SkipIfUnavailable(t, crioharness.BinDir())
	if _, err := coreguard.Build(); err != nil {
		t.Fatal(err)
	}
	var rt *crioharness.Runtime
	t.Cleanup(func() { // registered first, so it runs after the teardown
		if rt == nil {
			return
		}
		if left := rt.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after teardown:\n%s", strings.Join(left, "\n"))
		}
	})
	t0 := time.Now()
	rt = crioharness.Start(t, opts)
	t.Logf("CRI-O ready %v after Start", time.Since(t0).Round(time.Millisecond))
	return rt
}

func topologyDir(t *testing.T, shape string) string {
	t.Helper()
	dir := t.TempDir()
	if err := sysfsgen.Write(dir, sysfsgen.Shapes()[shape]); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startCoreguard(t *testing.T, rt *crioharness.Runtime, cfg string) *coreguard.Process {
	t.Helper()
	t0 := time.Now()
	p, err := coreguard.Start(coreguard.Options{Socket: rt.NRISocket, SysfsRoot: topologyDir(t, sysfsgen.TwoCPUsTwoCores),
		Config: cfg, Dir: t.TempDir()})
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

func runPod(ctx context.Context, t *testing.T, rt *crioharness.Runtime, o harness.PodOptions) *harness.Container {
	t.Helper()
	pod, err := rt.RunPod(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var res harness.Resources
	if len(o.Containers) > 0 {
		res = o.Containers[0]
	}
	c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Resources: res, Privileged: o.Privileged})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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

// TestSmoke: CRI-O answers, a burstable and a Guaranteed pod run with
// kubelet's cgroup values, pods get their own network namespace through the
// loopback CNI (host-network pods the host's), teardown leaves nothing.
func TestSmoke(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := rt.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime %s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	if v.RuntimeName != "cri-o" || v.RuntimeVersion != "1.34.0" {
		t.Errorf("runtime %s %s, want cri-o 1.34.0", v.RuntimeName, v.RuntimeVersion)
	}

	t0 := time.Now()
	b := runPod(ctx, t, rt, harness.PodOptions{Name: "burstable", Containers: []harness.Resources{burstable}})
	t.Logf("burstable pod + container running after %v", time.Since(t0).Round(time.Millisecond))
	g := runPod(ctx, t, rt, harness.PodOptions{Name: "guaranteed", Containers: []harness.Resources{guaranteed1}})
	for _, c := range []struct {
		c      *harness.Container
		shares int64
	}{{b, 256}, {g, 1024}} {
		st, err := c.c.CPU(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s: cgroup %s cpus %s quota %d period %d shares %d", c.c.Pod.Config.Metadata.Name, st.CgroupsPath,
			st.Cpus, st.Quota, st.Period, st.Shares)
		if st.Cpus != "0-1" || st.CpusAllowed != "0-1" || st.Quota != 100000 || st.Period != 100000 || st.Shares != c.shares {
			t.Errorf("pod %s: cpus %q allowed %q quota %d period %d shares %d; want 0-1, 100000/100000, %d",
				c.c.Pod.Config.Metadata.Name, st.Cpus, st.CpusAllowed, st.Quota, st.Period, st.Shares, c.shares)
		}
		if !strings.HasPrefix(st.CgroupsPath, c.c.Pod.CgroupParent+"/") {
			t.Errorf("cgroup %s not under the pod's %s", st.CgroupsPath, c.c.Pod.CgroupParent)
		}
		pst, err := harness.ReadCPUState(c.c.Pod.CgroupParent, 0)
		if err != nil {
			t.Fatal(err)
		}
		if pst.Quota != 100000 {
			t.Errorf("pod cgroup %s quota %d, want 100000 (kubelet's)", c.c.Pod.CgroupParent, pst.Quota)
		}
	}

	host, err := harness.HostNetNS()
	if err != nil {
		t.Fatal(err)
	}
	h := runPod(ctx, t, rt, harness.PodOptions{Name: "hostnet", HostNetwork: true})
	for _, c := range []struct {
		c      *harness.Container
		isHost bool
	}{{b, false}, {h, true}} {
		st, err := c.c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ns, err := harness.NetNS(st.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if (ns == host) != c.isHost {
			t.Errorf("pod %s: network namespace %s, host's %s; want host's: %v", c.c.Pod.Config.Metadata.Name, ns, host, c.isHost)
		}
	}
}

// TestHostNetworkWithoutCNI: with no CNI config at all, CRI-O reports
// NetworkReady=false and still runs host-network pods.
func TestHostNetworkWithoutCNI(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{NoCNI: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runPod(ctx, t, rt, harness.PodOptions{Name: "hostnet", HostNetwork: true, Containers: []harness.Resources{burstable}})
	// CRI-O holds RunPodSandbox until a CNI config appears (or the call's
	// deadline passes).
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := rt.RunPod(short, harness.PodOptions{Name: "podnet"}); err == nil {
		t.Errorf("a pod-network pod started without any CNI config")
	} else {
		t.Logf("pod-network pod without CNI: %v", err)
	}
}

// TestCoreguardPinning: coreguard as an external plugin on CRI-O's NRI
// socket, two single-thread cores, CPU 0 reserved: burstable on 0-1, a
// Guaranteed cpu:1 container on 1 and the burstable one shrunk to 0, back
// to 0-1 when the Guaranteed one goes.
func TestCoreguardPinning(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{})
	startCoreguard(t, rt, `reservedSystemCPUs: "0"`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := runPod(ctx, t, rt, harness.PodOptions{Name: "burstable", Containers: []harness.Resources{burstable}})
	waitCPUs(ctx, t, b, "0-1")
	g := runPod(ctx, t, rt, harness.PodOptions{Name: "guaranteed", Containers: []harness.Resources{guaranteed1}})
	waitCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
	st, err := g.CPU(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pst, err := harness.ReadCPUState(g.Pod.CgroupParent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Quota != -1 || pst.Quota != -1 {
		t.Errorf("pinned container quota %d, its pod's %d; want -1 (cleared) for both", st.Quota, pst.Quota)
	}
	gs, err := g.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guaranteed spec annotations from NRI: coreguard.io/cpus=%q", gs.Spec.Annotations["coreguard.io/cpus"])
	if err := g.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	waitCPUs(ctx, t, b, "0-1")
}

// admission cases: what coreguard's default policy (kube-system allowed)
// says on CRI-O for each kind in "default", as the CRI client gets it: CRI-O
// passes coreguard's error text through with no prefix of its own
// (containerd 2.4 prefixes "failed to create containerd container: failed to
// get NRI adjustment for container: rpc error: code = Unknown desc = ").
// Host network and IPC differ from containerd: CRI-O lists those namespaces
// in the pod, with a path (pinned under namespaces_dir) to the host's own,
// which coreguard recognises by device and inode.
var admissionCases = []struct {
	name string
	opts harness.PodOptions
	want string // regexp of the whole message; {ns} = the runtime's namespaces_dir
}{
	{"hostNetwork", harness.PodOptions{HostNetwork: true},
		`coreguard: host-network container "main" in pod default/hostnetwork rejected: namespace "default" may not use ` +
			`the host's network namespace \(pod's network namespace {ns}/netns/[0-9a-f-]+ is the host's\); allowed: kube-system`},
	{"hostIPC", harness.PodOptions{HostIPC: true},
		`coreguard: host-IPC container "main" in pod default/hostipc rejected: namespace "default" may not use ` +
			`the host's IPC namespace \(pod's ipc namespace {ns}/ipcns/[0-9a-f-]+ is the host's\); allowed: kube-system`},
	{"hostPID", harness.PodOptions{HostPID: true},
		`coreguard: host-PID container "main" in pod default/hostpid rejected: namespace "default" may not use ` +
			`the host's PID namespace \(pod has no pid namespace of its own\); allowed: kube-system`},
	{"privileged", harness.PodOptions{Privileged: true},
		`coreguard: privileged container "main" in pod default/privileged rejected: namespace "default" may not run ` +
			`privileged containers \(sysfs mounted rw, all devices allowed, [0-9]+ host devices\); allowed: kube-system`},
}

// TestAdmission: on CRI-O an ordinary pod in default runs; each host
// namespace and privileged pod is refused in default with coreguard's
// message reaching the CRI client, and runs in kube-system.
func TestAdmission(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{})
	startCoreguard(t, rt, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runPod(ctx, t, rt, harness.PodOptions{Name: "web"})
	for _, k := range admissionCases {
		t.Run(k.name, func(t *testing.T) {
			o := k.opts
			o.Name, o.Namespace = strings.ToLower(k.name), "kube-system"
			c := runPod(ctx, t, rt, o)
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.CRI.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("kube-system %s: state %s", k.name, st.CRI.GetState())
			}
			o.Namespace = "default"
			pod, err := rt.RunPod(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			_, err = pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Privileged: o.Privileged})
			msg := grpcMessage(t, err)
			want := "^" + strings.ReplaceAll(k.want, "{ns}", regexp.QuoteMeta(filepath.Join(rt.Dir, "ns"))) + "$"
			if !regexp.MustCompile(want).MatchString(msg) {
				t.Errorf("CRI error message\n  %s\nwant (regexp)\n  %s", msg, want)
			} else {
				t.Logf("refused as expected: %s", msg)
			}
			list, err := pod.ListContainers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 0 {
				t.Errorf("refused container left in pod: %v", list)
			}
		})
	}
}

func grpcMessage(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("container created; want it refused")
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		t.Fatalf("error is not a gRPC status: %v", err)
	}
	return se.GRPCStatus().Message()
}

// TestPreinstalledDropIn: the project's own CRI-O drop-ins
// (deploy/crio/10-nri.conf, 11-nri-required.conf), with their host paths
// moved under the test's dir, in CRI-O's config dir: CRI-O starts with them,
// listens on their NRI socket, starts 10-coreguard from their plugin dir and
// hands it 10-coreguard.conf from their config dir (CPU 0 reserved: the
// Guaranteed container gets CPU 1).
func TestPreinstalledDropIn(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{DropIns: deployDropIns(t)})
	dropDir := filepath.Join(rt.Dir, "dropin")
	if _, err := os.Stat(filepath.Join(dropDir, "nri.sock")); err != nil {
		t.Fatalf("the drop-in's nri_listen is not in use: %v\n%s", err, rt.LogTail(40))
	}
	if _, err := os.Stat(rt.NRISocket); err == nil {
		t.Errorf("CRI-O listens on crio.conf's NRI socket %s too; the drop-in should replace it", rt.NRISocket)
	}
	for _, d := range []string{"plugins", "conf.d"} {
		if err := os.MkdirAll(filepath.Join(dropDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := coreguard.Build()
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(rt.Dir, "sysfs")
	if err := sysfsgen.Write(topo, sysfsgen.Shapes()[sysfsgen.TwoCPUsTwoCores]); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(rt.Dir, "coreguard.log")
	if err := coreguard.WriteWrapper(filepath.Join(dropDir, "plugins", "10-coreguard"), bin, topo, logPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropDir, "conf.d", "10-coreguard.conf"), []byte(`reservedSystemCPUs: "0"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("coreguard log:\n%s", b)
		}
	})
	if err := rt.Restart(); err != nil { // CRI-O starts pre-installed plugins when it starts
		t.Fatal(err)
	}
	waitSyncs(t, logPath, 1)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "using the runtime-provided configuration") {
		t.Errorf("coreguard did not report taking the runtime's configuration:\n%s", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := runPod(ctx, t, rt, harness.PodOptions{Name: "burstable", Containers: []harness.Resources{burstable}})
	g := runPod(ctx, t, rt, harness.PodOptions{Name: "guaranteed", Containers: []harness.Resources{guaranteed1}})
	waitCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
	// A pre-installed plugin goes with CRI-O and is started again with it.
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	waitSyncs(t, logPath, 2)
	if err := g.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	waitCPUs(ctx, t, b, "0-1")
}

// deployDir holds the node configuration the project ships.
const deployDir = "../../../deploy/crio"

// deployDropIns reads deploy/crio's drop-ins with every host path they name
// moved under the test's dir ({{DIR}}/dropin); a path not moved fails the
// test, so a test CRI-O never uses the host's NRI socket or plugin dirs.
// Call it before Start (which changes the working directory).
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
	return out
}

func waitSyncs(t *testing.T, logPath string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for coreguard.CountSyncs(logPath) < n {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("pre-installed coreguard synchronized %d times, want %d:\n%s", coreguard.CountSyncs(logPath), n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRequiredPluginNotEnforced is a runtime-specific expectation: CRI-O
// v1.34.0 starts with deploy/crio/11-nri-required.conf (its TOML loader
// ignores keys it does not know) but has no default validator (its NRI is a
// pre-v0.10 pseudo-version), so with coreguard required and not connected
// a container is still created: CRI-O v1.34.0 cannot fail closed. On
// containerd 2.4 the same policy refuses it (TestRequiredPluginMissing).
func TestRequiredPluginNotEnforced(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{DropIns: deployDropIns(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := runPod(ctx, t, rt, harness.PodOptions{Name: "unguarded"})
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CRI.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("state %s", st.CRI.GetState())
	}
	t.Log("container created and running with required plugin coreguard absent")
}

// TestRuntimeRestartReconnects: CRI-O restarts under a running external
// coreguard, which reconnects by itself, resynchronizes and keeps releasing
// and pinning.
func TestRuntimeRestartReconnects(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{})
	cg := startCoreguard(t, rt, `reservedSystemCPUs: "0"`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := runPod(ctx, t, rt, harness.PodOptions{Name: "burstable", Containers: []harness.Resources{burstable}})
	g := runPod(ctx, t, rt, harness.PodOptions{Name: "guaranteed", Containers: []harness.Resources{guaranteed1}})
	waitCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
	syncs, pid := cg.Syncs(), cg.Pid()
	t0 := time.Now()
	if err := rt.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("CRI-O restarted in %v", time.Since(t0).Round(time.Millisecond))
	if err := cg.WaitSyncs(syncs+1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("coreguard reconnected and synchronized %v after the restart began", time.Since(t0).Round(time.Millisecond))
	if cg.Pid() != pid || !cg.Running() {
		t.Fatalf("coreguard process changed or exited (pid %d -> %d)", pid, cg.Pid())
	}
	waitCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
	if err := g.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	waitCPUs(ctx, t, b, "0-1")
	g2 := runPod(ctx, t, rt, harness.PodOptions{Name: "guaranteed-2", Containers: []harness.Resources{guaranteed1}})
	waitCPUs(ctx, t, g2, "1")
	waitCPUs(ctx, t, b, "0")
}

// TestTeardownAfterKill: a test that leaves CRI-O killed with pods running
// still gets a clean teardown (CRI-O is started again to remove the pods).
func TestTeardownAfterKill(t *testing.T) {
	rt := startCRIO(t, crioharness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runPod(ctx, t, rt, harness.PodOptions{Name: "left", Containers: []harness.Resources{burstable}})
	runPod(ctx, t, rt, harness.PodOptions{Name: "left-hostnet", HostNetwork: true})
	if err := rt.Kill(); err != nil {
		t.Fatal(err)
	}
}
