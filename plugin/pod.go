package plugin

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
)

// RunPodSandbox lifts a new pod's CFS quota before its containers come when
// every pod runs without one (cfsQuota: clear, or auto on a buggy kernel),
// and gives its namespace admission's series at 0 (metrics_admission.go).
func (p *Plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	defer p.metrics.observe("RunPodSandbox", time.Now())
	p.metrics.admission.podStarted(pod)
	p.duties().quota.PodStarted(pod)
	return nil
}

// UpdatePodSandbox comes with kubelet's pod-level resize, when kubelet
// also rewrites the pod's cgroup: a pod that runs without CFS quota gets it
// lifted again. PostUpdatePodSandbox does the same once the runtime applied
// the update, so whichever write comes last, the quota stays off.
func (p *Plugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	defer p.metrics.observe("UpdatePodSandbox", time.Now())
	p.duties().quota.PodUpdated(pod)
	return nil
}

// PostUpdatePodSandbox: see UpdatePodSandbox.
func (p *Plugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	defer p.metrics.observe("PostUpdatePodSandbox", time.Now())
	p.duties().quota.PodUpdated(pod)
	return nil
}

// RemovePodSandbox forgets a removed pod (and, with its namespace's last
// pod, that namespace's admission series that never counted).
func (p *Plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	defer p.metrics.observe("RemovePodSandbox", time.Now())
	p.metrics.admission.podRemoved(pod)
	p.duties().quota.ForgetPod(pod)
	return nil
}
