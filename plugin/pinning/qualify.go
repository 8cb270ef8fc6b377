// Package pinning is coreguard's CPU pinning duty: which containers get
// exclusive whole cores, the allocator that gives them, and the shared pool
// every other container runs in, kept up to date as it shrinks and grows.
package pinning

import (
	"fmt"
	"strings"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/config"
)

const (
	// AnnotationExclusive on a pod opts it out of exclusive CPUs ("false");
	// "true" is the default. Any other value fails the container's creation.
	AnnotationExclusive = "coreguard.io/exclusive-cpus"
	// AnnotationCPUs records a pinned container's exclusive CPUs in its
	// spec, so a restarted coreguard can rebuild its state from the runtime.
	AnnotationCPUs = "coreguard.io/cpus"
	// AnnotationWithheld records the siblings withheld for it (oddCPUs: isolate).
	AnnotationWithheld = "coreguard.io/withheld"
)

// sharesPerCPU is what kubelet writes as cpu.shares per whole CPU requested
// (MilliCPUToShares: millicores * 1024 / 1000).
const sharesPerCPU = 1024

// Decision is whether a container gets exclusive CPUs, and why.
type Decision struct {
	CPUs   int    // exclusive CPUs to give; 0 means the shared pool
	Reason string // why, for logs
}

// Decide applies kubelet's static-policy rule — containers of Guaranteed
// pods with an integer CPU request get exclusive CPUs — plus coreguard's
// opt-outs (pod annotation, exempt namespaces). NRI passes no QoS class or
// request: the class is read from the cgroup parent kubelet chose
// (burstable and besteffort pods live under those slices), the request from
// cpu.shares, checked against the CFS quota (limit) where there is one.
func Decide(cfg *config.Config, pod *api.PodSandbox, ctr *api.Container) (Decision, error) {
	switch v, ok := pod.GetAnnotations()[AnnotationExclusive]; {
	case !ok || v == "true":
	case v == "false":
		return Decision{Reason: "pod opted out with " + AnnotationExclusive + `: "false"`}, nil
	default:
		return Decision{}, fmt.Errorf("pod annotation %s: %q is not \"true\" or \"false\"", AnnotationExclusive, v)
	}
	if cfg.Exempt(pod.GetNamespace()) {
		return Decision{Reason: fmt.Sprintf("namespace %q is exempt (exemptNamespaces)", pod.GetNamespace())}, nil
	}
	if qos := qosClass(pod, ctr); qos != "guaranteed" {
		return Decision{Reason: "pod QoS class is " + qos}, nil
	}
	cpu := ctr.GetLinux().GetResources().GetCpu()
	shares := cpu.GetShares().GetValue()
	if shares < sharesPerCPU || shares%sharesPerCPU != 0 {
		return Decision{Reason: fmt.Sprintf("CPU request is not a whole number of CPUs (cpu.shares %d)", shares)}, nil
	}
	n := int(shares / sharesPerCPU)
	quota, period := cpu.GetQuota().GetValue(), cpu.GetPeriod().GetValue()
	if quota > 0 && period > 0 && quota != int64(n)*int64(period) {
		return Decision{Reason: fmt.Sprintf("CPU limit (quota %d per period %d) differs from the request of %d CPUs", quota, period, n)}, nil
	}
	return Decision{CPUs: n, Reason: "Guaranteed pod with an integer CPU request"}, nil
}

// qosClass reads the pod's QoS class from its cgroup path: kubelet puts
// burstable and besteffort pods under cgroups named for the class (cgroupfs
// /kubepods/burstable/pod<uid>, systemd kubepods-burstable-pod<uid>.slice)
// and Guaranteed pods directly under kubepods.
func qosClass(pod *api.PodSandbox, ctr *api.Container) string {
	path := pod.GetLinux().GetCgroupParent()
	if path == "" {
		path = ctr.GetLinux().GetCgroupsPath()
	}
	p := strings.ToLower(path)
	switch {
	case strings.Contains(p, "besteffort"):
		return "besteffort"
	case strings.Contains(p, "burstable"):
		return "burstable"
	}
	return "guaranteed"
}
