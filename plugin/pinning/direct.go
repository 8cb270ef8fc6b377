package pinning

import (
	"errors"
	"io/fs"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cpuset"
)

// With sharedPoolUpdates: cgroup-first, coreguard writes the shared pool
// into every shared container's cgroup (cpuset.cpus) itself, the moment
// the pool changes: one file write per container (about 0.1 ms on cgroup
// v1, where each write rebuilds the scheduler domains) instead of one
// `runc update` per container (tens of milliseconds each on the runtimes
// measured, bench/README.md). The writes run beside the runtime's own work
// on the new container, after the answer (scheduleWrite), and the
// container's start waits for them (WaitWritten, from NRI's
// StartContainer): no process of a pinned container runs while a shared
// container's cgroup still holds its cores.
//
// The runtime is sent no update for a pool change: its stored copy of a
// shared container's cpuset stays what the container was created with,
// and the next update that passes through coreguard (UpdateContainer)
// brings it to the pool. A write that fails for another reason than a
// missing cgroup falls back to the runtime's update (WriteFailures).
//
// One writer at a time, reading the pool when it starts a pass and passing
// again while the pool moved on, so the last write a cgroup gets is the
// current pool.

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

// scheduleWrite has the shared pool written into the shared containers'
// cgroups as soon as possible, off the caller's path. p.mu is held.
func (p *Pinner) scheduleWrite() {
	if p.cg == nil || p.paused || len(p.shared) == 0 {
		p.written = p.gen // nothing to write for this generation
		p.progressed()
		return
	}
	if !p.writing {
		p.writing = true
		go p.writeLoop()
	}
}

// writeLoop writes passes until the cgroups hold the current generation's
// pool. The writes happen outside p.mu: a container forgotten meanwhile
// gets a harmless write (or none, its cgroup gone); one created meanwhile
// was answered with the new pool.
func (p *Pinner) writeLoop() {
	for {
		p.mu.Lock()
		if p.written >= p.gen || p.cg == nil || p.paused {
			p.written = max(p.written, p.gen)
			p.writing = false
			p.progressed()
			p.mu.Unlock()
			return
		}
		gen, cg, list := p.gen, p.cg, p.alloc.Shared().String()
		targets := make(map[string]string, len(p.shared))
		for id := range p.shared {
			if path := p.cgroupOf[id]; path != "" {
				targets[id] = path
			}
		}
		p.mu.Unlock()

		ok, failed, firstErr := writeAll(cg, targets, list)

		p.mu.Lock()
		p.writeFailed = append(p.writeFailed, failed...)
		p.written = max(p.written, gen)
		p.progressed()
		stats, log := p.directStats, p.log
		p.mu.Unlock()
		reportWrites(stats, log, ok, failed, firstErr)
	}
}

// progressed wakes whoever waits for writes. p.mu is held.
func (p *Pinner) progressed() {
	close(p.progress)
	p.progress = make(chan struct{})
}

// WaitWritten waits, at most timeout, until every pool change made so far
// is written into the shared containers' cgroups; false on timeout.
func (p *Pinner) WaitWritten(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	p.mu.Lock()
	target := p.gen
	// Not writing: nothing is pending (a generation moved without a pool
	// to write, or the pool was written synchronously).
	for p.cg != nil && p.written < target && p.writing {
		ch := p.progress
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return true
}

func writeAll(cg Cgroups, targets map[string]string, list string) (ok int, failed []string, firstErr error) {
	for id, path := range targets {
		switch err := cg.SetCPUs(path, list); {
		case err == nil:
			ok++
		case errors.Is(err, fs.ErrNotExist):
		default:
			failed = append(failed, id)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return ok, failed, firstErr
}

func reportWrites(stats DirectStats, log logrus.FieldLogger, ok int, failed []string, firstErr error) {
	if stats != nil {
		stats.CgroupWrites(ok, len(failed))
	}
	if len(failed) > 0 {
		log.WithError(firstErr).WithFields(logrus.Fields{"failed": len(failed), "written": ok}).
			Warn("could not write the shared pool into some containers' cgroups: the runtime is sent updates for them")
	}
}

// WritePool has the shared pool written into every shared container's
// cgroup again (after a batch of runtime updates computed for an older
// pool). A new generation makes a running writer pass again.
func (p *Pinner) WritePool() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cg != nil {
		p.gen++
		p.scheduleWrite()
	}
}

// Direct reports whether direct cgroup writes are on.
func (p *Pinner) Direct() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cg != nil
}
