package quota

import (
	"cmp"
	"slices"
)

// Why a container's CFS quota is lifted or kept. They name the setting or
// fact that decided, so a person knows what to change.
const (
	// LiftedClear: cfsQuota: clear lifts every quota.
	LiftedClear = "cfs-quota-clear"
	// LiftedBug: cfsQuota: auto on a kernel taken to have the CFS bug.
	LiftedBug = "cfs-bug"
	// LiftedPinned: the container holds exclusive cores, where a quota
	// only throttles it on cores nobody else uses.
	LiftedPinned = "pinned"
	// KeptKeep: cfsQuota: keep.
	KeptKeep = "cfs-quota-keep"
	// KeptNoBug: cfsQuota: auto on a kernel not taken to have the bug.
	KeptNoBug = "no-cfs-bug"
)

// LiftedReasons and KeptReasons list every reason, for metrics and docs.
var (
	LiftedReasons = []string{LiftedClear, LiftedBug, LiftedPinned}
	KeptReasons   = []string{KeptKeep, KeptNoBug}
)

// decision is whether a container runs without quota, and why.
type decision struct {
	clear  bool
	reason string
}

// decide applies the mode to a container: a node-wide reason wins over
// pinned, since the container would run without quota anyway.
func (d *Duty) decide(pinned bool) decision {
	switch {
	case d.mode == Clear:
		return decision{true, LiftedClear}
	case d.mode == Auto && d.buggy:
		return decision{true, LiftedBug}
	case pinned:
		return decision{true, LiftedPinned}
	case d.mode == Keep:
		return decision{false, KeptKeep}
	}
	return decision{false, KeptNoBug}
}

// Container is one container's quota as the duty decided it.
type Container struct {
	Namespace, Pod, Container string
	Lifted                    bool
	Reason                    string // one of LiftedReasons or KeptReasons
}

// Pod is a pod whose cgroup quota the duty lifted.
type Pod struct {
	Namespace, Pod string
	Reason         string // one of LiftedReasons
}

// Containers lists the containers the duty knows (those not stopped),
// sorted by namespace, pod and name.
func (d *Duty) Containers() []Container {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Container, 0, len(d.ctrs))
	for _, c := range d.ctrs {
		p := d.pods[c.pod]
		if p == nil {
			continue
		}
		out = append(out, Container{Namespace: p.namespace, Pod: p.name, Container: c.name, Lifted: c.clear, Reason: c.reason})
	}
	// Several containers can share a pod and a name (kubelet's retries of
	// one that failed, a pod recreated under its name while the old one
	// ends): a metric series must not repeat, so they are one entry.
	slices.SortFunc(out, func(a, b Container) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container),
			cmp.Compare(boolRank(a.Lifted), boolRank(b.Lifted)), cmp.Compare(a.Reason, b.Reason))
	})
	return slices.Compact(out)
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// LiftedPods lists the pods whose cgroup runs without quota, sorted.
func (d *Duty) LiftedPods() []Pod {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Pod
	for _, p := range d.pods {
		if p.clear {
			out = append(out, Pod{Namespace: p.namespace, Pod: p.name, Reason: p.reason})
		}
	}
	// A pod recreated under its name has two sandboxes for a while: one
	// entry (as Containers).
	slices.SortFunc(out, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Reason, b.Reason))
	})
	return slices.Compact(out)
}
