package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/config"
)

// CreateContainer runs the duties in order: admission (privileged and
// host-namespace containers outside allowed namespaces are refused, or
// given the hook that refuses them when NRI's view is not enough), then
// pinning (exclusive whole cores or the shared pool; when the pool shrinks,
// every shared container is moved in the same response), then quota (CFS
// quota lifted where it only harms). An error fails the creation; its text
// reaches kubectl describe, so it starts with "coreguard:" and names the
// container.
func (p *Plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	defer p.metrics.observe("CreateContainer", time.Now())
	d := p.duties()
	if err := d.admission.Check(pod, ctr); err != nil {
		p.log.WithError(err).Warn("refusing container")
		return nil, nil, fmt.Errorf("coreguard: %w", err)
	}
	adj := &api.ContainerAdjustment{}
	if h := d.admission.Hook(pod, ctr); h != nil {
		// NRI cannot clear it of being privileged: its final spec is
		// checked by the runtime, running coreguard as an OCI hook.
		adj.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{h}})
	}
	updates, err := d.pinning.Create(pod, ctr, adj)
	if err != nil {
		p.log.WithError(err).Warn("refusing container")
		return nil, nil, fmt.Errorf("coreguard: %w", err)
	}
	d.quota.Create(pod, ctr, d.pinning.Pinned(ctr.GetId()), adj)
	p.retryFailedWrites()
	return adj, p.withOwed(p.sharedPoolUpdates(updates), ctr.GetId()), nil
}

// sharedPoolUpdates returns the shared pool's updates for the response, or
// has them sent right after it (config sharedPoolUpdates: after-response,
// where the runtime takes updates outside its requests: refresh.go). With
// cgroup-first there are none: the pinner wrote the containers' cgroups.
func (p *Plugin) sharedPoolUpdates(updates []*api.ContainerUpdate) []*api.ContainerUpdate {
	if len(updates) == 0 || p.currentConfig().SharedPoolUpdates != config.SharedPoolAfterResponse || !p.unsolicited.Load() {
		return updates
	}
	p.refreshLater()
	return nil
}
