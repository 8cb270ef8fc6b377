// Package plugin is coreguard's NRI plugin: the only package that speaks
// NRI. Each NRI event has its handler in its own file (configure.go,
// synchronize.go, create.go, update.go, stop.go, remove.go); each duty
// lives in its own sub-package (pinning/) that the handlers call.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kernel"
	"github.com/coreguard/coreguard/kubelet"
	"github.com/coreguard/coreguard/plugin/admission"
	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/plugin/quota"
	"github.com/coreguard/coreguard/topology"
)

const (
	// DefaultName is the plugin's NRI name.
	DefaultName = "coreguard"
	// DefaultIndex orders coreguard among NRI plugins, which the runtime
	// calls in ascending index order. 10 puts it early, so a container that
	// coreguard refuses is refused before later plugins spend work on it,
	// and leaves 00-09 free for plugins an admin wants before it.
	DefaultIndex = "10"
	// DefaultSocket is the runtime's NRI socket for external plugins.
	DefaultSocket = api.DefaultSocketPath
)

// Options configure a Plugin.
type Options struct {
	Name, Index, Socket string
	// Config is the configuration from --config (or the default). A
	// configuration the runtime passes (pre-installed plugins get theirs
	// from the runtime's plugin config dir) replaces it, wholly: everything
	// derived from the configuration is decided again from it.
	Config *config.Config
	// ConfigFile, when set, is read for Config at start; when it is
	// refused, coreguard runs on the last good configuration (lastgood.go).
	ConfigFile string
	// StateDir keeps the last good configuration. Default: none, but a
	// pre-installed coreguard keeps it beside its executable.
	StateDir string
	// Overrides are settings given on the command line: they win over the
	// same settings of whichever configuration is in force.
	Overrides Overrides
	// Log is the logger; its level, format and file follow the
	// configuration in force (Config.Log).
	Log *logrus.Logger

	// The rest replace what coreguard otherwise reads from the host, for
	// embedding and tests.

	// Topology, when set, is the machine: the configuration's sysfsRoot is
	// then not read.
	Topology *topology.Topology
	// Cgroups, when set, is the cgroup tree pod quotas are written to,
	// instead of the configuration's cgroupRoot.
	Cgroups quota.Cgroups
	// KernelRelease is the kernel the CFS-bug verdict is made for, as a
	// release alone (no procfs readings). Default: the kernel ProcRoot shows.
	KernelRelease string
	// ProcRoot is the procfs the kernel is read from when KernelRelease is
	// not set: its release and the upstream version the distribution
	// prints, as `coreguard kernel` reads them (kernel.ReadProc). Default:
	// /proc.
	ProcRoot string
	// Metrics collects coreguard's metrics. Default: a new set, served when
	// the configuration in force has a metricsAddress.
	Metrics *Metrics
	// Version is the binary's version, for coreguard_build_info. Default:
	// unknown.
	Version string
	// HostNamespaces recognises the host's namespaces by path (CRI-O names
	// them instead of leaving them out). Default: read from /proc.
	HostNamespaces admission.HostNamespaces
	// RuntimeNRI is the NRI version to assume for a runtime that reports
	// none it can be told by (a runtime side hosted in a binary without
	// module information, as tests do). Default: none, taken as too old to
	// take updates outside its requests (refresh.go).
	RuntimeNRI string
}

// Overrides are command-line settings; "" leaves the configuration's.
type Overrides struct {
	SysfsRoot, CgroupRoot, MetricsAddress, HealthAddress, LogLevel, LogFormat string
}

// on returns cfg with the overrides applied (cfg itself is not changed).
func (o Overrides) on(cfg *config.Config) *config.Config {
	c := *cfg
	for _, f := range []struct {
		to   *string
		from string
	}{
		{&c.SysfsRoot, o.SysfsRoot}, {&c.CgroupRoot, o.CgroupRoot}, {&c.MetricsAddress, o.MetricsAddress}, {&c.HealthAddress, o.HealthAddress},
		{&c.Log.Level, o.LogLevel}, {&c.Log.Format, o.LogFormat},
	} {
		if f.from != "" {
			*f.to = f.from
		}
	}
	return &c
}

// Plugin is the NRI plugin. Its exported methods are the NRI handlers.
type Plugin struct {
	opts    Options
	log     *logrus.Entry
	metrics *Metrics
	logs    *logOutput
	kernel  kernel.Kernel // the kernel the CFS-bug verdict is for (Release "" when unreadable)
	// policy is sent to the runtime when coreguard registers; Configure
	// sets it from the configuration in force before the stub sends it.
	policy *api.FailurePolicy
	// hookBinary is the coreguard binary runtimes run as the spec-check
	// hook ("" when there is none: hookbinary.go).
	hookBinary string

	mu         sync.Mutex
	cfg        *config.Config
	admission  *admission.Checker
	pinner     *pinning.Pinner
	quota      *quota.Duty
	kubelet    kubelet.CPUManager // what kubelet's checkpoint said when last read
	kubeletErr string             // why the checkpoint could not be read last time, "" when it could
	stub       stub.Stub
	fatal      error  // a configuration error: retrying cannot help
	out        outbox // updates sent outside any runtime request (refresh.go)
	// unsolicited: the runtime takes updates outside its requests safely
	// (refresh.go); until it says which NRI it runs, it does not.
	unsolicited atomic.Bool
	// synced: Synchronize has run on the connection in force (/readyz).
	synced atomic.Bool
	// lastDialErr is the last failure to register, logged once (Run's loop).
	lastDialErr string
	health      endpoint // /healthz and /readyz (health.go)
}

// New checks the options against the machine and makes the plugin. A
// pre-installed plugin's configuration is the runtime's: it is applied when
// the runtime passes it (Configure), not here.
func New(opts Options) (*Plugin, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Index == "" {
		opts.Index = DefaultIndex
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.Config == nil {
		opts.Config = config.Default()
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	opts.Metrics.setVersion(opts.Version)
	if opts.HostNamespaces == nil {
		opts.HostNamespaces = admission.NewProcHostNamespaces("/proc")
	}
	p := &Plugin{opts: opts, log: opts.Log.WithField("plugin", opts.Name), metrics: opts.Metrics,
		logs: newLogOutput(opts.Log, Preinstalled()), kernel: kernel.Kernel{Release: opts.KernelRelease},
		policy: &api.FailurePolicy{}, out: newOutbox()}
	if p.kernel.Release == "" {
		k, err := kernel.ReadProc(procRoot(opts))
		if err != nil {
			p.log.WithError(err).Warn("cannot read the running kernel's release: its CFS throttling bug verdict is unknown (config kernel.unknown decides)")
		}
		p.kernel = k
	}
	var err error
	if p.hookBinary, err = hookBinary(opts.StateDir); err != nil {
		p.log.WithError(err).Warn("no spec-check hook: a privileged container that NRI shows no mark of (privileged_without_host_devices and a /sys volume) is not refused")
	}
	if Preinstalled() {
		return p, nil
	}
	var readErr error
	if opts.ConfigFile != "" {
		p.opts.Config, readErr = config.Load(opts.ConfigFile)
	}
	if _, err := p.use(p.opts.Config, readErr, ""); err != nil {
		return nil, err
	}
	return p, nil
}

// apply makes cfg (with the command line's overrides) the configuration in
// force: everything derived from it is decided here, from it alone, with
// fresh duty state. Nothing changes when it fails, so a bad configuration
// leaves the one in force running.
func (p *Plugin) apply(cfg *config.Config) error {
	cfg = p.opts.Overrides.on(cfg)
	topo := p.opts.Topology
	if topo == nil {
		var err error
		if topo, err = topology.Read(cfg.SysfsRoot); err != nil {
			return fmt.Errorf("sysfsRoot %s: %w", cfg.SysfsRoot, err)
		}
	}
	pin, err := pinning.New(topo, cfg, p.log, p.metrics.pinningStats())
	if err != nil {
		return fmt.Errorf("config does not fit this machine: %w", err)
	}
	logFile, err := openLogFile(cfg.Log.File)
	if err != nil {
		return err
	}
	health, err := p.health.prepare(cfg.HealthAddress)
	if err != nil {
		closeLogFile(logFile)
		return fmt.Errorf("healthAddress: %w", err)
	}
	metrics, err := p.metrics.server.prepare(cfg.MetricsAddress)
	if err != nil {
		health.abort()
		closeLogFile(logFile)
		return fmt.Errorf("metricsAddress: %w", err)
	}
	// Nothing fails from here on.
	p.logs.set(cfg.Log, logFile)
	started, stopped := metrics.commit(p.metrics.handler())
	if stopped != "" {
		p.log.WithField("address", stopped).Info("no longer serving metrics there")
	}
	if started != "" {
		p.log.WithField("address", started).Info("serving metrics on /metrics")
	}
	started, stopped = health.commit(p.healthHandler())
	if stopped != "" {
		p.log.WithField("address", stopped).Info("no longer serving /healthz and /readyz there")
	}
	if started != "" {
		p.log.WithField("address", started).Info("serving /healthz and /readyz")
	}
	verdict := p.verdict(cfg)
	cg := p.opts.Cgroups
	if cg == nil {
		if h, err := cgroups.Open(cfg.CgroupRoot); err != nil {
			p.log.WithError(err).Warn("no cgroup tree: pod-level CFS quota clearing is off")
		} else {
			cg = h
		}
	}
	for _, w := range cfg.Admission.Warnings() {
		p.log.Warn(w)
	}
	adm := admission.New(&cfg.Admission, p.opts.HostNamespaces, p.log, p.metrics.admission)
	adm.SetHookBinary(p.hookBinary)
	q := quota.New(quota.Mode(cfg.CFSQuota), verdict.Buggy, cg, p.log, p.metrics.quotaStats())
	if cfg.SharedPoolUpdates == config.SharedPoolCgroupFirst {
		if d, ok := cg.(pinning.Cgroups); ok && cpusetWritable(cg) {
			pin.SetDirect(d, p.metrics.directStats())
		} else {
			p.log.Warn("sharedPoolUpdates: cgroup-first needs the cgroup tree's cpuset controller (cgroupRoot): shared containers are moved by the runtime's updates in the answers instead (in-response)")
		}
	}
	kube := p.readKubelet(cfg.KubeletRootDir)
	pin.SetPaused(kube.Static())
	p.mu.Lock()
	before := p.kubelet
	p.cfg, p.pinner, p.admission, p.quota, p.kubelet = cfg, pin, adm, q, kube
	// Runtimes with NRI >= v0.12.4 then fail creations coreguard does not
	// answer in time; older ones ignore it.
	p.policy.FailRequest, p.policy.KeepConnected = cfg.Admission.FailClosed, cfg.Admission.FailClosed
	p.mu.Unlock()
	p.metrics.watch(pin, q)
	p.metrics.admission.setMode(cfg.Admission.Mode)
	p.reportKubelet(before, kube)
	return nil
}

// cpusetWritable: the cgroup tree has a cpuset controller to write (a
// test's stand-in for the tree passes).
func cpusetWritable(cg quota.Cgroups) bool {
	h, ok := cg.(*cgroups.Hierarchy)
	if !ok {
		return cg != nil
	}
	return h.HasCPUSet()
}

// duties are the duty states in force (the configuration can change when
// the runtime passes one, replacing them all).
type duties struct {
	admission *admission.Checker
	pinning   *pinning.Pinner
	quota     *quota.Duty
}

func (p *Plugin) duties() duties {
	p.mu.Lock()
	defer p.mu.Unlock()
	return duties{p.admission, p.pinner, p.quota}
}

// Preinstalled reports whether the runtime started this process as a
// pre-installed plugin, handing it a connected socket.
func Preinstalled() bool { return os.Getenv(api.PluginSocketEnvVar) != "" }

// Run connects to the runtime and serves until ctx ends. An external plugin
// reconnects when the runtime goes away (containerd or CRI-O restarting),
// retrying with backoff, and resynchronizes its state from the runtime on
// every connection. A pre-installed plugin returns when its connection
// closes: the runtime starts a new one when it comes back.
func (p *Plugin) Run(ctx context.Context) error {
	backoff := newBackoff(250*time.Millisecond, 5*time.Second)
	for {
		closed := make(chan struct{})
		opts := []stub.Option{stub.WithOnClose(func() { close(closed) })}
		if !Preinstalled() {
			opts = append(opts, stub.WithPluginName(p.opts.Name), stub.WithPluginIdx(p.opts.Index),
				stub.WithSocketPath(p.opts.Socket))
		}
		// The stub sends this very policy in its answer to Configure, after
		// our Configure handler ran: the configuration the runtime passes
		// there decides it (apply sets it).
		opts = append(opts, stub.WithFailurePolicy(p.policy))
		st, err := stub.New(p, opts...)
		if err != nil {
			return fmt.Errorf("nri: %w", err)
		}
		if err := st.Start(ctx); err != nil {
			if f := p.fatalError(); f != nil {
				return f
			}
			if ctx.Err() != nil {
				return nil
			}
			if Preinstalled() {
				return err
			}
			wait := backoff.next()
			p.logDialError(err, wait)
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		backoff.reset()
		p.lastDialErr = ""
		nriVersion := st.RuntimeNRIVersion()
		if nriVersion == "" {
			nriVersion = api.UnknownVersion // the runtime said none, and its name and version told NRI nothing
		}
		if nriVersion == api.UnknownVersion && p.opts.RuntimeNRI != "" {
			nriVersion = p.opts.RuntimeNRI
		}
		// Known before the connection is published: whoever sees the stub
		// sees what the runtime takes.
		p.unsolicited.Store(takesUnsolicited(nriVersion))
		p.setStub(st)
		p.log.WithFields(logrus.Fields{"socket": p.opts.Socket, "runtimeNRI": nriVersion,
			"updatesOutsideRequests": p.unsolicited.Load()}).Info("registered with the runtime")
		if !p.unsolicited.Load() && p.currentConfig().SharedPoolUpdates == config.SharedPoolAfterResponse {
			p.log.Warnf("sharedPoolUpdates: after-response needs a runtime built with NRI %s or later (this one: %q): "+
				"the shared pool is updated in the answers instead", unsolicitedSince, nriVersion)
		}
		connCtx, stopRefresher := context.WithCancel(ctx)
		go p.refresher(connCtx, st)
		ok := p.serve(ctx, closed)
		stopRefresher()
		if !ok {
			p.setStub(nil)
			st.Stop()
			return nil
		}
		p.setStub(nil)
		if Preinstalled() {
			p.log.Info("runtime closed the connection; exiting (the runtime restarts pre-installed plugins)")
			return nil
		}
		p.log.Warn("runtime connection lost; reconnecting")
	}
}

// reassertEvery is how often pod quotas that should be off are checked
// (kubelet rewrites pod cgroups on its own schedule: pod resync, resize),
// and with them kubelet's CPU manager policy and containers past their
// start timeout.
var reassertEvery = 10 * time.Second

// serve waits for the connection to close (true) or ctx to end (false),
// clearing pod quotas kubelet brought back in the meantime.
func (p *Plugin) serve(ctx context.Context, closed <-chan struct{}) bool {
	tick := time.NewTicker(reassertEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-closed:
			return true
		case <-tick.C:
			p.duties().quota.Reassert()
			p.checkKubelet()
			p.expire()
		}
	}
}

func (p *Plugin) currentConfig() *config.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

func (p *Plugin) setStub(s stub.Stub) {
	p.mu.Lock()
	p.stub = s
	p.mu.Unlock()
	if s == nil {
		p.synced.Store(false) // the next connection synchronizes again
	}
	p.metrics.setConnected(s != nil)
}

func (p *Plugin) fatalError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fatal
}

type backoff struct{ cur, min, max time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{cur: min, min: min, max: max} }

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(2*b.cur, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// logDialError reports a failure to register with the runtime: once,
// loudly, and again only when it changes (a node with NRI off would
// otherwise log every few seconds forever).
func (p *Plugin) logDialError(err error, wait time.Duration) {
	entry := p.log.WithError(err)
	if err.Error() == p.lastDialErr {
		entry.Debugf("cannot register with the runtime at %s; retrying in %s", p.opts.Socket, wait)
		return
	}
	p.lastDialErr = err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		entry.Warnf("no NRI socket at %s: is NRI enabled in the runtime's configuration (docs/install.md, step 1)? "+
			"Retrying until it appears; not ready meanwhile", p.opts.Socket)
		return
	}
	entry.Warnf("cannot register with the runtime at %s; retrying (not ready meanwhile)", p.opts.Socket)
}
