package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// startWait bounds how long a container's start waits for coreguard's
// cgroup writes (sharedPoolUpdates: cgroup-first): about 0.1 ms per shared
// container, so this covers thousands, well inside the runtime's 2 s
// request timeout.
const startWait = time.Second

// StartContainer runs right before the runtime starts a container: with
// cgroup-first it waits until the shared pool coreguard decided so far is
// written into every shared container's cgroup, so a pinned container's
// processes never run beside a shared container still on its cores. The
// writes started when the creation was answered and ran beside the
// runtime's own work on the container, so there is rarely anything left to
// wait for.
func (p *Plugin) StartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	defer p.metrics.observe("StartContainer", time.Now())
	if !p.duties().pinning.WaitWritten(startWait) {
		p.log.WithField("container", fmt.Sprintf("%s/%s/%s", pod.GetNamespace(), pod.GetName(), ctr.GetName())).
			Warnf("the shared pool was not written into every shared container's cgroup within %v: starting the container anyway", startWait)
	}
	return nil
}
