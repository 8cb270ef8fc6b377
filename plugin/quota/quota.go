// Package quota is coreguard's CFS quota duty: it lifts the CFS bandwidth
// limit where it only does harm — on kernels with the CFS throttling bug
// (cfsQuota: auto), everywhere (clear), and always for containers pinned to
// exclusive cores — at container level through NRI and at pod level by
// writing the pod's cgroup, which kubelet sets and NRI cannot touch. It
// also says which quotas it lifted or kept, and why (report.go).
package quota

import (
	"errors"
	"io/fs"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cgroups"
)

// Mode is the cfsQuota setting.
type Mode string

const (
	// Auto clears quotas when the running kernel is known to have the CFS
	// throttling bug. Default: on a fixed kernel a limit does what it says.
	Auto Mode = "auto"
	// Clear always clears them.
	Clear Mode = "clear"
	// Keep never does, except for pinned containers (below).
	Keep Mode = "keep"
)

// Cgroups is what the duty needs of the cgroup tree (cgroups.Hierarchy).
type Cgroups interface {
	ClearPodQuota(podCgroupParent string) error
	PodQuota(podCgroupParent string) (quota, period int64, err error)
}

// Stats counts pod-level writes, for metrics.
type Stats interface {
	PodQuotaError()
	// PodQuotaReasserted: kubelet wrote back a pod quota the duty had
	// lifted, and the duty lifted it again.
	PodQuotaReasserted()
}

// Duty holds which pods and containers run without quota.
type Duty struct {
	mode  Mode
	buggy bool // the running kernel has the CFS throttling bug
	cg    Cgroups
	log   logrus.FieldLogger
	stats Stats

	mu   sync.Mutex
	pods map[string]*podState       // by pod sandbox ID
	ctrs map[string]*containerState // by container ID
}

type podState struct {
	namespace, name, parent string
	clear                   bool   // the pod's cgroup runs without quota
	reason                  string // why it does (a Lifted reason), once clear
}

type containerState struct {
	pod, name string
	decision
}

// New makes the duty. cg may be nil when there is no cgroup tree to write
// (pod-level clearing is then off).
func New(mode Mode, kernelBuggy bool, cg Cgroups, log logrus.FieldLogger, stats Stats) *Duty {
	return &Duty{mode: mode, buggy: kernelBuggy, cg: cg, log: log, stats: stats,
		pods: map[string]*podState{}, ctrs: map[string]*containerState{}}
}

// clearsAll reports whether every container runs without quota.
func (d *Duty) clearsAll() bool {
	return d.mode == Clear || (d.mode == Auto && d.buggy)
}

// Create lifts a new container's quota in adj when it should run without
// one, and its pod's when any of the pod's containers does.
func (d *Duty) Create(pod *api.PodSandbox, ctr *api.Container, pinned bool, adj *api.ContainerAdjustment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dec := d.decide(pinned)
	d.track(pod, ctr, dec)
	if !dec.clear {
		return
	}
	adj.SetLinuxCPUQuota(cgroups.Unlimited)
	d.clearPod(pod.GetId())
}

// PodStarted clears a new pod's quota at once when every container runs
// without one, so the sandbox does not start under kubelet's pod quota.
func (d *Duty) PodStarted(pod *api.PodSandbox) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.clearsAll() {
		return
	}
	d.pods[pod.GetId()] = &podState{namespace: pod.GetNamespace(), name: pod.GetName(),
		parent: pod.GetLinux().GetCgroupParent(), clear: true, reason: d.decide(false).reason}
	d.clearPod(pod.GetId())
}

// Update keeps a cleared container's quota off when kubelet updates its
// resources (the update returned for the container overrides kubelet's),
// and clears its pod's again.
func (d *Duty) Update(pod *api.PodSandbox, ctr *api.Container) []*api.ContainerUpdate {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.ctrs[ctr.GetId()]
	if !ok || !c.clear {
		return nil
	}
	d.clearPod(pod.GetId())
	u := &api.ContainerUpdate{ContainerId: ctr.GetId()}
	u.SetLinuxCPUQuota(cgroups.Unlimited)
	return []*api.ContainerUpdate{u}
}

// PodUpdated clears a pod's quota again after kubelet changed the pod's
// resources (in-place resize writes the pod cgroup).
func (d *Duty) PodUpdated(pod *api.PodSandbox) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearPod(pod.GetId())
}

// Forget drops a stopped or removed container.
func (d *Duty) Forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ctrs, id)
}

// ForgetPod drops a removed pod.
func (d *Duty) ForgetPod(pod *api.PodSandbox) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pods, pod.GetId())
}

// Sync rebuilds the state from the runtime's containers; pinned says which
// are pinned now. It returns the updates that lift the quota of containers
// that should run without one but still have it.
func (d *Duty) Sync(pods []*api.PodSandbox, ctrs []*api.Container, pinned func(id string) bool) []*api.ContainerUpdate {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pods, d.ctrs = map[string]*podState{}, map[string]*containerState{}
	podOf := map[string]*api.PodSandbox{}
	for _, p := range pods {
		podOf[p.GetId()] = p
	}
	var updates []*api.ContainerUpdate
	for _, c := range ctrs {
		pod := podOf[c.GetPodSandboxId()]
		if pod == nil || c.GetState() == api.ContainerState_CONTAINER_STOPPED {
			continue
		}
		dec := d.decide(pinned(c.GetId()))
		d.track(pod, c, dec)
		if !dec.clear {
			continue
		}
		if q := c.GetLinux().GetResources().GetCpu().GetQuota(); q != nil && q.GetValue() > 0 {
			u := &api.ContainerUpdate{ContainerId: c.GetId(), IgnoreFailure: true}
			u.SetLinuxCPUQuota(cgroups.Unlimited)
			updates = append(updates, u)
		}
	}
	for id := range d.pods {
		d.clearPod(id)
	}
	return updates
}

// Reassert clears again every pod quota that should be off but is not:
// kubelet rewrites pod cgroups on its own schedule. It returns how many it
// had to clear.
func (d *Duty) Reassert() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cg == nil {
		return 0
	}
	n := 0
	for id, p := range d.pods {
		if !p.clear {
			continue
		}
		if q, _, err := d.cg.PodQuota(p.parent); err == nil && q != cgroups.Unlimited {
			d.log.WithFields(logrus.Fields{"pod": p.namespace + "/" + p.name, "quota": q}).
				Info("pod CFS quota came back: clearing it again")
			d.clearPod(id)
			if d.stats != nil {
				d.stats.PodQuotaReasserted()
			}
			n++
		}
	}
	return n
}

// track records a container and its pod; the pod runs without quota as
// soon as one of its containers does, for that container's reason.
func (d *Duty) track(pod *api.PodSandbox, ctr *api.Container, dec decision) {
	p, ok := d.pods[pod.GetId()]
	if !ok {
		p = &podState{namespace: pod.GetNamespace(), name: pod.GetName(), parent: pod.GetLinux().GetCgroupParent()}
		d.pods[pod.GetId()] = p
	}
	if dec.clear && !p.clear {
		p.clear, p.reason = true, dec.reason
	}
	d.ctrs[ctr.GetId()] = &containerState{pod: pod.GetId(), name: ctr.GetName(), decision: dec}
}

// clearPod writes the pod's cgroup when it should run without quota. A
// failure is logged and counted, never fatal: the container itself runs.
func (d *Duty) clearPod(id string) {
	p, ok := d.pods[id]
	if !ok || !p.clear || d.cg == nil || p.parent == "" {
		return
	}
	err := d.cg.ClearPodQuota(p.parent)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		// kubelet has not made the pod cgroup (a direct CRI call) or it is
		// gone: nothing limits the pod.
	default:
		if d.stats != nil {
			d.stats.PodQuotaError()
		}
		d.log.WithError(err).WithField("pod", p.namespace+"/"+p.name).Warn("cannot clear the pod's CFS quota")
	}
}
