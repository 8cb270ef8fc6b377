package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is one running private containerd.
type Runtime struct {
	t    testing.TB // nil when made by Launch
	logf func(format string, args ...any)
	opts Options
	p    paths

	// Paths a plugin or test may need.
	Dir              string // temp root of everything below
	Address          string // containerd/CRI gRPC socket
	NRISocket        string // dial this to connect an external NRI plugin
	PluginPath       string // pre-installed NRI plugins
	PluginConfigPath string // their configs
	ConfigPath       string
	LogPath          string // containerd's stdout+stderr
	CgroupRoot       string // kubelet's "kubepods" for this runtime, e.g. "/cgtest-1a2b3c"

	Conn   *grpc.ClientConn
	CRI    runtimeapi.RuntimeServiceClient
	Images runtimeapi.ImageServiceClient

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
	log     *os.File
	started bool // containerd came up at least once
	closed  bool
}

// Start writes a private config, starts containerd, waits for CRI and
// imports the test images. Cleanup (pods, containerd, shims, cgroups, mounts,
// dirs) is registered on t. It skips t when root or the binaries are missing.
func Start(t testing.TB, opts Options) *Runtime {
	t.Helper()
	opts.defaults()
	SkipIfUnavailable(t, opts.BinDir)
	r, err := launch(opts, t, t.Logf)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return r
}

// Launch is Start for programs that are not tests (the demo): it returns
// an error instead of failing a test, already torn down, and the caller
// must Close the Runtime. logf may be nil.
func Launch(opts Options, logf func(format string, args ...any)) (*Runtime, error) {
	opts.defaults()
	if why := Missing(opts.BinDir); why != "" {
		return nil, fmt.Errorf("cannot start containerd: %s", why)
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

// launch does the work of Start and Launch. With a t, Close is registered
// as a cleanup as soon as there is something to tear down; without one the
// Runtime is returned with the error so the caller can Close it.
func launch(opts Options, t testing.TB, logf func(string, ...any)) (*Runtime, error) {
	dir, err := os.MkdirTemp(shortTempDir(), "cg")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	r := &Runtime{t: t, logf: logf, opts: opts, p: newPaths(dir)}
	r.Dir, r.Address, r.NRISocket = dir, r.p.Address, r.p.NRISocket
	r.PluginPath, r.PluginConfigPath = r.p.PluginPath, r.p.PluginConfigPath
	r.ConfigPath, r.LogPath = r.p.Config, r.p.Log
	r.CgroupRoot = opts.CgroupRoot
	if r.CgroupRoot == "" {
		r.CgroupRoot = "/cgtest-" + filepath.Base(dir)[2:]
	}
	if t != nil {
		t.Cleanup(r.cleanup)
	}

	tarPath, err := imagesTarball()
	if err != nil {
		return r, fmt.Errorf("build images: %w", err)
	}
	if err := r.prepare(); err != nil {
		return r, err
	}
	if err := r.connect(); err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := r.start(); err != nil {
		return r, err
	}
	logf("harness: %s up, CRI answering after %v (dir %s)", r.version(), time.Since(t0).Round(time.Millisecond), dir)
	t0 = time.Now()
	if err := r.importImages(tarPath); err != nil {
		return r, err
	}
	logf("harness: images imported in %v", time.Since(t0).Round(time.Millisecond))
	return r, nil
}

// SkipIfUnavailable skips t loudly (also on stderr) when the e2e
// prerequisites are missing; with COREGUARD_E2E_REQUIRED=1 (CI) it fails
// instead, so a broken setup cannot pass as skipped.
func SkipIfUnavailable(t testing.TB, binDir string) {
	t.Helper()
	why := Missing(binDir)
	if why == "" {
		return
	}
	if os.Getenv("COREGUARD_E2E_REQUIRED") == "1" {
		t.Fatalf("coreguard e2e prerequisites missing and COREGUARD_E2E_REQUIRED=1: %s", why)
	}
	msg := "SKIPPING coreguard e2e test " + t.Name() + ": " + why
	fmt.Fprintln(os.Stderr, "\n*** "+msg+" ***")
	t.Skip(msg)
}

// shortTempDir keeps socket paths short even when TMPDIR is long.
func shortTempDir() string {
	if d := os.TempDir(); len(d) <= 24 {
		return d
	}
	return "/tmp"
}

func (r *Runtime) prepare() error {
	for _, d := range []string{r.p.Root, r.p.State, r.p.Temp, r.p.PluginPath, r.p.PluginConfigPath,
		r.p.ShimSockets, r.p.RuncRoot, r.p.Opt, r.p.CNIConf, r.p.PodLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if len(r.p.ShimSockets) > 42 {
		return fmt.Errorf("shim socket_dir %q longer than 42 characters", r.p.ShimSockets)
	}
	for _, pl := range r.opts.Plugins {
		if err := r.InstallPlugin(pl); err != nil {
			return err
		}
	}
	if err := writeCNIConfig(r.p.CNIConf); err != nil {
		return err
	}
	if err := os.WriteFile(r.p.Config, []byte(renderConfig(r.p, r.opts)), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(r.p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.log = f
	return nil
}

// InstallPlugin copies a pre-installed NRI plugin (and its config) into the
// plugin dirs. containerd only launches plugins found at its start, so call
// it before Start (Options.Plugins) or before Restart.
func (r *Runtime) InstallPlugin(pl PluginFile) error {
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

// connect makes the gRPC client once; it reconnects by itself across
// Restart. The short backoff avoids gRPC's ~1 s first-retry delay.
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
	return nil
}
