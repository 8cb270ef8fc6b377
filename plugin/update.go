package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// UpdateContainer answers kubelet's UpdateContainerResources and in-place
// resize: the update returned for the container itself overrides kubelet's
// values, so pinning and a lifted quota are never undone; a resize of a
// pinned container re-allocates or is refused.
func (p *Plugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	defer p.metrics.observe("UpdateContainer", time.Now())
	d := p.duties()
	updates, err := d.pinning.Update(pod, ctr, res)
	if err != nil {
		p.log.WithError(err).Warn("refusing update")
		return nil, fmt.Errorf("coreguard: %w", err)
	}
	p.retryFailedWrites()
	return p.withOwed(mergeUpdates(updates, d.quota.Update(pod, ctr)), ""), nil
}

// mergeUpdates joins two duties' updates into one per container: the
// runtime takes one update per container per response.
func mergeUpdates(a, b []*api.ContainerUpdate) []*api.ContainerUpdate {
	out := append([]*api.ContainerUpdate(nil), a...)
	for _, u := range b {
		merged := false
		for _, have := range out {
			if have.GetContainerId() != u.GetContainerId() {
				continue
			}
			if q := u.GetLinux().GetResources().GetCpu().GetQuota(); q != nil {
				have.SetLinuxCPUQuota(q.GetValue())
			}
			have.IgnoreFailure = have.IgnoreFailure && u.IgnoreFailure
			merged = true
			break
		}
		if !merged {
			out = append(out, u)
		}
	}
	return out
}
