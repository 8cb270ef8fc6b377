package plugin

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/containerd/nri/pkg/version"
)

// Updates outside any runtime request: the shared pool after a
// RemoveContainer (which cannot carry updates), with sharedPoolUpdates:
// after-response, after start timeouts gave cores back, and single
// containers a post-event found off what coreguard holds for them. They
// are sent with IgnoreFailure false, so the runtime reports the ones it
// could not apply, which are sent again (a few times, backing off) while
// coreguard still holds the container.
//
// Runtimes whose NRI predates v0.12.1 (CRI-O 1.34 among them) deadlock on
// an update a plugin sends while another NRI call is under way: the runtime
// side held its lock across the runtime's update callback, which takes the
// runtime's own NRI lock, taken before that one on every other call (fixed
// by NRI commit 55afaa2). There the outbox is emptied into the answer to
// the next runtime request that can carry updates (withOwed) instead.

// unsolicitedSince is the first NRI version whose runtime side takes
// updates outside its requests without risking that deadlock.
const unsolicitedSince = "v0.12.1"

// takesUnsolicited reports whether a runtime built with NRI nriVersion
// takes updates outside its requests safely; an unknown version does not.
func takesUnsolicited(nriVersion string) bool {
	return version.FindClosestMatch(nriVersion, []string{unsolicitedSince}) == unsolicitedSince
}

// withOwed adds to a response's updates what the outbox holds, on runtimes
// that cannot take updates outside their requests. skip is the container
// the request is about (a creation cannot update the container created).
func (p *Plugin) withOwed(updates []*api.ContainerUpdate, skip string) []*api.ContainerUpdate {
	if p.unsolicited.Load() {
		return updates
	}
	pool, ids := p.out.take()
	if !pool && len(ids) == 0 {
		return updates
	}
	pin := p.duties().pinning
	var owed []*api.ContainerUpdate
	if pool {
		owed, _ = pin.Refresh()
	}
	owed = append(owed, pin.UpdatesFor(slices.Sorted(maps.Keys(ids)))...)
	have := map[string]bool{skip: true}
	for _, u := range updates {
		have[u.GetContainerId()] = true
	}
	for _, u := range owed {
		if !have[u.GetContainerId()] {
			have[u.GetContainerId()] = true
			u.IgnoreFailure = true // in an answer: never fail the request
			updates = append(updates, u)
		}
	}
	return updates
}

// maxAttempts bounds how often one container's update is sent: a container
// whose process exited (and that kubelet has not stopped yet) cannot be
// updated, and must not be retried forever.
const maxAttempts = 5

// outbox is the work the refresher has not done yet.
type outbox struct {
	wake chan struct{} // one pending wake-up; requests merge

	mu   sync.Mutex
	pool bool           // send the pool to every shared container
	ids  map[string]int // containers to bring to what coreguard holds: attempts so far
}

func newOutbox() outbox { return outbox{wake: make(chan struct{}, 1), ids: map[string]int{}} }

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take empties the outbox.
func (o *outbox) take() (pool bool, ids map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	pool, ids = o.pool, o.ids
	o.pool, o.ids = false, map[string]int{}
	return pool, ids
}

// refreshLater asks for the shared pool to be sent to every shared
// container. It never blocks the handler; requests made while one is
// pending merge.
func (p *Plugin) refreshLater() {
	p.out.mu.Lock()
	p.out.pool = true
	p.out.mu.Unlock()
	p.out.signal()
}

// poolChanged follows a change of the shared pool outside a request's
// answer: with cgroup-first the cgroups hold it already (the runtime is
// sent updates only for those that could not be written), else the pool
// is sent to every shared container.
func (p *Plugin) poolChanged() {
	if p.duties().pinning.Direct() {
		p.retryFailedWrites()
		return
	}
	p.refreshLater()
}

// retryFailedWrites has the runtime update the containers whose cgroup
// coreguard could not write (cgroup-first).
func (p *Plugin) retryFailedWrites() {
	ids := p.duties().pinning.WriteFailures()
	if len(ids) == 0 {
		return
	}
	retry := make(map[string]int, len(ids))
	for _, id := range ids {
		retry[id] = 0
	}
	p.retryLater(retry)
}

// sendLater asks for one container to be brought to what coreguard holds
// for it (its exclusive CPUs, or the shared pool as it is when sent).
func (p *Plugin) sendLater(id string) {
	p.retryLater(map[string]int{id: 0})
}

func (p *Plugin) retryLater(ids map[string]int) {
	p.out.mu.Lock()
	for id, n := range ids {
		p.out.ids[id] = max(p.out.ids[id], n)
	}
	p.out.mu.Unlock()
	p.out.signal()
}

// refresher does the outbox's work while connected. It reads what to send
// when it sends, not when asked, and sends the pool again while the pool
// changed in the meantime, so a late batch can never leave a container on
// an old pool.
func (p *Plugin) refresher(ctx context.Context, s stub.Stub) {
	wait := newBackoff(100*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.out.wake:
		}
		if !p.unsolicited.Load() {
			continue // withOwed delivers it
		}
		for {
			pool, ids := p.out.take()
			if !pool && len(ids) == 0 {
				wait.reset()
				break
			}
			pin := p.duties().pinning
			var updates []*api.ContainerUpdate
			gen := pin.Generation()
			if pool {
				updates, gen = pin.Refresh()
			}
			for _, u := range updates {
				u.IgnoreFailure = false
				delete(ids, u.GetContainerId()) // the pool update covers it
			}
			updates = append(updates, pin.UpdatesFor(slices.Sorted(maps.Keys(ids)))...)
			retry := p.send(s, updates, ids)
			if ctx.Err() != nil {
				return
			}
			if pin.Generation() != gen {
				// The pool moved on while this batch went out: the runtime
				// may have written an older pool into cgroups coreguard had
				// written the new one into (cgroup-first) — write it again
				// — and the runtime's view needs the new pool too.
				pin.WritePool()
				if pool {
					p.refreshLater()
				}
			}
			if len(retry) > 0 {
				if !sleep(ctx, wait.next()) {
					return
				}
				p.retryLater(retry)
			}
		}
	}
}

// send sends updates and returns the containers to try again (with their
// attempts so far), those the runtime reported it could not update.
func (p *Plugin) send(s stub.Stub, updates []*api.ContainerUpdate, attempts map[string]int) map[string]int {
	if len(updates) == 0 {
		return nil
	}
	failed, err := s.UpdateContainers(updates)
	if err == nil && len(failed) == 0 {
		return nil
	}
	retry := map[string]int{}
	for _, u := range failed {
		id := u.GetContainerId()
		if n := attempts[id] + 1; n < maxAttempts {
			retry[id] = n
		} else {
			p.log.WithField("container", id).Warnf("the runtime could not update the container's cpuset %d times: giving up", maxAttempts)
		}
	}
	p.log.WithError(err).WithField("failed", len(failed)).Debug("updating containers outside a runtime request: some failed")
	return retry
}
