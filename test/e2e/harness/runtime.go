package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TB is the part of testing.TB the harness uses. It is declared here so
// that the demo, which imports the harness but is not a test, does not
// link the testing package.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Failed() bool
	Cleanup(func())
}

// Runtime is one running private containerd or CRI-O.
type Runtime struct {
	t    TB // nil when made by Launch
	logf func(format string, args ...any)
	opts Options
	b    backend

	// Kind is Options.Runtime: Containerd or CRIO.
	Kind string

	// Paths a plugin or test may need.
	Dir              string // temp root of everything below
	Address          string // CRI gRPC socket (containerd's also serves its own API)
	NRISocket        string // dial this to connect an external NRI plugin
	PluginPath       string // pre-installed NRI plugins
	PluginConfigPath string // their configs
	ConfigPath       string // config.toml or crio.conf
	ConfigDir        string // CRI-O's --config-dir (drop-ins); "" for containerd
	LogPath          string // the runtime's stdout+stderr
	PodLogDir        string // pods' LogDirectory is made under it
	// NamespacesDir is CRI-O's namespaces_dir, where pinns pins pod
	// namespaces (netns/<id>, ipcns/<id>, ...); "" for containerd.
	NamespacesDir string
	CgroupRoot    string // kubelet's "kubepods" for this runtime, e.g. "/cgtest-1a2b3c"

	Conn   *grpc.ClientConn
	CRI    runtimeapi.RuntimeServiceClient
	Images runtimeapi.ImageServiceClient

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
	log     *os.File
	started bool // the runtime came up at least once
	closed  bool
}

// backend is what differs between runtimes.
type backend interface {
	// name for messages: "containerd", "CRI-O".
	name() string
	// tempPrefix names Dir ("/tmp/cgNNNN", "/tmp/coNNNN"); cgroupPrefix
	// the default CgroupRoot ("/cgtest-NNNN", "/cgcrio-NNNN").
	tempPrefix() string
	cgroupPrefix() string
	// layout sets the Runtime's exported paths for dir.
	layout(r *Runtime)
	// prepare makes the private dirs and writes the configuration.
	prepare(r *Runtime) error
	// command is the runtime's command line and environment.
	command(r *Runtime) *exec.Cmd
	// importsBeforeStart: CRI-O's images are copied into its storage
	// before it starts; containerd's are imported through it.
	importsBeforeStart() bool
	// importTarball makes the images of an OCI layout tarball known to the
	// runtime's image store.
	importTarball(ctx context.Context, r *Runtime, tarPath string) error
}

// Start writes a private config, starts the runtime (Options.Runtime,
// default containerd), waits for CRI and imports the test images. Cleanup
// (pods, the runtime, shims or conmon, cgroups, mounts, dirs) is registered
// on t. It skips t when root or the binaries are missing.
func Start(t TB, opts Options) *Runtime {
	t.Helper()
	opts.defaults()
	SkipIfRuntimeUnavailable(t, opts.Runtime, opts.BinDir)
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
	if why := MissingFor(opts.Runtime, opts.BinDir); why != "" {
		return nil, fmt.Errorf("cannot start %s: %s", opts.Runtime, why)
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
func launch(opts Options, t TB, logf func(string, ...any)) (*Runtime, error) {
	var b backend
	switch opts.Runtime {
	case Containerd:
		b = &containerdBackend{}
		if opts.NoCNI || len(opts.DropIns) > 0 {
			return nil, errors.New("Options.NoCNI and Options.DropIns are for CRI-O only")
		}
	case CRIO:
		b = &crioBackend{}
	default:
		return nil, fmt.Errorf("unknown runtime %q (want %q or %q)", opts.Runtime, Containerd, CRIO)
	}
	dir, err := os.MkdirTemp(shortTempDir(), b.tempPrefix())
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	r := &Runtime{t: t, logf: logf, opts: opts, b: b, Kind: opts.Runtime, Dir: dir}
	b.layout(r)
	r.CgroupRoot = opts.CgroupRoot
	if r.CgroupRoot == "" {
		r.CgroupRoot = b.cgroupPrefix() + filepath.Base(dir)[len(b.tempPrefix()):]
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b.importsBeforeStart() {
		t0 := time.Now()
		if err := b.importTarball(ctx, r, tarPath); err != nil {
			return r, err
		}
		logf("harness: images copied into %s's storage in %v", b.name(), time.Since(t0).Round(time.Millisecond))
	}
	t0 := time.Now()
	if err := r.start(); err != nil {
		return r, err
	}
	logf("harness: %s up, CRI answering after %v (dir %s)", r.version(), time.Since(t0).Round(time.Millisecond), dir)
	t0 = time.Now()
	if !b.importsBeforeStart() {
		if err := b.importTarball(ctx, r, tarPath); err != nil {
			return r, err
		}
	}
	if err := r.waitImages(ctx, WorkloadImage, PauseImage); err != nil {
		return r, err
	}
	logf("harness: images known to CRI after %v", time.Since(t0).Round(time.Millisecond))
	return r, nil
}

// SkipIfUnavailable skips t loudly (also on stderr) when the containerd
// e2e prerequisites are missing; with COREGUARD_E2E_REQUIRED=1 (CI) it
// fails instead, so a broken setup cannot pass as skipped.
func SkipIfUnavailable(t TB, binDir string) {
	t.Helper()
	SkipIfRuntimeUnavailable(t, Containerd, binDir)
}

// SkipIfRuntimeUnavailable is SkipIfUnavailable for runtime (Containerd or
// CRIO); binDir "" means BinDirFor(runtime).
func SkipIfRuntimeUnavailable(t TB, runtime, binDir string) {
	t.Helper()
	why := MissingFor(runtime, binDir)
	if why == "" {
		return
	}
	if os.Getenv("COREGUARD_E2E_REQUIRED") == "1" {
		t.Fatalf("coreguard %s e2e prerequisites missing and COREGUARD_E2E_REQUIRED=1: %s", runtime, why)
	}
	msg := "SKIPPING coreguard " + runtime + " e2e test " + t.Name() + ": " + why
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
	for _, d := range []string{r.PluginPath, r.PluginConfigPath, r.PodLogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := r.b.prepare(r); err != nil {
		return err
	}
	for _, pl := range r.opts.Plugins {
		if err := r.InstallPlugin(pl); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.log = f
	return nil
}

// InstallPlugin copies a pre-installed NRI plugin (and its config) into the
// plugin dirs. The runtimes launch only plugins found at their start, so
// call it before Start (Options.Plugins) or before Restart.
func (r *Runtime) InstallPlugin(pl PluginFile) error {
	data, err := os.ReadFile(pl.Source)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", pl.Name, err)
	}
	if err := os.WriteFile(filepath.Join(r.PluginPath, pl.Name), data, 0o755); err != nil {
		return fmt.Errorf("plugin %s: %w", pl.Name, err)
	}
	if pl.Config != "" {
		if err := os.WriteFile(filepath.Join(r.PluginConfigPath, pl.Name+".conf"), []byte(pl.Config), 0o644); err != nil {
			return fmt.Errorf("plugin %s config: %w", pl.Name, err)
		}
	}
	return nil
}

// connect makes the gRPC client once; it reconnects by itself across
// Restart. The short backoff avoids gRPC's ~1 s first-retry delay.
func (r *Runtime) connect() error {
	conn, err := grpc.NewClient("unix://"+r.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return fmt.Errorf("grpc client for %s: %w", r.Address, err)
	}
	r.Conn = conn
	r.CRI = runtimeapi.NewRuntimeServiceClient(conn)
	r.Images = runtimeapi.NewImageServiceClient(conn)
	return nil
}
