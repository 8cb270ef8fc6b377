package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// StopContainer releases a stopped container's exclusive cores; the shared
// pool grows back in the same response.
func (p *Plugin) StopContainer(_ context.Context, _ *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	defer p.metrics.observe("StopContainer", time.Now())
	d := p.duties()
	d.quota.Forget(ctr.GetId())
	updates := p.sharedPoolUpdates(d.pinning.Stop(ctr))
	p.retryFailedWrites()
	return p.withOwed(updates, ctr.GetId()), nil
}
