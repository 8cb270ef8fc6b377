package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/runtimeconfig"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/test/e2e/systemdbus"
	"github.com/coreguard/coreguard/test/node/cluster"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// repoRoot is the module root (tests run in test/node).
func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// installCoreguard installs coreguard into the cluster's containerd as
// docs/install.md tells an admin to for a pre-installed plugin: the files
// `make install` writes, in containerd's NRI plugin and config dirs, the
// configuration edited (cfg, the generated topology, a log file, kubelet's
// root dir), containerd restarted; containerd starts it with no arguments.
func installCoreguard(t *testing.T, c *cluster.Cluster, shape, cfg string) *coreguard.Installed {
	t.Helper()
	in, err := coreguard.Install(coreguard.InstallOptions{PluginDir: c.Runtime.PluginPath, ConfigDir: c.Runtime.PluginConfigPath,
		Config: cfg + "\nkubeletRootDir: " + c.KubeletRoot + "\n", SysfsRoot: topologyDir(t, shape),
		LogPath: filepath.Join(t.TempDir(), "coreguard.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(in.LogTail(60))
		}
	})
	if err := c.Runtime.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := in.WaitSyncs(1, settle); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestNodePreinstalled: coreguard installed as a pre-installed plugin under
// kubelet with cpuManagerPolicy none pins. On one core of two threads
// (2cpu-1core, CPUs 0 and 1), a Guaranteed `cpu: 1` pod, which kubelet's
// full-pcpus-only refuses, runs on the whole core with no quota; a
// privileged pod in default is refused.
func TestNodePreinstalled(t *testing.T) {
	c := startCluster(t, cluster.Options{})
	installCoreguard(t, c, sysfsgen.TwoCPUsOneCore, "")

	createPod(t, c, guaranteed("odd", "1"))
	p := waitRunning(t, c, "default", "odd")
	waitCpus(t, c, p, "0-1")
	if q := containerCPU(t, c, p).Quota; q != -1 {
		t.Errorf("odd container cpu.cfs_quota_us = %d, want -1", q)
	}
	// cfsQuota: auto, but a pinned pod runs without quota in every mode.
	waitPodQuota(t, c, p, -1, 12*time.Second)

	createPod(t, c, podSpec{name: "priv", privileged: true})
	msg := waitCreateContainerError(t, c, "default", "priv")
	if !strings.Contains(msg, "coreguard") || !strings.Contains(msg, "privileged") {
		t.Errorf("privileged pod: CreateContainerError %q, want coreguard's refusal", msg)
	}
	deletePod(t, c, "default", "odd")
}

// TestNodeKubeletStatic: on a node where kubelet runs the static CPU
// manager policy, the installed coreguard leaves cpusets to kubelet and
// says why (its log and coreguard_pinning_enabled 0), while its quota
// (cfsQuota: clear) and admission duties still act.
func TestNodeKubeletStatic(t *testing.T) {
	c := startCluster(t, cluster.Options{CPUManagerPolicy: "static", ReservedSystemCPUs: "0"})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cg := installCoreguard(t, c, sysfsgen.TwoCPUsTwoCores, fmt.Sprintf("cfsQuota: clear\nmetricsAddress: \"127.0.0.1:%d\"\n", port))
	log, _ := os.ReadFile(cg.LogPath)
	const why = "not pinning: kubelet's CPU manager runs the static policy on this node"
	if !strings.Contains(string(log), why) {
		t.Errorf("coreguard's log does not say %q:\n%s", why, cg.LogTail(30))
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	if v, keys := metric(scrape(t, url), "coreguard_pinning_enabled"); v != 0 || keys == "" {
		t.Errorf("coreguard_pinning_enabled = %v (%q), want 0", v, keys)
	}

	// kubelet's static policy pins the Guaranteed pod to CPU 1 (0 is
	// reserved); coreguard holds nothing.
	createPod(t, c, guaranteed("pinned", "1"))
	p := waitRunning(t, c, "default", "pinned")
	waitCpus(t, c, p, "1")
	if v, _ := metric(scrape(t, url), "coreguard_exclusive_containers"); v != 0 {
		t.Errorf("coreguard_exclusive_containers = %v under kubelet's static policy, want 0", v)
	}
	// Quota: cfsQuota clear lifts the Burstable pod's 500m limit.
	createPod(t, c, podSpec{name: "limited", ns: "default", cpuReq: "0", cpuLim: "500m", memReq: "32Mi", memLim: "64Mi"})
	b := waitRunning(t, c, "default", "limited")
	if q := containerCPU(t, c, b).Quota; q != -1 {
		t.Errorf("Burstable container cpu.cfs_quota_us = %d, want -1 (cfsQuota: clear)", q)
	}
	waitPodQuota(t, c, b, -1, 12*time.Second)
	if v, k := metric(scrape(t, url), "coreguard_quota_lifted", `namespace="default"`, `pod="limited"`, `reason="cfs-quota-clear"`); v != 1 {
		t.Errorf("coreguard_quota_lifted for default/limited = %v (%s), want 1", v, k)
	}
	// Admission: a privileged pod in default is refused.
	createPod(t, c, podSpec{name: "priv", privileged: true})
	if msg := waitCreateContainerError(t, c, "default", "priv"); !strings.Contains(msg, "coreguard") || !strings.Contains(msg, "privileged") {
		t.Errorf("privileged pod: CreateContainerError %q, want coreguard's refusal", msg)
	}
}

// imageTar returns the coreguard image tarball `make image-tar` writes
// ($COREGUARD_IMAGE_TAR, else _output/coreguard-image.tar), building it
// with deploy/imagetar when absent.
func imageTar(t *testing.T, image, tag string) string {
	t.Helper()
	if p := os.Getenv("COREGUARD_IMAGE_TAR"); p != "" {
		return p
	}
	p := filepath.Join(repoRoot(t), "_output/coreguard-image.tar")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	bin, err := coreguard.Build()
	if err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(t.TempDir(), "coreguard-image.tar")
	cmd := exec.Command("go", "run", "./deploy/imagetar", "--binary", bin, "--image", image, "--tag", tag, "-o", p)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build image tarball: %v\n%s", err, out)
	}
	return p
}

var imageLine = regexp.MustCompile(`(?m)^\s*image:\s*(\S+):(\S+)\s*$`)

// TestNodeDaemonSet installs coreguard with `helm install` from
// deploy/helm/coreguard (which renders deploy/kubernetes/base with its
// defaults: deploy_test.go), values pointing its host paths at this test's
// containerd and generated topology and setting reservedSystemCPUs and a
// metrics port, its image imported from the image tarball; the rollout
// waits for the readiness probe.
func TestNodeDaemonSet(t *testing.T) {
	c := startCluster(t, cluster.Options{})
	port := helmInstall(t, c)

	createPod(t, c, podSpec{name: "shared", cpuReq: "100m", memReq: "32Mi"})
	shared := waitRunning(t, c, "default", "shared")
	createPod(t, c, guaranteed("pinned", "1"))
	p := waitRunning(t, c, "default", "pinned")
	waitCpus(t, c, p, "1")
	waitCpus(t, c, shared, "0")
	waitPodQuota(t, c, p, -1, 12*time.Second)

	createPod(t, c, podSpec{name: "priv", privileged: true})
	msg := waitCreateContainerError(t, c, "default", "priv")
	if !strings.Contains(msg, "coreguard") || !strings.Contains(msg, "privileged") {
		t.Errorf("privileged pod: CreateContainerError %q, want coreguard's refusal", msg)
	}
	waitEvent(t, c, "default", "priv", "Failed", "coreguard")

	// Privileged on a RuntimeClass without host devices, with a /sys
	// volume: NRI shows no mark; the runtime runs the DaemonSet's copy of
	// coreguard from the state dir as the spec-check hook, which refuses it.
	if _, err := c.Client.NodeV1().RuntimeClasses().Create(context.Background(), &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "no-host-devices"}, Handler: harness.NoHostDevicesHandler}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod(t, c, podSpec{name: "priv-sys", privileged: true, runtimeClass: "no-host-devices", sysVolume: t.TempDir()})
	t.Logf("privileged pod without host devices, /sys volume: %s",
		waitContainerMessage(t, c, "default", "priv-sys", `coreguard hook: privileged container "c" in pod default/priv-sys rejected`))

	metrics := scrape(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics")
	if v, k := metric(metrics, "coreguard_admission_rejections_total", `namespace="default"`, `reason="privileged"`); v < 1 {
		t.Errorf("coreguard_admission_rejections_total privileged/default = %v (%s), want >= 1", v, k)
	}
	if v, k := metric(metrics, "coreguard_exclusive_containers"); v != 1 {
		t.Errorf("coreguard_exclusive_containers = %v (%s), want 1", v, k)
	}
}

// TestNodeDaemonSetEnablesNRI: on a node whose containerd has NRI off in
// its config, `helm install --set nri.patchRuntimeConfig=true` runs the
// enable-nri init container, which turns NRI on in the node's config.toml
// and restarts containerd through systemd's D-Bus API (played on a private
// dbus-daemon: package systemdbus); kubelet carries on, coreguard's pod goes
// Ready and pins.
func TestNodeDaemonSetEnablesNRI(t *testing.T) {
	c := startCluster(t, cluster.Options{Runtime: harness.Options{NRIOff: true}})
	bus := systemdbus.Start(t, map[string]func() error{"containerd.service": c.Runtime.Restart})
	if filepath.Base(c.Runtime.ConfigPath) != "config.toml" {
		t.Fatalf("the init step patches config.toml; the runtime's config is %s", c.Runtime.ConfigPath)
	}
	helmInstall(t, c, "--set", "nri.patchRuntimeConfig=true",
		"--set", "hostPaths.containerdConfigDir="+filepath.Dir(c.Runtime.ConfigPath),
		"--set", "hostPaths.dbusSocket="+bus.Socket)
	if got := bus.Restarts(); !slices.Equal(got, []string{"containerd.service"}) {
		t.Errorf("restarted %v, want [containerd.service]", got)
	}
	if _, err := os.Stat(c.Runtime.ConfigPath + runtimeconfig.BackupSuffix); err != nil {
		t.Errorf("containerd's config as it was: %v", err)
	}
	t.Logf("init container enable-nri:\n%s", podLogs(c, coreguardPod(t, c)))
	createPod(t, c, guaranteed("pinned", "1"))
	waitCpus(t, c, waitRunning(t, c, "default", "pinned"), "1")
}

// helmInstall installs coreguard from the chart as docs/install.md tells
// admins, its image imported from the image tarball, with values for this
// node (and extra --set arguments), waits for the rollout (the readiness
// probe) and for coreguard's Synchronize, and returns its metrics port.
func helmInstall(t *testing.T, c *cluster.Cluster, set ...string) int {
	t.Helper()
	root := repoRoot(t)
	base := filepath.Join(root, "deploy/kubernetes/base")
	ds, err := os.ReadFile(filepath.Join(base, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := imageLine.FindSubmatch(ds)
	if m == nil {
		t.Fatalf("no image: line in %s/daemonset.yaml", base)
	}
	image, tag := string(m[1]), string(m[2])
	tar := imageTar(t, image, tag)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, filepath.Join(harness.BinDir(), "ctr"), "--address", c.Runtime.Address,
		"-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
		t.Fatalf("ctr import %s: %v\n%s", tar, err, out)
	}
	t.Logf("imported %s:%s from %s in %v", image, tag, tar, time.Since(t0).Round(time.Millisecond))

	topo := topologyDir(t, sysfsgen.TwoCPUsTwoCores)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(c.Dir, "coreguard-state")
	healthPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(c.Runtime.NRISocket) != "nri.sock" {
		t.Fatalf("the DaemonSet dials /var/run/nri/nri.sock; the runtime's socket is %s", c.Runtime.NRISocket)
	}
	// Host paths inside the cluster's dir (the private containerd's NRI
	// socket dir, the generated topology, the cluster's kubelet root dir,
	// coreguard's state dir, netns/ipcns dirs: nothing on the host outside
	// it; their mountPropagation HostToContainer needs a shared or slave
	// mount, and / is private on these VMs: kubelet's root dir, which
	// kubelet bind-mounts onto itself as shared, is one), free ports, and
	// reservedSystemCPUs.
	t0 = time.Now()
	args := append([]string{"install", "coreguard", filepath.Join(root, "deploy/helm/coreguard"), "--namespace", "kube-system",
		"--set", "hostPaths.nriSocketDir=" + filepath.Dir(c.Runtime.NRISocket),
		"--set", "hostPaths.sysDevicesSystem=" + filepath.Join(topo, "devices/system"),
		"--set", "hostPaths.netns=" + filepath.Join(c.KubeletRoot, "test-netns"),
		"--set", "hostPaths.ipcns=" + filepath.Join(c.KubeletRoot, "test-ipcns"),
		"--set", "hostPaths.kubeletRootDir=" + c.KubeletRoot,
		"--set", "hostPaths.stateDir=" + stateDir,
		"--set", "health.port=" + strconv.Itoa(healthPort),
		"--set-string", "config.reservedSystemCPUs=0",
		"--set-string", fmt.Sprintf("config.metricsAddress=127.0.0.1:%d", port)}, set...)
	out, err := helmCmd(t, ctx, c, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install:\n%s", out)
	if out, err := c.Kubectl(ctx, "-n", "kube-system", "rollout", "status", "daemonset/coreguard", "--timeout=90s"); err != nil {
		t.Fatalf("%v\ncoreguard pod's logs:\n%s", err, podLogs(c, coreguardPod(t, c)))
	} else {
		t.Logf("%s(%v after apply)", out, time.Since(t0).Round(time.Millisecond))
	}
	cgPod := coreguardPod(t, c)
	waitPod(t, c, "kube-system", cgPod.Name, "Ready", func(p *corev1.Pod) bool {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	// Connected: coreguard logs its Synchronize with the runtime. (Read
	// from kubelet's pod log dir: the API server cannot reach a kubelet
	// listening on 127.0.0.1 only, so kubectl logs does not work here.)
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := podLogs(c, cgPod)
		if strings.Contains(logs, coreguard.SyncedMsg) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coreguard pod never logged %q:\n%s", coreguard.SyncedMsg, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("coreguard DaemonSet pod %s Ready and synchronized (%v after apply)", cgPod.Name, time.Since(t0).Round(time.Millisecond))
	return port
}

// coreguardPod is the DaemonSet's one pod.
func coreguardPod(t *testing.T, c *cluster.Cluster) *corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=coreguard"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("coreguard pods: %v (%d)", err, len(pods.Items))
	}
	return &pods.Items[0]
}

// podLogs reads the logs kubelet keeps of the pod's containers.
func podLogs(c *cluster.Cluster, p *corev1.Pod) string {
	files, _ := filepath.Glob(filepath.Join(c.PodLogDir, p.Namespace+"_"+p.Name+"_"+string(p.UID), "*", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// helmCmd runs the helm hack/install-tools.sh builds against the cluster.
func helmCmd(t *testing.T, ctx context.Context, c *cluster.Cluster, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("COREGUARD_HELM")
	if bin == "" {
		bin = filepath.Join(harness.CacheDir(), "helm-"+helmVersion, "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no helm at %s (make deps-tools builds it): %v", bin, err)
	}
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", c.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// helmVersion is the helm hack/install-tools.sh builds.
const helmVersion = "v4.3.2"
