package pinning

import (
	"errors"
	"io/fs"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/internal/asynclog"
)

// With sharedPoolUpdates: cgroup-first, coreguard writes the shared pool
// into every shared container's cgroup (cpuset.cpus) itself, the moment
// the pool changes and before it answers the runtime: one file write per
// container (microseconds) instead of one `runc update` per container
// (tens of milliseconds each on the runtimes measured, bench/README.md).
// The runtime is sent no update for a pool change: its stored copy of a
// shared container's cpuset stays what the container was created with,
// and the next update that passes through coreguard (UpdateContainer)
// brings it to the pool. A write that fails for another reason than a
// missing cgroup falls back to the runtime's update (WriteFailures).
// Writes and pool changes happen under the pinner's lock, so the last
// write a cgroup gets is the current pool.

// Cgroups is what direct writes need of the cgroup tree (cgroups.Hierarchy).
type Cgroups interface {
	SetCPUs(cgroupsPath, cpus string) error
	CPUs(cgroupsPath string) (string, error)
}

// cpusNow is a container's cpuset as it runs: with direct writes its
// cgroup's, which the runtime's stored copy does not follow; else (or when
// unreadable) the runtime's. p.mu is held.
func (p *Pinner) cpusNow(c *api.Container) cpuset.CPUSet {
	if p.cg != nil {
		if list, err := p.cg.CPUs(c.GetLinux().GetCgroupsPath()); err == nil {
			if cpus, err := cpuset.Parse(list); err == nil && !cpus.IsEmpty() {
				return cpus
			}
		}
	}
	return cpusOf(c)
}

// DirectStats counts direct writes, for metrics.
type DirectStats interface {
	CgroupWrites(ok, failed int)
}

// SetDirect turns direct cgroup writes on (cg not nil) or off.
func (p *Pinner) SetDirect(cg Cgroups, stats DirectStats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cg, p.directStats = cg, stats
}

// track records where a container's cgroup is, for direct writes.
func (p *Pinner) track(id, cgroupsPath string) {
	if cgroupsPath != "" {
		p.cgroupOf[id] = cgroupsPath
	}
}

// writePool writes the shared pool as it is now into every shared
// container's cgroup. p.mu is held. A cgroup that is not there yet (the
// container is being created: it is sent the pool at its start) or any
// more is skipped; other failures are logged, and the runtime's update
// that follows brings the container to the pool.
func (p *Pinner) writePool() {
	if p.cg == nil || p.paused || len(p.shared) == 0 {
		return
	}
	list := p.alloc.Shared().String()
	ok, failed := 0, 0
	var firstErr error
	for id := range p.shared {
		path := p.cgroupOf[id]
		if path == "" {
			continue
		}
		switch err := p.cg.SetCPUs(path, list); {
		case err == nil:
			ok++
		case errors.Is(err, fs.ErrNotExist):
		default:
			failed++
			p.writeFailed = append(p.writeFailed, id)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if p.directStats != nil {
		p.directStats.CgroupWrites(ok, failed)
	}
	if failed > 0 {
		log := p.log
		asynclog.Go(func() {
			log.WithError(firstErr).WithFields(logrus.Fields{"failed": failed, "written": ok}).
				Warn("could not write the shared pool into some containers' cgroups: the runtime is sent updates for them")
		})
	}
}

// writeOne writes the shared pool into one shared container's cgroup (it
// started after the pool moved while it was being created). p.mu is held.
func (p *Pinner) writeOne(id string) {
	path := p.cgroupOf[id]
	if p.cg == nil || path == "" {
		return
	}
	err := p.cg.SetCPUs(path, p.alloc.Shared().String())
	failed := err != nil && !errors.Is(err, fs.ErrNotExist)
	if failed {
		p.writeFailed = append(p.writeFailed, id)
	}
	if p.directStats != nil {
		if err == nil {
			p.directStats.CgroupWrites(1, 0)
		} else if failed {
			p.directStats.CgroupWrites(0, 1)
		}
	}
}

// WriteFailures returns, and forgets, the containers whose cgroup could
// not be written since the last call: they need the runtime's update.
func (p *Pinner) WriteFailures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := p.writeFailed
	p.writeFailed = nil
	return ids
}

// WritePool writes the shared pool into every shared container's cgroup
// now (after a batch of runtime updates computed for an older pool).
func (p *Pinner) WritePool() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writePool()
}

// Direct reports whether direct cgroup writes are on.
func (p *Pinner) Direct() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cg != nil
}
