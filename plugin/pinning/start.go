package pinning

import (
	"slices"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cpuset"
)

// What coreguard gives a container at creation is provisional until the
// container starts. Runtimes tell plugins nothing when a creation fails
// after their answer (CRI-O when runc cannot create it or a later plugin
// refuses it; containerd when runc create fails inside StartContainer), so
// a container that does not start within the configuration's startTimeout
// gives its exclusive cores and its place in the shared pool back (Expire).
// One that starts later is placed again as creation would place it (adopt).
//
// Starting also closes a window of the shared pool: a container being
// created when the pool moves may miss the update (it is not in the
// runtime's list yet, or its cgroup is made from the spec before the update
// reached it), so at its start it is sent the pool again if it moved.

// pendingStart is a container answered but not started yet.
type pendingStart struct {
	deadline time.Time
	gen      uint64 // the shared pool's generation when it was answered
}

// answered records that a container was answered (or found created but
// not started) and must start before its deadline.
func (p *Pinner) answered(id string) {
	p.pending[id] = pendingStart{deadline: time.Now().Add(p.cfg.StartTimeoutDuration()), gen: p.gen}
}

// Started confirms a container that started. resend says the container
// must be brought to what coreguard holds for it now (UpdatesFor): a shared
// container whose pool moved while it was being created, or one that
// started after its start timeout. poolChanged says the shared pool changed
// (a late container took cores back): every shared container needs it.
func (p *Pinner) Started(pod *api.PodSandbox, ctr *api.Container) (resend, poolChanged bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := ctr.GetId()
	if pend, ok := p.pending[id]; ok {
		delete(p.pending, id)
		resend = p.shared[id] && !p.paused && pend.gen != p.gen
		if resend {
			p.writeOne(id) // its cgroup exists now
		}
		return resend, false
	}
	if _, pinned := p.alloc.Get(id); pinned || p.shared[id] {
		return false, false // started before (a restart's Synchronize saw it running)
	}
	before := p.alloc.Shared()
	p.track(id, ctr.GetLinux().GetCgroupsPath())
	p.adopt(pod, ctr)
	poolChanged = !p.alloc.Shared().Equals(before)
	if poolChanged {
		p.scheduleWrite()
	}
	return !p.paused, poolChanged
}

// adopt places a container coreguard no longer held (it started after its
// start timeout) as creation would: on its own cores when they are still
// free, else on new ones, else in the shared pool. The caller sends it
// what it holds now.
func (p *Pinner) adopt(pod *api.PodSandbox, ctr *api.Container) {
	id := ctr.GetId()
	log := p.log.WithField("container", name(pod, ctr))
	if p.paused {
		p.shared[id] = true
		return
	}
	d, err := Decide(p.cfg, pod, ctr)
	if err == nil && d.CPUs > 0 {
		if p.takeIfFits(id, p.cpusNow(ctr), d.CPUs) && !p.poolEmptied() {
			log.Warn("started after startTimeout: its exclusive cores were still free and are its again")
			p.gen++
			return
		}
		_, _ = p.alloc.Release(id)
		al, err := p.allocate(id, d.CPUs)
		if err == nil {
			log.WithField("cpus", al.CPUs.String()).Warn("started after startTimeout: its cores were given out; pinned to other whole cores")
			p.gen++
			return
		}
		p.stats.AllocationFailed(reason(err))
		log.WithError(err).Warn("started after startTimeout: no whole cores free for it; it runs in the shared pool")
	}
	p.shared[id] = true
}

// poolEmptied reports a shared pool emptied under shared containers.
func (p *Pinner) poolEmptied() bool {
	return len(p.shared) > 0 && p.alloc.Shared().IsEmpty()
}

// Expire gives back what the containers that did not start by their
// deadline hold, and returns their IDs and whether the shared pool grew.
func (p *Pinner) Expire() (ids []string, poolChanged bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	before := p.alloc.Shared()
	for id, pend := range p.pending {
		if now.Before(pend.deadline) {
			continue
		}
		ids = append(ids, id)
		delete(p.pending, id)
		delete(p.shared, id)
		delete(p.cgroupOf, id)
		if al, err := p.alloc.Release(id); err == nil {
			p.log.WithFields(logrus.Fields{"container": id, "cpus": al.CPUs.String()}).
				Warn("container did not start within startTimeout: its exclusive cores are given back")
		}
	}
	slices.Sort(ids)
	if poolChanged = !p.alloc.Shared().Equals(before); poolChanged {
		p.gen++
		p.scheduleWrite()
	}
	return ids, poolChanged
}

// UpdatesFor returns, for each container coreguard still holds, the update
// that brings it to what coreguard holds for it: its exclusive CPUs, or
// the shared pool as it is now. They are sent outside any runtime request,
// where a failure is reported (IgnoreFailure false) and retried.
func (p *Pinner) UpdatesFor(ids []string) []*api.ContainerUpdate {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return nil
	}
	var out []*api.ContainerUpdate
	for _, id := range ids {
		var cpus cpuset.CPUSet
		if al, ok := p.alloc.Get(id); ok {
			cpus = al.CPUs
		} else if p.shared[id] {
			cpus = p.alloc.Shared()
		} else {
			continue
		}
		u := cpusetUpdate(id, cpus)
		u.IgnoreFailure = false
		out = append(out, u)
	}
	return out
}
