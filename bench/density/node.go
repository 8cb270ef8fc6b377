package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/coreguard/coreguard/bench"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
)

// The topology coreguard is given: the generated shape sysfsgen calls
// TwoCPUsTwoCores (two single-thread cores, CPUs 0 and 1, which every
// machine this runs on has), CPU 0 reserved, so CPU 1 is the one core a
// Guaranteed 1-CPU pod is pinned to and the shared pool is 0-1 or 0.
const (
	reservedCPUs = "0"
	pinnedCPU    = 1
)

// fellBack is what coreguard logs when the runtime cannot take updates
// outside its requests and after-response is answered in-response.
const fellBack = "the shared pool is updated in the answers instead"

// node is one runtime with the plugin of the current cell and the shared
// containers started so far.
type node struct {
	rt      *harness.Runtime
	sysfs   string
	logPath string // coreguard's log.file
	logf    func(format string, args ...any)
	mode    string // the plugin connected now: modeNoop or a sharedPoolUpdates mode
	// effectiveMode is set when coreguard does not run mode as asked.
	effectiveMode string
	cg            *coreguard.Installed
	floor         stub.Stub
	switches      []time.Duration

	mu     sync.Mutex
	shared []*sharedContainer
	pods   []*harness.Pod
}

// sharedContainer is a running Burstable or BestEffort container and its
// cgroup's cpuset file.
type sharedContainer struct {
	c      *harness.Container
	cpuset string
}

// newNode starts the runtime with no plugin but the no-op floor.
func newNode(ctx context.Context, kind, sysfs string, logf func(string, ...any)) (*node, error) {
	// A runtime restored with hundreds of containers answers CRI later.
	rt, err := harness.Launch(harness.Options{Runtime: kind, OwnProcessGroup: true, StartTimeout: 2 * time.Minute}, logf)
	if err != nil {
		return nil, err
	}
	n := &node{rt: rt, sysfs: sysfs, logPath: filepath.Join(rt.Dir, "coreguard.log"), logf: logf}
	if err := n.startFloor(ctx); err != nil {
		return n, err
	}
	n.mode = modeNoop
	return n, nil
}

// use connects the plugin of mode: the no-op floor (an external NRI
// plugin, the same stub coreguard is built on) or coreguard pre-installed
// the way `make install` writes it, with sharedPoolUpdates set to mode in
// its configuration, as an admin edits it. A pre-installed plugin is
// started by the runtime, so every switch restarts the runtime (the
// containers keep running). It returns a note when coreguard did not take
// the mode (after-response on a runtime before NRI v0.12.1).
func (n *node) use(ctx context.Context, mode string) (effective string, err error) {
	if mode == n.mode {
		return n.effectiveMode, nil
	}
	t0 := time.Now()
	if n.floor != nil {
		n.floor.Stop()
		n.floor = nil
	}
	if mode == modeNoop {
		if n.cg != nil {
			if err := errors.Join(os.Remove(n.cg.Bin), os.Remove(n.cg.Conf)); err != nil {
				return "", err
			}
			n.cg = nil
		}
		if err := n.rt.Restart(); err != nil {
			return "", err
		}
		if err := n.startFloor(ctx); err != nil {
			return "", err
		}
		n.effectiveMode = ""
	} else {
		cfg := fmt.Sprintf("reservedSystemCPUs: %q\nsharedPoolUpdates: %s\nlog:\n  level: info\n", reservedCPUs, mode)
		if n.cg == nil {
			in, err := coreguard.Install(coreguard.InstallOptions{PluginDir: n.rt.PluginPath, ConfigDir: n.rt.PluginConfigPath,
				Config: cfg, SysfsRoot: n.sysfs, LogPath: n.logPath})
			if err != nil {
				return "", err
			}
			n.cg = in
		} else if err := n.cg.Edit(cfg); err != nil { // installed and running: the admin edits its configuration
			return "", err
		}
		in := n.cg
		offset := 0
		if fi, err := os.Stat(n.logPath); err == nil {
			offset = int(fi.Size())
		}
		before := in.Syncs()
		if err := n.rt.Restart(); err != nil {
			return "", err
		}
		if err := in.WaitSyncs(before+1, 60*time.Second); err != nil {
			return "", fmt.Errorf("%w\n%s", err, n.rt.LogTail(30))
		}
		n.mode = mode
		if n.effectiveMode, err = n.effective(offset); err != nil {
			return "", err
		}
	}
	n.mode = mode
	n.switches = append(n.switches, time.Since(t0))
	n.logf("%s: %s connected after %v (runtime restarted, %d shared containers running)",
		n.rt.Kind, mode, time.Since(t0).Round(time.Millisecond), len(n.shared))
	return n.effectiveMode, nil
}

// registered is what coreguard logs once connected, right before it says
// whether it falls back (fellBack).
const registered = "registered with the runtime"

// effective says how coreguard runs the mode asked for, from what it
// logged since offset (its log's size before this start): "" when as
// asked.
func (n *node) effective(offset int) (string, error) {
	if n.mode != modeAfterResponse {
		return "", nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(n.logPath)
		text := string(b[min(offset, len(b)):])
		if i := strings.Index(text, registered); i >= 0 {
			// The warning follows the line on the same goroutine: give
			// the log a moment to have it.
			time.Sleep(100 * time.Millisecond)
			b, _ = os.ReadFile(n.logPath)
			if strings.Contains(string(b[min(offset, len(b)):]), fellBack) {
				return modeInResponse, nil
			}
			return "", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("coreguard logged no %q after its start:\n%s", registered, n.cg.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// floorPlugin is bench's no-op plugin, which also says when it has
// synchronized.
type floorPlugin struct {
	bench.Noop
	once   sync.Once
	synced chan struct{}
}

func (f *floorPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	f.once.Do(func() { close(f.synced) })
	return nil, nil
}

// startFloor connects the no-op plugin, at coreguard's index, and waits
// for its Synchronize.
func (n *node) startFloor(ctx context.Context) error {
	f := &floorPlugin{synced: make(chan struct{})}
	st, err := stub.New(f, stub.WithPluginName("noop"), stub.WithPluginIdx("10"), stub.WithSocketPath(n.rt.NRISocket))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.Start(ctx); err != nil {
		return fmt.Errorf("no-op plugin: %w", err)
	}
	select {
	case <-f.synced:
	case <-ctx.Done():
		st.Stop()
		return fmt.Errorf("no-op plugin: no Synchronize: %w", ctx.Err())
	}
	// The runtime lists the plugin once it has the answer.
	time.Sleep(50 * time.Millisecond)
	n.floor = st
	return nil
}

// sharedSpecs alternate the shared pods' QoS: Burstable and BestEffort.
var sharedSpecs = []harness.Resources{
	{CPURequest: 250, CPULimit: 1000, MemLimit: 64 << 20},
	{},
}

// grow starts shared pods, perPod containers each (the last may have
// fewer), until want shared containers run, from workers goroutines as
// kubelet's pod workers do.
func (n *node) grow(ctx context.Context, want, perPod, workers int) error {
	n.mu.Lock()
	have := len(n.shared)
	first := len(n.pods)
	n.mu.Unlock()
	if have >= want {
		return nil
	}
	type job struct{ pod, ctrs int }
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for i := first; have < want; i++ {
			k := min(perPod, want-have)
			have += k
			select {
			case jobs <- job{i, k}:
			case <-ctx.Done():
				return
			}
		}
	}()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := n.startShared(ctx, j.pod, j.ctrs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ctx.Err())
}

func (n *node) startShared(ctx context.Context, i, ctrs int) error {
	res := sharedSpecs[i%len(sharedSpecs)]
	spec := make([]harness.Resources, ctrs)
	for k := range spec {
		spec[k] = res
	}
	pod, err := n.rt.RunPod(ctx, harness.PodOptions{Name: fmt.Sprintf("shared-%d", i), Containers: spec})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.pods = append(n.pods, pod)
	n.mu.Unlock()
	for k := range ctrs {
		c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: fmt.Sprint("c", k), Resources: res})
		if err != nil {
			return err
		}
		file, err := cpusetFile(ctx, c)
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.shared = append(n.shared, &sharedContainer{c: c, cpuset: file})
		n.mu.Unlock()
	}
	return nil
}

// cpusetFile is the file holding c's effective cpuset, from the cgroups
// path of its OCI spec.
func cpusetFile(ctx context.Context, c *harness.Container) (string, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Spec == nil || st.Spec.Linux == nil || st.Spec.Linux.CgroupsPath == "" {
		return "", fmt.Errorf("container %s: no cgroupsPath in its verbose status", c.Name)
	}
	dir, err := harness.CgroupDir("cpuset", st.Spec.Linux.CgroupsPath)
	if err != nil {
		return "", err
	}
	file := "cpuset.cpus"
	if mode, _ := harness.DetectCgroupMode(); mode == harness.CgroupV2 {
		file = "cpuset.cpus.effective"
	}
	path := filepath.Join(dir, file)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("container %s: %w", c.Name, err)
	}
	return path, nil
}

// sharedFiles lists the shared containers' cpuset files.
func (n *node) sharedFiles() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, len(n.shared))
	for i, s := range n.shared {
		out[i] = s.cpuset
	}
	return out
}

// close removes the shared pods (from workers goroutines: the harness's
// own teardown removes pods one by one under a short deadline), then tears
// the runtime down and says what, if anything, was left behind.
func (n *node) close(workers int) error {
	if n.floor != nil {
		n.floor.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pods := make(chan *harness.Pod)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range pods {
				if err := errors.Join(p.Stop(ctx), p.Remove(ctx)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range n.pods {
		pods <- p
	}
	close(pods)
	wg.Wait()
	errs = append(errs, n.rt.Close())
	if left := n.rt.Leftovers(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  ")))
	}
	return errors.Join(errs...)
}
