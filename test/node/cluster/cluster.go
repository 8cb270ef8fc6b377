// Package cluster runs a private single-node Kubernetes for coreguard's node
// tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kubelet (built by hack/install-node-deps.sh) against the e2e harness's
// private containerd with NRI. Everything listens on 127.0.0.1; pods get a
// loopback-only network from the harness's CNI conflist; kubelet runs with
// the cgroupfs driver under a private cgroup root. Close leaves no process,
// mount, cgroup, file, sysctl or iptables chain behind.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// InstallScript builds the binaries; named in skip and error messages.
const InstallScript = "hack/install-node-deps.sh"

// NodeName is the one node's name.
const NodeName = "coreguard-node"

const serviceIP = "10.0.0.1"

// KubeBinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet and kubectl: $COREGUARD_KUBE_BIN, else $COREGUARD_CACHE/kube/bin.
func KubeBinDir() string {
	if d := os.Getenv("COREGUARD_KUBE_BIN"); d != "" {
		return d
	}
	return filepath.Join(harness.CacheDir(), "kube", "bin")
}

// EtcdBin is $COREGUARD_ETCD, else $COREGUARD_CACHE/etcd/bin/etcd.
func EtcdBin() string {
	if b := os.Getenv("COREGUARD_ETCD"); b != "" {
		return b
	}
	return filepath.Join(harness.CacheDir(), "etcd", "bin", "etcd")
}

// Missing says why a cluster cannot start here ("" when it can).
func Missing() string {
	if why := harness.Missing(harness.BinDir()); why != "" {
		return why
	}
	bins := []string{EtcdBin()}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		bins = append(bins, filepath.Join(KubeBinDir(), c))
	}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			return "missing " + b + ": run `sudo bash " + InstallScript + "`"
		}
	}
	return ""
}

// Options configures one cluster. The zero value is kubelet with
// cpuManagerPolicy none.
type Options struct {
	Runtime harness.Options // the private containerd (CgroupRoot is set here)
	// CPUManagerPolicy is kubelet's ("none" by default; "static" for the
	// comparison), with ReservedSystemCPUs and CPUManagerPolicyOptions.
	CPUManagerPolicy        string
	ReservedSystemCPUs      string
	CPUManagerPolicyOptions map[string]string
	// StaticPods are written into kubelet's staticPodPath before it starts
	// (file name -> manifest).
	StaticPods map[string]string
	// NoControllers skips kube-controller-manager and kube-scheduler
	// (pods then need spec.nodeName; DaemonSets do not run).
	NoControllers bool
}

// Cluster is a running single-node cluster.
type Cluster struct {
	Dir          string
	Runtime      *harness.Runtime
	Client       kubernetes.Interface
	REST         *rest.Config
	Kubeconfig   string
	CgroupRoot   string // kubelet's cgroupRoot (pods live under CgroupRoot/kubepods)
	StaticPodDir string
	KubeletRoot  string
	PodLogDir    string
	LogDir       string

	logf    func(string, ...any)
	opts    Options
	pki     *pki
	host    *hostState
	procs   []*proc // in start order
	kubelet *proc
	closed  bool
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Launch starts the cluster and waits until the node is Ready. On error
// everything started is torn down. logf may be nil.
func Launch(opts Options, logf func(string, ...any)) (*Cluster, error) {
	if why := Missing(); why != "" {
		return nil, fmt.Errorf("cannot start a cluster: %s", why)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.CPUManagerPolicy == "" {
		opts.CPUManagerPolicy = "none"
	}
	dir, err := os.MkdirTemp("/tmp", "cgnode")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir: dir, logf: logf, opts: opts, host: saveHost(),
		CgroupRoot:   "/cgnode-" + strings.TrimPrefix(filepath.Base(dir), "cgnode"),
		StaticPodDir: filepath.Join(dir, "manifests"), KubeletRoot: filepath.Join(dir, "kubelet"),
		PodLogDir: filepath.Join(dir, "podlogs"), LogDir: filepath.Join(dir, "logs"),
		Kubeconfig: filepath.Join(dir, "admin.kubeconfig"),
	}
	if err := c.start(); err != nil {
		return nil, errors.Join(err, c.logTails(), c.Close())
	}
	return c, nil
}

func (c *Cluster) start() error {
	t0 := time.Now()
	for _, d := range []string{c.StaticPodDir, c.KubeletRoot, c.PodLogDir, c.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for name, text := range c.opts.StaticPods {
		if err := c.WriteStaticPod(name, text); err != nil {
			return err
		}
	}
	if err := makeCgroupRoot(c.CgroupRoot); err != nil {
		return err
	}
	ropts := c.opts.Runtime
	ropts.CgroupRoot = c.CgroupRoot
	rt, err := harness.Launch(ropts, c.logf)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	c.Runtime = rt

	if c.pki, err = makePKI(filepath.Join(c.Dir, "pki")); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ports, err := freePorts(7)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kubeletPort, healthzPort :=
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	if err := c.pki.kubeconfig(c.Kubeconfig, server); err != nil {
		return err
	}
	c.REST = &rest.Config{Host: server, QPS: 100, Burst: 200, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.CAPEM, CertData: c.pki.AdminPEM, KeyData: c.pki.AdminKeyPEM}}
	if c.Client, err = kubernetes.NewForConfig(c.REST); err != nil {
		return err
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if _, err := c.run("etcd", EtcdBin(),
		"--name", "node-test", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "node-test="+peerURL, "--unsafe-no-fsync", "--log-level", "warn"); err != nil {
		return err
	}
	kb := func(n string) string { return filepath.Join(KubeBinDir(), n) }
	p := c.pki
	if _, err := c.run("kube-apiserver", kb("kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--tls-cert-file", p.Serving, "--tls-private-key-file", p.ServingKey,
		"--client-ca-file", p.CA, "--service-account-key-file", p.SAPub,
		"--service-account-signing-key-file", p.SAKey, "--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.0.0.0/24", "--authorization-mode", "AlwaysAllow",
		"--allow-privileged=true", "--disable-admission-plugins", "ServiceAccount",
		"--endpoint-reconciler-type", "none", "--kubelet-client-certificate", p.Admin,
		"--kubelet-client-key", p.AdminKey, "--kubelet-preferred-address-types", "InternalIP",
		"--profiling=false", "--cert-dir", filepath.Join(c.Dir, "apiserver-certs")); err != nil {
		return err
	}
	if err := c.waitAPI(60 * time.Second); err != nil {
		return err
	}
	c.logf("cluster: etcd and kube-apiserver ready after %v", time.Since(t0).Round(time.Millisecond))
	if !c.opts.NoControllers {
		if _, err := c.run("kube-controller-manager", kb("kube-controller-manager"),
			"--kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(kcmPort),
			"--leader-elect=false", "--service-account-private-key-file", p.SAKey, "--root-ca-file", p.CA,
			"--use-service-account-credentials=false", "--profiling=false"); err != nil {
			return err
		}
		if _, err := c.run("kube-scheduler", kb("kube-scheduler"),
			"--kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort),
			"--leader-elect=false", "--profiling=false"); err != nil {
			return err
		}
	}
	cfg := filepath.Join(c.Dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(c.kubeletConfig(kubeletPort, healthzPort)), 0o644); err != nil {
		return err
	}
	if c.kubelet, err = c.run("kubelet", kb("kubelet"),
		"--config", cfg, "--kubeconfig", c.Kubeconfig, "--root-dir", c.KubeletRoot,
		"--cert-dir", filepath.Join(c.KubeletRoot, "pki"),
		// No --node-ip: kubelet refuses a loopback node IP, so the node's
		// InternalIP is this machine's; nothing is sent there (kubelet
		// listens on 127.0.0.1 only, so kubectl logs/exec and the API
		// server's node proxy do not reach it).
		"--hostname-override", NodeName, "--v", "2"); err != nil {
		return err
	}
	if err := c.WaitNodeReady(90 * time.Second); err != nil {
		return err
	}
	c.logf("cluster: node %s Ready after %v (kubelet cpuManagerPolicy %s, cgroupRoot %s, dir %s)",
		NodeName, time.Since(t0).Round(time.Millisecond), c.opts.CPUManagerPolicy, c.CgroupRoot, c.Dir)
	return nil
}

func (c *Cluster) kubeletConfig(port, healthz int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://%s
staticPodPath: %s
fileCheckFrequency: 1s
syncFrequency: 10s
nodeStatusUpdateFrequency: 4s
podLogsDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
serializeImagePulls: false
cpuManagerPolicy: %s
cpuManagerReconcilePeriod: 5s
`, port, healthz, c.CgroupRoot, c.Runtime.Address, c.StaticPodDir, c.PodLogDir, c.opts.CPUManagerPolicy)
	if c.opts.ReservedSystemCPUs != "" {
		fmt.Fprintf(&b, "reservedSystemCPUs: %q\n", c.opts.ReservedSystemCPUs)
	}
	if len(c.opts.CPUManagerPolicyOptions) > 0 {
		b.WriteString("cpuManagerPolicyOptions:\n")
		keys := make([]string, 0, len(c.opts.CPUManagerPolicyOptions))
		for k := range c.opts.CPUManagerPolicyOptions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %q\n", k, c.opts.CPUManagerPolicyOptions[k])
		}
	}
	return b.String()
}

// makeCgroupRoot creates kubelet's cgroupRoot in every v1 hierarchy
// (name=systemd included; kubelet checks them all) with cpuset filled in.
func makeCgroupRoot(path string) error {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "unified" {
			continue // symlinks (cpu -> cpu,cpuacct) and the hybrid v2 tree
		}
		d := filepath.Join("/sys/fs/cgroup", e.Name(), path)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		if e.Name() == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("%s/%s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

// run starts one component, its output in LogDir/NAME.log.
func (c *Cluster) run(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.LogDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A test binary killed by -timeout must not leave the cluster running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *Cluster) checkAlive() error {
	for _, p := range c.procs {
		if !p.running() {
			return fmt.Errorf("%s exited:\n%s", p.name, tail(p.log, 30))
		}
	}
	return nil
}

func (c *Cluster) waitAPI(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			return nil
		}
		if aerr := c.checkAlive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after %v: %v %s", timeout, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitNodeReady waits for the node's Ready condition.
func (c *Cluster) WaitNodeReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		cancel()
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return nil
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		} else {
			last = err.Error()
		}
		if aerr := c.checkAlive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after %v: %s", NodeName, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WriteStaticPod writes a manifest into kubelet's staticPodPath (kubelet
// reads the dir every second).
func (c *Cluster) WriteStaticPod(file, manifest string) error {
	return os.WriteFile(filepath.Join(c.StaticPodDir, file), []byte(manifest), 0o644)
}

// RemoveStaticPod deletes a manifest; kubelet then stops the pod.
func (c *Cluster) RemoveStaticPod(file string) error {
	return os.Remove(filepath.Join(c.StaticPodDir, file))
}

// Kubectl runs the cluster's kubectl with the admin kubeconfig.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(KubeBinDir(), "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// StopKubelet stops kubelet (SIGTERM; pods keep running).
func (c *Cluster) StopKubelet() {
	if c.kubelet != nil {
		c.kubelet.stop(10 * time.Second)
	}
}

// LogTail returns the last n lines of one component's log.
func (c *Cluster) LogTail(name string, n int) string {
	return tail(filepath.Join(c.LogDir, name+".log"), n)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "----- " + path + " -----\n" + strings.Join(lines, "\n")
}

func (c *Cluster) logTails() error {
	var b strings.Builder
	for _, p := range c.procs {
		b.WriteString(tail(p.log, 25) + "\n")
	}
	if b.Len() == 0 {
		return nil
	}
	return errors.New(b.String())
}

// DumpLogs logs every component's log tail (for failed tests).
func (c *Cluster) DumpLogs(n int) {
	for _, p := range c.procs {
		c.logf("%s", tail(p.log, n))
	}
}

// Close tears down in order: kubelet (so nothing recreates pods), every pod
// and containerd (the harness, which also removes the cgroup tree), the
// control plane and etcd, mounts under Dir (kubelet bind-mounts its root
// onto itself), Dir, then kubelet's host changes (sysctls, fixed paths,
// iptables chains). Idempotent.
func (c *Cluster) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	c.StopKubelet()
	if c.Runtime != nil {
		errs = append(errs, c.Runtime.Close())
	} else {
		_ = removeCgroupRoot(c.CgroupRoot)
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	for _, pid := range harness.ProcessesUsing(c.Dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if keep := os.Getenv("COREGUARD_NODE_LOGS"); keep != "" {
		// Debugging aid: keep the component logs (cp -a, outside Dir).
		dst := filepath.Join(keep, filepath.Base(c.Dir))
		if out, err := exec.Command("cp", "-a", c.LogDir, dst).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("keep logs in %s: %v: %s", dst, err, out))
		}
	}
	errs = append(errs, unmountAll(c.Dir), removeCgroupRoot(c.CgroupRoot))
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.host.restore(c.PodLogDir))
	return errors.Join(errs...)
}

func unmountAll(dir string) error {
	var errs []error
	for range 3 { // a bind mount may hide mounts below it
		mps, err := harness.MountsUnder(dir)
		if err != nil || len(mps) == 0 {
			return err
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("umount %s: %w", mp, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroupRoot removes what is left of the cgroup root (normally the
// harness already did) deepest first.
func removeCgroupRoot(root string) error {
	dirs, err := harness.CgroupTree(root)
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists whatever of this cluster survived Close.
func (c *Cluster) Leftovers() []string {
	var out []string
	if c.Runtime != nil {
		out = append(out, c.Runtime.Leftovers()...)
	}
	for _, pid := range harness.ProcessesUsing(c.Dir) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(string(b), "\x00", " ")))
	}
	for _, p := range c.procs {
		if p.running() {
			out = append(out, "process "+p.name)
		}
	}
	if dirs, _ := harness.CgroupTree(c.CgroupRoot); len(dirs) > 0 {
		for _, d := range dirs {
			out = append(out, "cgroup "+d)
		}
	}
	if mps, _ := harness.MountsUnder(c.Dir); len(mps) > 0 {
		for _, m := range mps {
			out = append(out, "mount "+m)
		}
	}
	if _, err := os.Stat(c.Dir); err == nil {
		out = append(out, "directory "+c.Dir)
	}
	return append(out, c.host.leftovers()...)
}
