package plugin

import (
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kernel"
)

// procRoot is the procfs the kernel is read from.
func procRoot(opts Options) string {
	if opts.ProcRoot != "" {
		return opts.ProcRoot
	}
	return kernel.DefaultProcRoot
}

// verdict decides, from the configuration's kernel rules, whether the
// kernel coreguard runs on has the CFS throttling bug (cfsQuota: auto lifts
// quotas then), and says so in the log and the metrics. The kernel was
// read from procfs as `coreguard kernel` reads it, so both give the same
// verdict.
func (p *Plugin) verdict(cfg *config.Config) kernel.Verdict {
	v := cfg.Kernel.DecideKernel(p.kernel)
	rule := ""
	if v.Rule != nil {
		rule = v.Rule.Name
	}
	p.metrics.setVerdict(v.Buggy, v.String(), rule)
	fields := logrus.Fields{"kernel": p.kernel.Release, "verdict": v.String(), "rule": rule, "basis": v.Basis, "reason": v.Reason}
	if up := p.kernel.Upstream; up != nil {
		fields["upstream"] = up.String()
	}
	if len(p.kernel.Ignored) > 0 {
		fields["ignored"] = p.kernel.Ignored
	}
	entry := p.log.WithFields(fields)
	if v.Known {
		entry.Info("CFS throttling bug verdict")
	} else {
		entry.Warn("CFS throttling bug verdict unknown for this kernel (config kernel.unknown decides)")
	}
	return v
}
