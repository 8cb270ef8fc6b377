// Package nritest hosts the real runtime side of NRI (pkg/adaptation) in a
// test process, over a real socket, with a small in-memory container store
// that applies adjustments and updates the way a runtime would. Plugin
// conformance tests drive coreguard through it exactly as containerd does.
package nritest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
)

// NRIVersion is the NRI runtime side this package hosts (go.mod's). A test
// binary carries no module versions, so the adaptation reports "unknown":
// plugins are told this instead (plugin.Options.RuntimeNRI).
const NRIVersion = "v0.12.5"

// Runtime is a fake container runtime with a real NRI adaptation.
type Runtime struct {
	tb     testing.TB
	nri    *adaptation.Adaptation
	proxy  *proxy
	dir    string
	Socket string
	// preinstalled: plugins the runtime side launches itself, whose
	// Synchronize at each start WaitSync waits for.
	preinstalled bool
	// LoseUpdatesBeforeStart plays containerd's race: an update reaching a
	// container whose task is being created changes only its stored spec,
	// not the cgroup made from it, so it is lost.
	LoseUpdatesBeforeStart bool

	mu     sync.Mutex
	pods   map[string]*api.PodSandbox
	ctrs   map[string]*api.Container
	gone   map[string]bool // removed containers
	synced chan syncEvent
	seq    int
}

// syncEvent is one run of the adaptation's sync callback: when the runtime
// saw a plugin register (the callback was entered) and when the plugin's
// Synchronize answer had been applied.
type syncEvent struct{ registered, synced time.Time }

// Start hosts NRI on a fresh socket. Plugins connect to r.Socket.
func Start(tb testing.TB) *Runtime {
	tb.Helper()
	return start(tb, true)
}

// StartDirect is Start without the connection-cutting proxy: plugins dial
// the adaptation's own socket, as they do a real runtime's, with no extra
// hop on every call. Benchmarks use it; Restart then cannot cut the
// plugins' connections, so tests of reconnection use Start.
func StartDirect(tb testing.TB) *Runtime {
	tb.Helper()
	return start(tb, false)
}

// Plugin is a pre-installed plugin: the runtime side launches Binary as
// plugins/Name (e.g. "10-coreguard") when it starts, with Config in
// conf.d/Name.conf (none when empty), as containerd and CRI-O do.
type Plugin struct {
	Name, Binary, Config string
}

// StartPreinstalled is Start with pre-installed plugins, launched by the
// runtime side itself; WaitSync waits for their Synchronize.
func StartPreinstalled(tb testing.TB, plugins ...Plugin) *Runtime {
	tb.Helper()
	return start(tb, true, plugins...)
}

func start(tb testing.TB, withProxy bool, plugins ...Plugin) *Runtime {
	tb.Helper()
	// Unix socket paths are short: t.TempDir() names can be too long.
	dir, err := os.MkdirTemp("", "nri")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Runtime{tb: tb, dir: dir, Socket: filepath.Join(dir, "nri.sock"), pods: map[string]*api.PodSandbox{},
		ctrs: map[string]*api.Container{}, gone: map[string]bool{}, synced: make(chan syncEvent, 16)}
	for _, p := range plugins {
		if err := r.install(p); err != nil {
			tb.Fatal(err)
		}
	}
	r.preinstalled = len(plugins) > 0
	r.startNRI()
	if !withProxy {
		r.Socket = filepath.Join(dir, "adaptation.sock")
	} else if r.proxy, err = startProxy(r.Socket, filepath.Join(dir, "adaptation.sock")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if r.proxy != nil {
			r.proxy.close()
		}
		r.nri.Stop()
		os.RemoveAll(dir)
	})
	return r
}

func (r *Runtime) startNRI() {
	r.tb.Helper()
	var err error
	r.nri, err = adaptation.New("nritest", "v0.0.0", r.sync, r.update,
		adaptation.WithPluginPath(filepath.Join(r.dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(r.dir, "conf.d")),
		adaptation.WithSocketPath(filepath.Join(r.dir, "adaptation.sock")))
	if err != nil {
		r.tb.Fatal(err)
	}
	if err := r.nri.Start(); err != nil {
		r.tb.Fatal(err)
	}
	if !r.preinstalled {
		r.drainSync()
	}
}

// install copies a pre-installed plugin and its configuration into place.
func (r *Runtime) install(p Plugin) error {
	bin, err := os.ReadFile(p.Binary)
	if err != nil {
		return err
	}
	for _, d := range []string{"plugins", "conf.d"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(r.dir, "plugins", p.Name), bin, 0o755); err != nil {
		return err
	}
	if p.Config == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(r.dir, "conf.d", p.Name+".conf"), []byte(p.Config), 0o644)
}

// PluginPath is where the runtime side found pre-installed plugin name.
func (r *Runtime) PluginPath(name string) string { return filepath.Join(r.dir, "plugins", name) }

// Restart stops NRI, cuts the plugins' connections and starts NRI again
// with the same containers, as a restarted runtime does.
func (r *Runtime) Restart() {
	r.tb.Helper()
	r.nri.Stop()
	if r.proxy != nil {
		r.proxy.cut()
	}
	r.startNRI()
}

// WaitSync waits until a plugin has connected and synchronized.
func (r *Runtime) WaitSync(timeout time.Duration) {
	r.tb.Helper()
	r.WaitSyncAt(timeout)
}

// WaitSyncAt is WaitSync that also says when the runtime saw the plugin
// register (its sync callback was entered) and when the plugin's
// Synchronize answer had been applied.
func (r *Runtime) WaitSyncAt(timeout time.Duration) (registered, synced time.Time) {
	r.tb.Helper()
	var ev syncEvent
	select {
	case ev = <-r.synced:
	case <-time.After(timeout):
		r.tb.Fatalf("no plugin synchronized within %s", timeout)
	}
	// The plugin joins the runtime's list after its sync returns, under the
	// sync lock: wait for that too.
	r.nri.BlockPluginSync().Unblock()
	return ev.registered, ev.synced
}

// blockSync keeps plugins from (re)synchronizing during one operation, as
// containerd does around container creation, so a sync never sees half of it.
func (r *Runtime) blockSync() func() {
	return r.nri.BlockPluginSync().Unblock
}

// drainSync forgets the sync Start runs for pre-installed plugins when
// there are none, so WaitSync waits for a plugin that connects.
func (r *Runtime) drainSync() {
	select {
	case <-r.synced:
	default:
	}
}

func (r *Runtime) sync(ctx context.Context, cb adaptation.SyncCB) error {
	registered := time.Now()
	r.mu.Lock()
	pods, ctrs := r.snapshot()
	r.mu.Unlock()
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.strict(r.apply(updates))
	r.mu.Unlock()
	select {
	case r.synced <- syncEvent{registered: registered, synced: time.Now()}:
	default:
	}
	return nil
}

// update takes a plugin's updates outside any request. A container
// stopped or removed since the plugin decided is reported failed, as
// runtimes do: that race is real. One never created is a plugin's bug.
func (r *Runtime) update(_ context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	failed := r.apply(updates)
	for _, u := range failed {
		if _, ok := r.ctrs[u.GetContainerId()]; !ok && !r.gone[u.GetContainerId()] {
			r.tb.Errorf("update for unknown container %s", u.GetContainerId())
		}
	}
	return failed, nil
}

// snapshot returns copies of the live pods and containers.
func (r *Runtime) snapshot() ([]*api.PodSandbox, []*api.Container) {
	var pods []*api.PodSandbox
	for _, p := range r.pods {
		pods = append(pods, p)
	}
	var ctrs []*api.Container
	for _, c := range r.ctrs {
		ctrs = append(ctrs, clone(c))
	}
	slices.SortFunc(ctrs, func(a, b *api.Container) int { return strings.Compare(a.Id, b.Id) })
	return pods, ctrs
}

// PodSpec describes a pod the way kubelet's CRI request shapes it.
type PodSpec struct {
	Name, Namespace string
	QoS             string // "guaranteed", "burstable" or "besteffort": picks the cgroup parent
	Annotations     map[string]string
	// HostNetwork: the pod shares the host's network namespace, which
	// containerd shows by listing no network namespace for it.
	HostNetwork bool
}

// RunPod records a pod and tells the plugins.
func (r *Runtime) RunPod(spec PodSpec) *api.PodSandbox {
	r.tb.Helper()
	r.mu.Lock()
	r.seq++
	uid := fmt.Sprintf("uid-%04d", r.seq)
	r.mu.Unlock()
	parent := "/kubepods/pod" + uid
	if spec.QoS == "burstable" || spec.QoS == "besteffort" {
		parent = "/kubepods/" + spec.QoS + "/pod" + uid
	}
	ns := spec.Namespace
	if ns == "" {
		ns = "default"
	}
	pod := &api.PodSandbox{Id: "pod-" + uid, Name: spec.Name, Uid: uid, Namespace: ns,
		Annotations: spec.Annotations, Linux: &api.LinuxPodSandbox{CgroupParent: parent}}
	if spec.HostNetwork {
		pod.Linux.Namespaces = []*api.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "mount"}}
	}
	if err := r.nri.RunPodSandbox(context.Background(), &api.RunPodSandboxRequest{Pod: pod}); err != nil {
		r.tb.Fatalf("RunPodSandbox: %v", err)
	}
	r.mu.Lock()
	r.pods[pod.Id] = pod
	r.mu.Unlock()
	return pod
}

// Resources are a container's CPU request and limit in millicores (0: none),
// turned into cgroup values as kubelet does.
type Resources struct{ RequestMilli, LimitMilli int64 }

// Linux returns the CRI-level resources kubelet would send.
func (res Resources) Linux() *api.LinuxResources {
	const period = 100000
	cpu := &api.LinuxCPU{Shares: api.UInt64(uint64(max(2, res.RequestMilli*1024/1000)))}
	if res.LimitMilli > 0 {
		cpu.Quota = api.Int64(res.LimitMilli * period / 1000)
		cpu.Period = api.UInt64(period)
	}
	return &api.LinuxResources{Cpu: cpu}
}

// Create creates and starts a container in pod, as kubelet does, applying
// what the plugins answered. It returns the container's ID, or the
// plugins' error.
func (r *Runtime) Create(pod *api.PodSandbox, name string, res Resources) (string, error) {
	id, _, err := r.CreateTimed(pod, name, res)
	return id, err
}

// CreateTimed is Create that also returns how long the adaptation's
// CreateContainer took: the round trip through every plugin, including
// the runtime side merging their answers, but not the store's own work nor
// the start.
func (r *Runtime) CreateTimed(pod *api.PodSandbox, name string, res Resources) (string, time.Duration, error) {
	id, rtt, err := r.create(pod, name, res)
	if err == nil {
		err = r.Start(id)
	}
	return id, rtt, err
}

// CreateUnstarted creates a container and leaves it created: a creation
// that fails after the plugins answered (runc cannot create it, a later
// plugin refuses it), of which runtimes tell plugins nothing.
func (r *Runtime) CreateUnstarted(pod *api.PodSandbox, name string, res Resources) (string, error) {
	id, _, err := r.create(pod, name, res)
	return id, err
}

func (r *Runtime) create(pod *api.PodSandbox, name string, res Resources) (string, time.Duration, error) {
	defer r.blockSync()()
	r.mu.Lock()
	r.seq++
	id := fmt.Sprintf("ctr-%04d-%s", r.seq, name)
	r.mu.Unlock()
	ctr := &api.Container{Id: id, PodSandboxId: pod.Id, Name: name, State: api.ContainerState_CONTAINER_CREATED,
		Annotations: map[string]string{},
		Linux:       &api.LinuxContainer{Resources: res.Linux(), CgroupsPath: pod.Linux.CgroupParent + "/" + id}}
	req := &api.CreateContainerRequest{Pod: pod, Container: clone(ctr)}
	start := time.Now()
	resp, err := r.nri.CreateContainer(context.Background(), req)
	rtt := time.Since(start)
	if err != nil {
		return "", rtt, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	adjust(ctr, resp.GetAdjust())
	r.ctrs[id] = ctr
	r.strict(r.apply(resp.GetUpdate()))
	return id, rtt, nil
}

// Start starts a created container: StartContainer, then PostStartContainer.
func (r *Runtime) Start(id string) error {
	defer r.blockSync()()
	pod, ctr := r.lookup(id)
	if err := r.nri.StartContainer(context.Background(), &api.StartContainerRequest{Pod: pod, Container: ctr}); err != nil {
		return err
	}
	r.mu.Lock()
	r.ctrs[id].State = api.ContainerState_CONTAINER_RUNNING
	r.mu.Unlock()
	_, ctr = r.lookup(id)
	return r.nri.PostStartContainer(context.Background(), &api.PostStartContainerRequest{Pod: pod, Container: ctr})
}

// Update sends kubelet's UpdateContainerResources for a container.
func (r *Runtime) Update(id string, res Resources) error {
	defer r.blockSync()()
	pod, ctr := r.lookup(id)
	resp, err := r.nri.UpdateContainer(context.Background(),
		&api.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: res.Linux()})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.strict(r.apply(resp.GetUpdate()))
	return nil
}

// Stop stops a container, applying the plugins' updates.
func (r *Runtime) Stop(id string) {
	r.tb.Helper()
	defer r.blockSync()()
	pod, ctr := r.lookup(id)
	resp, err := r.nri.StopContainer(context.Background(), &api.StopContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		r.tb.Fatalf("StopContainer %s: %v", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctrs[id].State = api.ContainerState_CONTAINER_STOPPED
	r.strict(r.apply(resp.GetUpdate()))
}

// Remove removes a container (stopping it first if it runs).
func (r *Runtime) Remove(id string) {
	r.tb.Helper()
	defer r.blockSync()()
	pod, ctr := r.lookup(id)
	if err := r.nri.RemoveContainer(context.Background(), &api.RemoveContainerRequest{Pod: pod, Container: ctr}); err != nil {
		r.tb.Fatalf("RemoveContainer %s: %v", id, err)
	}
	r.mu.Lock()
	delete(r.ctrs, id)
	r.gone[id] = true
	r.mu.Unlock()
}

// RemovePod stops and removes a pod, telling the plugins, as kubelet does
// once its containers are removed.
func (r *Runtime) RemovePod(pod *api.PodSandbox) {
	r.tb.Helper()
	defer r.blockSync()()
	ctx := context.Background()
	if err := r.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}); err != nil {
		r.tb.Fatalf("StopPodSandbox %s: %v", pod.Id, err)
	}
	if err := r.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod}); err != nil {
		r.tb.Fatalf("RemovePodSandbox %s: %v", pod.Id, err)
	}
	r.mu.Lock()
	delete(r.pods, pod.Id)
	r.mu.Unlock()
}

// Container returns a copy of a container as the runtime holds it now.
func (r *Runtime) Container(id string) *api.Container {
	_, c := r.lookup(id)
	return c
}

// Containers returns copies of every container not stopped.
func (r *Runtime) Containers() []*api.Container {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ctrs := r.snapshot()
	return slices.DeleteFunc(ctrs, func(c *api.Container) bool { return c.State == api.ContainerState_CONTAINER_STOPPED })
}

// AddContainer puts a container straight into the store, as one created
// while no plugin was connected.
func (r *Runtime) AddContainer(pod *api.PodSandbox, name string, res Resources, annotations map[string]string, cpus string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	id := fmt.Sprintf("ctr-%04d-%s", r.seq, name)
	lr := res.Linux()
	lr.Cpu.Cpus = cpus
	r.ctrs[id] = &api.Container{Id: id, PodSandboxId: pod.Id, Name: name, State: api.ContainerState_CONTAINER_RUNNING,
		Annotations: annotations, Linux: &api.LinuxContainer{Resources: lr}}
	return id
}

func (r *Runtime) lookup(id string) (*api.PodSandbox, *api.Container) {
	r.tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.ctrs[id]
	if !ok {
		r.tb.Fatalf("no container %s", id)
	}
	return r.pods[c.PodSandboxId], clone(c)
}

// apply performs container updates on the store, as a runtime does, and
// returns those that could not be applied and may not fail silently.
func (r *Runtime) apply(updates []*api.ContainerUpdate) (failed []*api.ContainerUpdate) {
	for _, u := range updates {
		c, ok := r.ctrs[u.GetContainerId()]
		if !ok || c.State == api.ContainerState_CONTAINER_STOPPED {
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
			continue
		}
		if r.LoseUpdatesBeforeStart && c.State == api.ContainerState_CONTAINER_CREATED {
			continue
		}
		mergeCPU(c, u.GetLinux().GetResources().GetCpu())
	}
	return failed
}

// strict fails the test for updates in a request's answer the runtime
// could not apply: the plugin decided them under the request, so a stale
// one is the plugin's bug (and would fail the request on a real runtime).
func (r *Runtime) strict(failed []*api.ContainerUpdate) {
	for _, u := range failed {
		r.tb.Errorf("update for unknown or stopped container %s in an answer", u.GetContainerId())
	}
}

// adjust applies a creation-time adjustment's fields coreguard uses.
func adjust(c *api.Container, a *api.ContainerAdjustment) {
	if a == nil {
		return
	}
	for k, v := range a.GetAnnotations() {
		if strings.HasPrefix(k, "-") {
			delete(c.Annotations, strings.TrimPrefix(k, "-"))
			continue
		}
		c.Annotations[k] = v
	}
	mergeCPU(c, a.GetLinux().GetResources().GetCpu())
}

func mergeCPU(c *api.Container, cpu *api.LinuxCPU) {
	if cpu == nil {
		return
	}
	have := c.Linux.Resources.Cpu
	if cpu.Cpus != "" {
		have.Cpus = cpu.Cpus
	}
	if cpu.Mems != "" {
		have.Mems = cpu.Mems
	}
	if cpu.Quota != nil {
		have.Quota = cpu.Quota
	}
	if cpu.Period != nil {
		have.Period = cpu.Period
	}
	if cpu.Shares != nil {
		have.Shares = cpu.Shares
	}
}

func clone(c *api.Container) *api.Container {
	out := &api.Container{Id: c.Id, PodSandboxId: c.PodSandboxId, Name: c.Name, State: c.State,
		Annotations: map[string]string{}}
	for k, v := range c.Annotations {
		out.Annotations[k] = v
	}
	cpu := c.GetLinux().GetResources().GetCpu()
	out.Linux = &api.LinuxContainer{CgroupsPath: c.GetLinux().GetCgroupsPath(), Resources: &api.LinuxResources{Cpu: &api.LinuxCPU{
		Shares: cpu.GetShares(), Quota: cpu.GetQuota(), Period: cpu.GetPeriod(), Cpus: cpu.GetCpus(), Mems: cpu.GetMems()}}}
	return out
}
