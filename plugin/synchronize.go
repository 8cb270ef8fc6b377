package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// Synchronize rebuilds coreguard's state from the runtime's pods and
// containers, on every (re)connection: pinned containers keep their cores
// and shared ones are moved to the current shared pool.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	defer p.metrics.observe("Synchronize", time.Now())
	return p.pinning().Sync(pods, ctrs)
}
