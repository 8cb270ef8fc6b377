package plugin

import (
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kernel"
)

// verdict decides, from the configuration's kernel rules, whether the
// running kernel has the CFS throttling bug (cfsQuota: auto lifts quotas
// then), and says so in the log and the metrics.
func (p *Plugin) verdict(cfg *config.Config) kernel.Verdict {
	v := cfg.Kernel.Decide(p.release)
	rule := ""
	if v.Rule != nil {
		rule = v.Rule.Name
	}
	p.metrics.setVerdict(v.Buggy, v.String(), rule)
	entry := p.log.WithFields(logrus.Fields{"kernel": p.release, "verdict": v.String(), "rule": rule, "reason": v.Reason})
	if v.Known {
		entry.Info("CFS throttling bug verdict")
	} else {
		entry.Warn("CFS throttling bug verdict unknown for this kernel (config kernel.unknown decides)")
	}
	return v
}
