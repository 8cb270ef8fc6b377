package admission

import (
	"fmt"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
)

// Stats counts admission outcomes, for metrics.
type Stats interface {
	Rejected(kind Kind, namespace string)
	Audited(kind Kind, namespace string)
}

// Checker applies the admission policy.
type Checker struct {
	cfg   *config.Admission
	host  HostNamespaces
	log   logrus.FieldLogger
	stats Stats

	hookBinary string
}

// New makes a checker. host may be nil (host namespaces given by path are
// then not recognised).
func New(cfg *config.Admission, host HostNamespaces, log logrus.FieldLogger, stats Stats) *Checker {
	return &Checker{cfg: cfg, host: host, log: log, stats: stats}
}

// Check returns the error that refuses the container, or nil. In audit
// mode it only logs and counts what enforce would refuse.
func (c *Checker) Check(pod *api.PodSandbox, ctr *api.Container) error {
	if c.cfg.Mode == config.AdmissionOff {
		return nil
	}
	ns := pod.GetNamespace()
	var denied []Finding
	for _, f := range Inspect(pod, ctr, c.host) {
		if !c.cfg.Allows(string(f.Kind), ns) {
			denied = append(denied, f)
		}
	}
	if len(denied) == 0 {
		return nil
	}
	msg := message(ns, pod.GetName(), ctr.GetName(), denied, func(k Kind) []string { return c.cfg.Allowed(string(k)) })
	if c.cfg.Mode == config.AdmissionAudit {
		for _, f := range denied {
			c.count(f.Kind, ns, false)
		}
		c.log.WithField("namespace", ns).Warn("audit: would refuse: " + msg)
		return nil
	}
	for _, f := range denied {
		c.count(f.Kind, ns, true)
	}
	return fmt.Errorf("%s", msg)
}

func (c *Checker) count(k Kind, ns string, rejected bool) {
	if c.stats == nil {
		return
	}
	if rejected {
		c.stats.Rejected(k, ns)
	} else {
		c.stats.Audited(k, ns)
	}
}

// message tells a person reading kubectl describe everything: which
// container, which pod, what it asked for and what showed it, and which
// namespaces may. For example:
//
//	privileged container "agent" in pod default/debug rejected: namespace "default" may not run
//	privileged containers (sysfs mounted rw, all devices allowed); allowed: kube-system, openshift-*
func message(ns, pod, ctr string, denied []Finding, allowed func(Kind) []string) string {
	var kinds, reasons []string
	for _, f := range denied {
		kinds = append(kinds, adjective(f.Kind))
		reasons = append(reasons, fmt.Sprintf("may not %s (%s); allowed: %s",
			f.Kind.what(), strings.Join(f.Signals, ", "), allowedList(allowed(f.Kind))))
	}
	return fmt.Sprintf("%s container %q in pod %s/%s rejected: namespace %q %s",
		strings.Join(kinds, ", "), ctr, ns, pod, ns, strings.Join(reasons, "; and "))
}

func adjective(k Kind) string {
	switch k {
	case Privileged:
		return "privileged"
	case HostPID:
		return "host-PID"
	case HostIPC:
		return "host-IPC"
	}
	return "host-network"
}

func allowedList(patterns []string) string {
	if len(patterns) == 0 {
		return "no namespace"
	}
	return strings.Join(patterns, ", ")
}
