package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// UpdateContainer answers kubelet's UpdateContainerResources and in-place
// resize: the update returned for the container itself overrides kubelet's
// values, so pinning is never undone; a resize of a pinned container
// re-allocates or is refused.
func (p *Plugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	defer p.metrics.observe("UpdateContainer", time.Now())
	updates, err := p.pinning().Update(pod, ctr, res)
	if err != nil {
		p.log.WithError(err).Warn("refusing update")
		return nil, fmt.Errorf("coreguard: %w", err)
	}
	return updates, nil
}
