package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// PostStartContainer confirms a container coreguard answered: it exists and
// runs, so what it holds is no longer provisional (pinning/start.go). A
// shared container whose pool moved while it was being created is sent the
// pool again, now that an update reaches its cgroup; one that started after
// its start timeout is placed again. A post-event carries no updates: they
// go out right after it (sendLater).
func (p *Plugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	defer p.metrics.observe("PostStartContainer", time.Now())
	pin := p.duties().pinning
	resend, poolChanged := pin.Started(pod, ctr)
	if resend && !pin.Direct() {
		p.sendLater(ctr.GetId()) // cgroup-first: Started wrote its cgroup
	}
	if poolChanged {
		p.poolChanged()
	}
	p.retryFailedWrites()
	return nil
}

// expire gives back what containers that never started hold (the runtime
// said nothing of their failed creation), so they neither keep cores nor
// grow coreguard's memory.
func (p *Plugin) expire() {
	d := p.duties()
	ids, poolChanged := d.pinning.Expire()
	for _, id := range ids {
		d.quota.Forget(id)
	}
	p.metrics.unstarted.Add(float64(len(ids)))
	if poolChanged {
		p.poolChanged()
	}
}
