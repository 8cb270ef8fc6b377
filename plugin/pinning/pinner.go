package pinning

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/internal/asynclog"
	"github.com/coreguard/coreguard/topology"
)

// Pinner holds the pinning state of one node: the allocator and the
// containers running in the shared pool. Its methods are what the NRI
// handlers call; they return the adjustments and updates to send.
type Pinner struct {
	mu     sync.Mutex
	topo   *topology.Topology
	cfg    *config.Config
	log    logrus.FieldLogger
	stats  Stats
	alloc  *alloc.Allocator
	shared map[string]bool // containers in the shared pool
	gen    uint64          // bumped whenever the shared pool changes
	// pending are containers answered but not started yet (start.go).
	pending map[string]pendingStart
	// cgroupOf is each tracked container's cgroupsPath, and cg, when set,
	// writes the shared pool into them directly (direct.go).
	cgroupOf    map[string]string
	cg          Cgroups
	directStats DirectStats
	writeFailed []string // containers whose cgroup write failed (direct.go)
	// written is the last pool generation written into the cgroups;
	// writing says a writer runs; progress is closed when either moves.
	written  uint64
	writing  bool
	progress chan struct{}
	// paused: another party (kubelet's static CPU manager) owns cpusets.
	// Containers are still tracked, all as shared, and no cpuset is
	// touched; resuming starts from everyone in the shared pool.
	paused bool
}

// Why an exclusive CPU request failed, as Stats.AllocationFailed names it.
const (
	FailExhausted       = "exhausted"         // too few whole cores free
	FailOddRequest      = "odd-request"       // oddCPUs: reject refused an odd request
	FailSharedPoolEmpty = "shared-pool-empty" // it would leave shared containers no CPU
	FailOther           = "other"             // anything else the allocator refused
)

// FailureReasons lists every reason, for metrics and docs.
var FailureReasons = []string{FailExhausted, FailOddRequest, FailSharedPoolEmpty, FailOther}

// Stats counts what the pinner did, for metrics.
type Stats interface {
	AllocationFailed(reason string)
	SharedFallback()
}

type noStats struct{}

func (noStats) AllocationFailed(string) {}
func (noStats) SharedFallback()         {}

// New makes a pinner for a topology and configuration; it fails when the
// configuration does not fit the machine (e.g. reserved CPUs offline).
func New(topo *topology.Topology, cfg *config.Config, log logrus.FieldLogger, stats Stats) (*Pinner, error) {
	if stats == nil {
		stats = noStats{}
	}
	p := &Pinner{topo: topo, cfg: cfg, log: log, stats: stats, cgroupOf: map[string]string{}, progress: make(chan struct{})}
	if err := p.reset(); err != nil {
		return nil, err
	}
	for _, w := range p.alloc.Warnings() {
		log.Warn(w)
	}
	return p, nil
}

func (p *Pinner) reset() error {
	a, err := alloc.New(p.topo, p.cfg.AllocOptions())
	if err != nil {
		return err
	}
	p.alloc, p.shared, p.pending = a, map[string]bool{}, map[string]pendingStart{}
	return nil
}

// Snapshot is the pinning state, for metrics and logs.
type Snapshot struct {
	Exclusive, Withheld, Shared, Reserved cpuset.CPUSet
	Allocations                           []alloc.Allocation
	SharedContainers                      int
	Unstarted                             int // answered, not started yet
}

// Snapshot returns the current state.
func (p *Pinner) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Snapshot{
		Exclusive: p.alloc.Exclusive(), Withheld: p.alloc.Withheld(), Shared: p.alloc.Shared(),
		Reserved: p.alloc.Reserved(), Allocations: p.alloc.Allocations(), SharedContainers: len(p.shared),
		Unstarted: len(p.pending),
	}
}

// Pinned reports whether a container holds exclusive CPUs.
func (p *Pinner) Pinned(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.alloc.Get(id)
	return ok
}

// SetPaused stops (true) or resumes (false) pinning and reports whether
// that changed anything. Pausing gives up every allocation: the containers
// holding them count as shared, since their cpusets now belong to kubelet.
// After resuming, the caller sends the shared pool (Refresh) to every
// container.
func (p *Pinner) SetPaused(paused bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == paused {
		return false
	}
	p.paused = paused
	if paused {
		held := p.alloc.Allocations()
		shared, pending := p.shared, p.pending
		if err := p.reset(); err != nil {
			// The same topology and configuration built it before.
			p.log.WithError(err).Error("cannot rebuild the allocator")
		}
		p.shared, p.pending = shared, pending
		for _, al := range held {
			p.shared[al.Owner] = true
		}
	}
	p.gen++
	return true
}

// Paused reports whether pinning is paused (see SetPaused).
func (p *Pinner) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Topology returns the machine the pinner hands out.
func (p *Pinner) Topology() *topology.Topology { return p.topo }

// Create decides a new container's CPUs. It sets the container's cpuset in
// adj and returns updates that move every shared container to the new
// shared pool when it changed. An error fails the container's creation.
func (p *Pinner) Create(pod *api.PodSandbox, ctr *api.Container, adj *api.ContainerAdjustment) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.track(ctr.GetId(), ctr.GetLinux().GetCgroupsPath())
	if p.paused {
		p.shared[ctr.GetId()] = true
		p.answered(ctr.GetId())
		return nil, nil
	}
	d, err := Decide(p.cfg, pod, ctr)
	if err != nil {
		delete(p.cgroupOf, ctr.GetId())
	}
	if err != nil {
		return nil, err
	}
	// log returns the container's entry with more fields: one entry,
	// built only when something is logged.
	log := func(f logrus.Fields) *logrus.Entry {
		f["container"] = name(pod, ctr)
		return p.log.WithFields(f)
	}
	if d.CPUs > 0 {
		before := p.alloc.Shared()
		al, err := p.allocate(ctr.GetId(), d.CPUs)
		switch {
		case err == nil:
			cpus, withheld := al.CPUs.String(), al.Withheld.String()
			adj.SetLinuxCPUSetCPUs(cpus)
			adj.AddAnnotation(AnnotationCPUs, cpus)
			if withheld != "" {
				adj.AddAnnotation(AnnotationWithheld, withheld)
			}
			n := d.CPUs
			asynclog.Go(func() {
				log(logrus.Fields{"cpus": cpus, "withheld": withheld, "request": n}).Info("pinned to exclusive whole cores")
			})
			updates := p.sharedUpdates(before, "")
			p.answered(ctr.GetId())
			return updates, nil
		case isExhausted(err) && p.cfg.OnExhaustion == config.ExhaustionShared:
			p.stats.AllocationFailed(reason(err))
			p.stats.SharedFallback()
			log(logrus.Fields{}).WithError(err).Warn("no exclusive CPUs (onExhaustion: shared): running in the shared pool")
		default:
			p.stats.AllocationFailed(reason(err))
			delete(p.cgroupOf, ctr.GetId())
			return nil, fmt.Errorf("%s: %d exclusive CPUs: %w", name(pod, ctr), d.CPUs, err)
		}
	} else {
		log(logrus.Fields{"why": d.Reason}).Debug("shared pool")
	}
	shared := p.alloc.Shared()
	if shared.IsEmpty() {
		p.stats.AllocationFailed(FailSharedPoolEmpty)
		delete(p.cgroupOf, ctr.GetId())
		return nil, fmt.Errorf("%s: no CPU is left for containers without exclusive CPUs: every online CPU (%s) is held exclusively (%s); "+
			"set reservedSystemCPUs to keep CPUs for them", name(pod, ctr), p.topo.Online, d.Reason)
	}
	p.shared[ctr.GetId()] = true
	p.answered(ctr.GetId())
	adj.SetLinuxCPUSetCPUs(shared.String())
	return nil, nil
}

// Stop releases a stopped container's CPUs and returns the updates that
// grow the shared pool back.
func (p *Pinner) Stop(ctr *api.Container) []*api.ContainerUpdate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forget(ctr.GetId())
}

// allocate gives owner n exclusive CPUs, keeping the shared pool from
// emptying while a shared container runs. With nobody in the shared pool it
// may empty (a one-core node without reserved CPUs running one pinned
// container); a shared container arriving then is refused (Create).
func (p *Pinner) allocate(owner string, n int) (alloc.Allocation, error) {
	if len(p.shared) == 0 {
		return p.alloc.AllocateMayEmptyShared(owner, n)
	}
	return p.alloc.Allocate(owner, n)
}

func (p *Pinner) forget(id string) []*api.ContainerUpdate {
	delete(p.shared, id)
	delete(p.cgroupOf, id)
	delete(p.pending, id)
	before := p.alloc.Shared()
	al, err := p.alloc.Release(id)
	if err != nil {
		return nil // not pinned: nothing to give back
	}
	asynclog.Go(func() {
		p.log.WithFields(logrus.Fields{"container": id, "cpus": al.CPUs.String()}).Info("released exclusive cores")
	})
	return p.sharedUpdates(before, "")
}

// Update answers kubelet's UpdateContainerResources (and in-place resize).
// A pinned container keeps its cores; a resize to another whole number of
// CPUs re-allocates, and one that cannot be met is refused, leaving the
// container as it was. Shared containers stay on the shared pool.
func (p *Pinner) Update(pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := ctr.GetId()
	held, pinned := p.alloc.Get(id)
	if p.paused {
		return nil, nil
	}
	if !pinned {
		if !p.shared[id] {
			return nil, nil // unknown to us (created before a resync): leave it
		}
		return []*api.ContainerUpdate{cpusetUpdate(id, p.alloc.Shared())}, nil
	}
	want := held.Request
	if shares := res.GetCpu().GetShares().GetValue(); shares != 0 {
		if shares%sharesPerCPU != 0 {
			return nil, fmt.Errorf("%s: resize to cpu.shares %d refused: a container with exclusive CPUs %s needs a whole number of CPUs",
				name(pod, ctr), shares, held.CPUs)
		}
		want = int(shares / sharesPerCPU)
	}
	if want == held.Request {
		return []*api.ContainerUpdate{cpusetUpdate(id, held.CPUs)}, nil
	}
	before := p.alloc.Shared()
	if _, err := p.alloc.Release(id); err != nil {
		return nil, err
	}
	al, err := p.alloc.Allocate(id, want)
	if err != nil {
		// Put the old cores back: they were free a moment ago.
		if _, terr := p.alloc.Take(id, held.CPUs); terr != nil {
			p.log.WithError(terr).Error("could not restore cores after a refused resize")
		}
		p.stats.AllocationFailed(reason(err))
		return nil, fmt.Errorf("%s: resize from %d to %d exclusive CPUs refused (keeps %s): %w",
			name(pod, ctr), held.Request, want, held.CPUs, err)
	}
	p.log.WithFields(logrus.Fields{"container": name(pod, ctr), "from": held.CPUs.String(), "to": al.CPUs.String()}).Info("resized exclusive cores")
	return append(p.sharedUpdates(before, ""), cpusetUpdate(id, al.CPUs)), nil
}

// Sync rebuilds the state from the runtime's containers after (re)connecting,
// with the rules of live creation. A container that qualifies keeps the
// whole cores it runs on (its cpuset is the truth: the annotation coreguard
// left at creation cannot follow a resize) when it runs there alone — a
// container that fell back to the shared pool (onExhaustion: shared) shares
// its CPUs with the shared containers and is not taken for pinned; failing
// that it gets the cores its annotation records, failing that new ones, or
// it stays in the shared pool. Containers are taken in container-ID order,
// so when two claim the same core the lower ID keeps it, deterministically.
// As at creation, nothing may empty the shared pool while a shared
// container runs; were it empty (a state no creation leads to), the
// highest-ID pinned containers join the shared pool until it is not.
func (p *Pinner) Sync(pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.reset(); err != nil {
		return nil, err
	}
	p.cgroupOf = map[string]string{}
	for _, c := range ctrs {
		if c.GetState() != api.ContainerState_CONTAINER_STOPPED {
			p.track(c.GetId(), c.GetLinux().GetCgroupsPath())
		}
	}
	podOf := map[string]*api.PodSandbox{}
	for _, pod := range pods {
		podOf[pod.GetId()] = pod
	}
	live := slices.DeleteFunc(slices.Clone(ctrs), func(c *api.Container) bool {
		return c.GetState() == api.ContainerState_CONTAINER_STOPPED
	})
	if p.paused {
		for _, c := range live {
			p.shared[c.GetId()] = true
			if c.GetState() == api.ContainerState_CONTAINER_CREATED {
				p.answered(c.GetId())
			}
		}
		p.log.WithField("containers", len(live)).Info("synchronized with the runtime (pinning paused: cpusets left as they are)")
		return nil, nil
	}
	slices.SortFunc(live, func(a, b *api.Container) int { return strings.Compare(a.GetId(), b.GetId()) })

	// Which containers qualify, as at creation; the rest are shared, and
	// the CPUs they run on are not anyone's exclusive cores.
	want := map[string]int{}
	var qualified []*api.Container
	var sharedOn cpuset.CPUSet
	for _, c := range live {
		d, err := Decide(p.cfg, podOf[c.GetPodSandboxId()], c)
		if err != nil || d.CPUs == 0 {
			p.shared[c.GetId()] = true
			on := p.cpusNow(c)
			if on.IsEmpty() {
				on = p.topo.Online // no cpuset: every CPU
			}
			sharedOn = sharedOn.Union(on)
			continue
		}
		want[c.GetId()] = d.CPUs
		qualified = append(qualified, c)
	}
	var toPin []*api.Container
	for _, c := range qualified {
		if current := p.cpusNow(c); current.Intersects(sharedOn) || !p.takeIfFits(c.GetId(), current, want[c.GetId()]) {
			toPin = append(toPin, c)
		}
	}
	var updates []*api.ContainerUpdate
	for _, c := range toPin {
		pod := podOf[c.GetPodSandboxId()]
		recorded, _ := cpuset.Parse(c.GetAnnotations()[AnnotationCPUs])
		if p.takeIfFits(c.GetId(), recorded, want[c.GetId()]) {
			updates = append(updates, cpusetUpdate(c.GetId(), recorded))
			continue
		}
		al, err := p.allocate(c.GetId(), want[c.GetId()])
		if err != nil {
			p.stats.AllocationFailed(reason(err))
			p.log.WithError(err).WithField("container", name(pod, c)).Warn("cannot pin a running container: left in the shared pool")
			p.shared[c.GetId()] = true
			continue
		}
		p.log.WithFields(logrus.Fields{"container": name(pod, c), "cpus": al.CPUs.String()}).Info("pinned a running container")
		updates = append(updates, cpusetUpdate(c.GetId(), al.CPUs))
	}
	updates = p.keepSharedPool(updates)
	for _, c := range live {
		if c.GetState() == api.ContainerState_CONTAINER_CREATED {
			p.answered(c.GetId()) // created, never started: provisional again (start.go)
		}
	}
	shared := p.alloc.Shared().String() // once: the same list for every shared container
	if p.cg != nil {
		// cgroup-first: the cgroups, not the runtime's copies. A new
		// generation, so a writer still passing with the state before the
		// resync passes again.
		p.gen++
		p.scheduleWrite()
	} else {
		for _, c := range live {
			if p.shared[c.GetId()] && c.GetLinux().GetResources().GetCpu().GetCpus() != shared {
				updates = append(updates, cpusetListUpdate(c.GetId(), shared))
			}
		}
	}
	p.log.WithFields(logrus.Fields{"pinned": len(p.alloc.Allocations()), "shared": len(p.shared), "sharedPool": shared}).
		Info("synchronized with the runtime")
	return updates, nil
}

// keepSharedPool releases the highest-ID allocations, whose containers
// join the shared pool, while the pool is empty and a shared container
// runs; updates for released containers are dropped (they get the pool).
func (p *Pinner) keepSharedPool(updates []*api.ContainerUpdate) []*api.ContainerUpdate {
	for len(p.shared) > 0 && p.alloc.Shared().IsEmpty() {
		held := p.alloc.Allocations()
		if len(held) == 0 {
			return updates
		}
		last := slices.MaxFunc(held, func(a, b alloc.Allocation) int { return strings.Compare(a.Owner, b.Owner) })
		_, _ = p.alloc.Release(last.Owner)
		p.shared[last.Owner] = true
		p.log.WithField("container", last.Owner).Warn("shared pool would be empty with shared containers running: container moved to the shared pool")
		updates = slices.DeleteFunc(updates, func(u *api.ContainerUpdate) bool { return u.GetContainerId() == last.Owner })
	}
	return updates
}

// cpusOf is a container's cpuset as the runtime reports it (empty when
// unset or unreadable).
func cpusOf(c *api.Container) cpuset.CPUSet {
	s, _ := cpuset.Parse(c.GetLinux().GetResources().GetCpu().GetCpus())
	return s
}

// takeIfFits gives a container the given CPUs when they lie on free whole
// cores holding its n CPUs with less than a core to spare (and, outside
// oddCPUs: isolate, with no sibling left over).
func (p *Pinner) takeIfFits(id string, cpus cpuset.CPUSet, n int) bool {
	if cpus.IsEmpty() {
		return false
	}
	al, err := p.alloc.Take(id, cpus)
	if err != nil {
		return false
	}
	size := al.Cores().Size()
	if size < n || size >= n+p.topo.ThreadsPerCore() || (!al.Withheld.IsEmpty() && p.cfg.OddCPUs != alloc.Isolate) {
		_, _ = p.alloc.Release(id)
		return false
	}
	return true
}

// sharedUpdates returns the updates moving every shared container (except
// skip) to the shared pool, when the pool differs from before; with direct
// cgroup writes it writes the pool into their cgroups instead.
func (p *Pinner) sharedUpdates(before cpuset.CPUSet, skip string) []*api.ContainerUpdate {
	if len(p.shared) == 0 {
		return nil // nobody to move
	}
	now := p.alloc.Shared()
	if now.Equals(before) {
		return nil
	}
	p.gen++
	if p.cg != nil {
		p.scheduleWrite() // cgroup-first: written, the runtime is sent nothing
		return nil
	}
	return p.poolUpdates(now, skip)
}

// Refresh returns updates moving every shared container to the shared
// pool as it is now, and the pool's generation: a caller sending them
// outside a runtime request sends again while the generation moved on, so
// the last update a container gets is the current pool.
func (p *Pinner) Refresh() ([]*api.ContainerUpdate, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.shared) == 0 || p.paused {
		return nil, p.gen
	}
	return p.poolUpdates(p.alloc.Shared(), ""), p.gen
}

// Generation is the shared pool's generation (see Refresh).
func (p *Pinner) Generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// poolUpdates makes one update per shared container (but skip) to pool now.
func (p *Pinner) poolUpdates(now cpuset.CPUSet, skip string) []*api.ContainerUpdate {
	ids := make([]string, 0, len(p.shared))
	for id := range p.shared {
		if id != skip {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	// Every shared container gets the same list: format it once, not once
	// per container (with hundreds of shared containers, formatting it
	// per update was most of coreguard's own time in a pinning creation).
	list := now.String()
	// And allocate the updates' messages in one block per type rather
	// than four small objects per container: less work for the allocator
	// and the garbage collector, whose pauses show in the 99th percentile.
	n := len(ids)
	us, lin, res, cpu := make([]api.ContainerUpdate, n), make([]api.LinuxContainerUpdate, n),
		make([]api.LinuxResources, n), make([]api.LinuxCPU, n)
	out := make([]*api.ContainerUpdate, n)
	for i, id := range ids {
		cpu[i].Cpus = list
		res[i].Cpu = &cpu[i]
		lin[i].Resources = &res[i]
		us[i].ContainerId, us[i].Linux = id, &lin[i]
		// A container that is being torn down must not fail the whole batch.
		us[i].IgnoreFailure = true
		out[i] = &us[i]
	}
	return out
}

func cpusetUpdate(id string, cpus cpuset.CPUSet) *api.ContainerUpdate {
	return cpusetListUpdate(id, cpus.String())
}

// cpusetListUpdate is cpusetUpdate with the cpuset already in list format.
func cpusetListUpdate(id, list string) *api.ContainerUpdate {
	u := &api.ContainerUpdate{}
	u.SetContainerId(id)
	u.SetLinuxCPUSetCPUs(list)
	// A container that is being torn down must not fail the whole batch.
	u.IgnoreFailure = true
	return u
}

// name says which container, for messages people read in kubectl describe.
func name(pod *api.PodSandbox, ctr *api.Container) string {
	return fmt.Sprintf("container %q in pod %s/%s", ctr.GetName(), pod.GetNamespace(), pod.GetName())
}

func isExhausted(err error) bool {
	var ex *alloc.ExhaustedError
	return errors.As(err, &ex)
}

// reason labels an allocation failure for metrics.
func reason(err error) string {
	var ex *alloc.ExhaustedError
	var odd *alloc.OddRequestError
	switch {
	case errors.As(err, &ex) && ex.Reason != "":
		return FailSharedPoolEmpty
	case errors.As(err, &ex):
		return FailExhausted
	case errors.As(err, &odd):
		return FailOddRequest
	}
	return FailOther
}
