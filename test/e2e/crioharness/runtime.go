package crioharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// Runtime is one running private CRI-O.
type Runtime struct {
	t    testing.TB // nil when made by Launch
	logf func(format string, args ...any)
	opts Options
	p    paths

	// Paths a plugin or test may need (as in harness.Runtime).
	Dir              string // temp root of everything below
	Address          string // CRI gRPC socket
	NRISocket        string // dial this to connect an external NRI plugin
	PluginPath       string // pre-installed NRI plugins (nri_plugin_dir)
	PluginConfigPath string // their configs (nri_plugin_config_dir)
	ConfigPath       string // crio.conf
	ConfigDir        string // --config-dir, for drop-ins
	LogPath          string // CRI-O's stdout+stderr
	CgroupRoot       string // kubelet's "kubepods" for this runtime

	Conn   *grpc.ClientConn
	CRI    runtimeapi.RuntimeServiceClient
	Images runtimeapi.ImageServiceClient

	// Harness is a harness.Runtime sharing this CRI-O's CRI client, cgroup
	// root and dir, so harness's pod and container helpers (RunPod,
	// Pod.RunContainer, Container.CPU, ...) and the scenarios written on
	// them drive CRI-O. Use it for CRI work only: its Stop, Start, Restart
	// and LogTail know nothing of CRI-O (use this Runtime's), and its Close
	// must not be called (this Runtime's Close tears down).
	Harness *harness.Runtime

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     *os.File
	started bool
	closed  bool
	oldWd   string // Launch: the working directory to restore on Close
}

// Start writes a private config, imports the test images into a private
// containers/storage, starts CRI-O and waits for CRI. Cleanup (pods, CRI-O,
// conmon, containers, cgroups, mounts, dirs) is registered on t. It skips t
// when root or the binaries are missing.
//
// It changes the test's working directory (t.Chdir) to the private pod log
// dir (see podLogClient): build anything with `go build` (coreguard.Build)
// before Start.
func Start(t testing.TB, opts Options) *Runtime {
	t.Helper()
	opts.defaults()
	SkipIfUnavailable(t, opts.BinDir)
	r, err := launch(opts, t, t.Logf)
	if err != nil {
		t.Fatalf("crioharness: %v", err)
	}
	return r
}

// Launch is Start for programs that are not tests: an error instead of a
// failed test, already torn down; the caller must Close the Runtime. It
// changes the process's working directory until Close (see podLogClient).
func Launch(opts Options, logf func(format string, args ...any)) (*Runtime, error) {
	opts.defaults()
	if why := Missing(opts.BinDir); why != "" {
		return nil, fmt.Errorf("cannot start CRI-O: %s", why)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r, err := launch(opts, nil, logf)
	if err != nil && r != nil {
		err = errors.Join(err, r.Close())
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// SkipIfUnavailable skips t loudly when the CRI-O prerequisites are missing;
// with COREGUARD_E2E_REQUIRED=1 (CI) it fails instead.
func SkipIfUnavailable(t testing.TB, binDir string) {
	t.Helper()
	why := Missing(binDir)
	if why == "" {
		return
	}
	if os.Getenv("COREGUARD_E2E_REQUIRED") == "1" {
		t.Fatalf("coreguard CRI-O e2e prerequisites missing and COREGUARD_E2E_REQUIRED=1: %s", why)
	}
	msg := "SKIPPING coreguard CRI-O e2e test " + t.Name() + ": " + why
	fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
	t.Skip(msg)
}

func launch(opts Options, t testing.TB, logf func(string, ...any)) (*Runtime, error) {
	base := os.TempDir()
	if len(base) > 24 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "co")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	r := &Runtime{t: t, logf: logf, opts: opts, p: newPaths(dir)}
	r.Dir, r.Address, r.NRISocket = dir, r.p.Address, r.p.NRISocket
	r.PluginPath, r.PluginConfigPath = r.p.PluginPath, r.p.PluginConfigPath
	r.ConfigPath, r.ConfigDir, r.LogPath = r.p.Config, r.p.ConfigDir, r.p.Log
	r.CgroupRoot = opts.CgroupRoot
	if r.CgroupRoot == "" {
		r.CgroupRoot = "/cgcrio-" + filepath.Base(dir)[2:]
	}
	if t != nil {
		t.Cleanup(r.cleanup)
	}
	if err := r.prepare(); err != nil {
		return r, err
	}
	if err := r.connect(); err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := r.importImages(); err != nil {
		return r, err
	}
	logf("crioharness: images imported in %v", time.Since(t0).Round(time.Millisecond))
	// After the image build (go build needs the module's directory) and
	// after cleanup is registered (the directory is restored first).
	if t != nil {
		t.Chdir(r.p.PodLogs)
	} else {
		if r.oldWd, err = os.Getwd(); err != nil {
			return r, err
		}
		if err := os.Chdir(r.p.PodLogs); err != nil {
			return r, err
		}
	}
	t0 = time.Now()
	if err := r.start(); err != nil {
		return r, err
	}
	logf("crioharness: %s up, CRI answering after %v (dir %s)", r.version(), time.Since(t0).Round(time.Millisecond), dir)
	return r, nil
}

func (r *Runtime) prepare() error {
	for _, d := range []string{r.p.ConfigDir, r.p.Root, r.p.RunRoot, r.p.Run, r.p.Run + "/exits", r.p.Lib,
		r.p.PluginPath, r.p.PluginConfigPath, r.p.RuncRoot, r.p.Namespaces, r.p.CNIConf, r.p.PodLogs, r.p.Tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, pl := range r.opts.Plugins {
		if err := r.InstallPlugin(pl); err != nil {
			return err
		}
	}
	files := map[string]string{
		r.p.Config:         renderConfig(r.p, r.opts),
		r.p.StorageConf:    storageConf(r.p),
		r.p.RegistriesConf: registriesConf,
		r.p.Policy:         policyJSON,
	}
	if !r.opts.NoCNI {
		files[filepath.Join(r.p.CNIConf, cniConfName)] = cniConflist
	}
	for name, text := range r.opts.DropIns {
		if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("drop-in name %q", name)
		}
		files[filepath.Join(r.p.ConfigDir, name)] = strings.ReplaceAll(text, "{{DIR}}", r.Dir)
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(r.p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.log = f
	return nil
}

// InstallPlugin copies a pre-installed NRI plugin (and its config) into the
// plugin dirs. CRI-O launches plugins found at its start: call it before
// Start (Options.Plugins) or before Restart.
func (r *Runtime) InstallPlugin(pl harness.PluginFile) error {
	data, err := os.ReadFile(pl.Source)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", pl.Name, err)
	}
	if err := os.WriteFile(filepath.Join(r.p.PluginPath, pl.Name), data, 0o755); err != nil {
		return fmt.Errorf("plugin %s: %w", pl.Name, err)
	}
	if pl.Config != "" {
		if err := os.WriteFile(filepath.Join(r.p.PluginConfigPath, pl.Name+".conf"), []byte(pl.Config), 0o644); err != nil {
			return fmt.Errorf("plugin %s config: %w", pl.Name, err)
		}
	}
	return nil
}

// env is CRI-O's (and skopeo's) environment: private containers config.
func (r *Runtime) env() []string {
	return append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+r.p.StorageConf,
		"CONTAINERS_REGISTRIES_CONF="+r.p.RegistriesConf,
		"TMPDIR="+r.p.Tmp,
	)
}

func (r *Runtime) connect() error {
	conn, err := grpc.NewClient("unix://"+r.p.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return fmt.Errorf("grpc client for %s: %w", r.p.Address, err)
	}
	r.Conn = conn
	r.CRI = runtimeapi.NewRuntimeServiceClient(conn)
	r.Images = runtimeapi.NewImageServiceClient(conn)
	r.Harness = &harness.Runtime{
		Dir: r.Dir, Address: r.Address, NRISocket: r.NRISocket,
		PluginPath: r.PluginPath, PluginConfigPath: r.PluginConfigPath,
		ConfigPath: r.ConfigPath, LogPath: r.LogPath, CgroupRoot: r.CgroupRoot,
		CRI:    podLogClient{RuntimeServiceClient: r.CRI, dir: r.p.PodLogs},
		Images: r.Images,
	}
	return nil
}

// podLogClient adapts harness.Runtime's pod helpers to CRI-O. A
// harness.Runtime made outside its package has no pod log dir, so
// harness.PodConfig gives LogDirectory as a relative "ns_name_uid", which
// RunPod creates relative to the working directory and CRI-O refuses
// ("requested logDir ... is a relative path"). Start makes the working
// directory the private pod log dir and this client makes the path
// absolute in place (the Pod's Config is the same message, so container
// log paths follow). Exporting the pod log dir from harness.Runtime would
// make both unnecessary.
type podLogClient struct {
	runtimeapi.RuntimeServiceClient
	dir string
}

func (c podLogClient) RunPodSandbox(ctx context.Context, in *runtimeapi.RunPodSandboxRequest, opts ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	if cfg := in.GetConfig(); cfg != nil && cfg.LogDirectory != "" && !filepath.IsAbs(cfg.LogDirectory) {
		cfg.LogDirectory = filepath.Join(c.dir, cfg.LogDirectory)
	}
	return c.RuntimeServiceClient.RunPodSandbox(ctx, in, opts...)
}

// RunPod runs a pod through harness's helpers (kubelet's labels, cgroup
// parent, pod cgroup, resources).
func (r *Runtime) RunPod(ctx context.Context, o harness.PodOptions) (*harness.Pod, error) {
	return r.Harness.RunPod(ctx, o)
}

// ImageID resolves an image name to CRI-O's image ID.
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	return r.Harness.ImageID(ctx, ref)
}

func (r *Runtime) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("CRI-O already running")
	}
	fmt.Fprintf(r.log, "\n===== crioharness: starting CRI-O %s =====\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(r.opts.BinDir, "crio"), "--config", r.p.Config, "--config-dir", r.p.ConfigDir)
	cmd.Env = r.env()
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if r.opts.OwnProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start CRI-O: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	if err := r.waitReady(done); err != nil {
		return err
	}
	r.started = true
	return nil
}

func (r *Runtime) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(r.opts.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("CRI-O exited during startup: %s\n%s", r.cmd.ProcessState, r.LogTail(30))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := r.CRI.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil && r.ready(st) {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("not ready: %v", st.GetStatus().GetConditions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("CRI not ready after %v (last error: %v)\n%s", r.opts.StartTimeout, last, r.LogTail(30))
}

// ready: RuntimeReady, and NetworkReady unless there is no CNI config.
func (r *Runtime) ready(st *runtimeapi.StatusResponse) bool {
	ready := map[string]bool{}
	for _, c := range st.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	return ready[runtimeapi.RuntimeReady] && (r.opts.NoCNI || ready[runtimeapi.NetworkReady])
}

// Version asks the running CRI-O for its name and version through CRI.
func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return r.CRI.Version(ctx, &runtimeapi.VersionRequest{})
}

func (r *Runtime) version() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := r.Version(ctx)
	if err != nil {
		return "CRI-O (version unknown: " + err.Error() + ")"
	}
	return v.RuntimeName + " " + v.RuntimeVersion
}

// PID of the running CRI-O, 0 when stopped.
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop terminates CRI-O (SIGTERM, SIGKILL after 10 s). conmon and the
// containers keep running, as on a node when CRI-O restarts.
func (r *Runtime) Stop() error { return r.stop(syscall.SIGTERM) }

// Kill stops CRI-O with SIGKILL.
func (r *Runtime) Kill() error { return r.stop(syscall.SIGKILL) }

func (r *Runtime) stop(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	fmt.Fprintf(r.log, "\n===== crioharness: CRI-O stopped (%s) =====\n", r.cmd.ProcessState)
	r.cmd, r.done = nil, nil
	return nil
}

// Restart stops CRI-O and starts it again with the same config and state;
// pods and containers survive, NRI plugins must reconnect.
func (r *Runtime) Restart() error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.start()
}

// Start starts CRI-O again after Stop or Kill.
func (r *Runtime) Start() error { return r.start() }

// LogTail returns the last n lines of CRI-O's log.
func (r *Runtime) LogTail(n int) string {
	b, err := os.ReadFile(r.p.Log)
	if err != nil {
		return "(no CRI-O log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "----- CRI-O log tail (" + r.p.Log + ") -----\n" + strings.Join(lines, "\n")
}
