package plugin

import (
	"github.com/coreguard/coreguard/kubelet"
)

// readKubelet reads kubelet's CPU manager checkpoint under rootDir. A
// checkpoint that cannot be read is reported and counts as what was read
// last: a torn write or a permission slip must not flip pinning. The
// error is logged when it appears or changes, not at every re-read (every
// 10 s), and its end once.
func (p *Plugin) readKubelet(rootDir string) kubelet.CPUManager {
	m, err := kubelet.ReadCPUManager(rootDir)
	p.mu.Lock()
	last, lastErr := p.kubelet, p.kubeletErr
	p.kubeletErr = ""
	if err != nil {
		p.kubeletErr = err.Error()
	}
	p.mu.Unlock()
	if err == nil {
		if lastErr != "" {
			p.log.WithField("policy", m.Policy).Info("kubelet's CPU manager checkpoint is readable again")
		}
		return m
	}
	if err.Error() != lastErr {
		p.log.WithError(err).Warn("cannot tell which CPU manager policy kubelet runs: keeping the last known (kubeletRootDir in the configuration says where kubelet keeps its state)")
	}
	last.Path = m.Path
	return last
}

// checkKubelet reads kubelet's CPU manager policy again (kubelet may have
// been moved to or off the static policy and restarted) and pauses or
// resumes pinning when it changed.
func (p *Plugin) checkKubelet() {
	cfg := p.currentConfig()
	now := p.readKubelet(cfg.KubeletRootDir)
	p.mu.Lock()
	before := p.kubelet
	p.kubelet = now
	pin := p.pinner
	p.mu.Unlock()
	if pin.SetPaused(now.Static()) && !now.Static() {
		// Every container is in the shared pool now: give them its CPUs.
		p.refreshLater()
	}
	p.reportKubelet(before, now)
}

// reportKubelet says once, loudly, that coreguard stops or starts pinning
// because of kubelet's policy, and keeps the metric in step.
func (p *Plugin) reportKubelet(before, now kubelet.CPUManager) {
	p.metrics.setPinning(!now.Static())
	switch {
	case now.Static() && !before.Static():
		p.log.WithField("policy", now.Policy).Error("not pinning: " + now.Conflict())
	case !now.Static() && before.Static():
		p.log.WithField("policy", now.Policy).Warn("kubelet's CPU manager no longer runs the static policy: coreguard pins again; " +
			"containers that kubelet pinned join the shared pool")
	}
}
