package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// Synchronize rebuilds coreguard's state from the runtime's pods and
// containers, on every (re)connection: pinned containers keep their cores,
// shared ones are moved to the current shared pool, and quotas that should
// be off are lifted again.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	defer p.metrics.observe("Synchronize", time.Now())
	p.metrics.admission.syncPods(pods)
	d := p.duties()
	updates, err := d.pinning.Sync(pods, ctrs)
	if err != nil {
		return nil, err
	}
	p.synced.Store(true)
	return mergeUpdates(updates, d.quota.Sync(pods, ctrs, d.pinning.Pinned)), nil
}
