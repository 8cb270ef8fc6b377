package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// RemoveContainer forgets a container that was removed without a stop
// coreguard saw. A removal cannot carry updates, so the grown shared pool
// is sent right after.
func (p *Plugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, ctr *api.Container) error {
	defer p.metrics.observe("RemoveContainer", time.Now())
	d := p.duties()
	d.quota.Forget(ctr.GetId())
	if len(d.pinning.Stop(ctr)) > 0 {
		p.refreshLater()
	}
	p.retryFailedWrites() // cgroup-first: Stop wrote the grown pool
	return nil
}
