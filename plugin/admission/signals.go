// Package admission is coreguard's admission duty: it refuses, at the
// runtime, containers that are privileged or share the host's PID, IPC or
// network namespace, unless their namespace is allowed. The runtime is
// where every container kubelet creates arrives, so static pods and debug
// containers cannot slip past as they can past the API server.
//
// NRI has no "privileged" field. Which signals count, and why, is written
// next to each check below and in docs/admission.md; where they cannot
// tell, an OCI hook judges the final spec (spec.go, hook.go).
package admission

import (
	"fmt"
	"slices"

	"github.com/containerd/nri/pkg/api"
)

// Kind is what a container asks for that needs an allowed namespace.
type Kind string

const (
	Privileged  Kind = "privileged"
	HostPID     Kind = "hostPID"
	HostIPC     Kind = "hostIPC"
	HostNetwork Kind = "hostNetwork"
)

// Kinds lists every kind, in the order messages name them.
var Kinds = []Kind{Privileged, HostPID, HostIPC, HostNetwork}

// what says what a kind means, for messages.
func (k Kind) what() string {
	switch k {
	case Privileged:
		return "run privileged containers"
	case HostPID:
		return "use the host's PID namespace"
	case HostIPC:
		return "use the host's IPC namespace"
	}
	return "use the host's network namespace"
}

// Finding is one kind a container was found to ask for, with the signals
// that showed it.
type Finding struct {
	Kind    Kind
	Signals []string
}

// HostNamespaces tells whether a namespace path is one of the host's own.
// CRI-O lists host network and IPC namespaces by path instead of leaving
// them out (see hostns.go).
type HostNamespaces interface {
	IsHost(nsType, path string) bool
}

// Inspect returns what the container asks for among Kinds.
func Inspect(pod *api.PodSandbox, ctr *api.Container, host HostNamespaces) []Finding {
	var out []Finding
	if s := privilegedSignals(ctr); len(s) > 0 {
		out = append(out, Finding{Kind: Privileged, Signals: s})
	}
	for _, k := range []struct {
		kind   Kind
		nsType string
	}{{HostPID, "pid"}, {HostIPC, "ipc"}, {HostNetwork, "network"}} {
		if s := hostNamespaceSignal(pod, ctr, k.nsType, host); s != "" {
			out = append(out, Finding{Kind: k.kind, Signals: []string{s}})
		}
	}
	return out
}

// privilegedSignals reports the marks containerd and CRI-O both leave on a
// privileged container. Either decisive signal alone counts: an ordinary
// container never has them, and each alone opens the host (rw sysfs
// reaches kernel settings; an allow-all device rule lets it open any
// device). A writable cgroup mount alone does not count: containerd's
// cgroup_writable option gives that to unprivileged containers.
func privilegedSignals(ctr *api.Container) []string {
	var decisive []string
	for _, m := range ctr.GetMounts() {
		if m.GetDestination() == "/sys" && m.GetType() == "sysfs" && !slices.Contains(m.GetOptions(), "ro") {
			decisive = append(decisive, "sysfs mounted rw")
			break
		}
	}
	for _, d := range ctr.GetLinux().GetResources().GetDevices() {
		if allowsAllDevices(d) {
			decisive = append(decisive, "all devices allowed")
			break
		}
	}
	if len(decisive) == 0 {
		return nil
	}
	// Supporting signals, shown so the message says everything seen.
	if n := len(ctr.GetLinux().GetDevices()); n > 0 {
		decisive = append(decisive, fmt.Sprintf("%d host devices", n))
	}
	return decisive
}

// allowsAllDevices is the rule {allow, rwm} with no type, major or minor
// ("a *:* rwm"), which runtimes add only for privileged containers.
func allowsAllDevices(d *api.LinuxDeviceCgroup) bool {
	if !d.GetAllow() || d.GetAccess() != "rwm" {
		return false
	}
	if t := d.GetType(); t != "" && t != "a" {
		return false
	}
	wild := func(o *api.OptionalInt64) bool { return o == nil || o.GetValue() == -1 }
	return wild(d.GetMajor()) && wild(d.GetMinor())
}

// hostNamespaceSignal says why a container shares the host's namespace of
// one type, or "" when it does not. containerd leaves a host namespace out
// of the pod's list; CRI-O lists it with a path to the host's own, so a
// listed path is compared with the host's namespace too. The container's
// own list is read the same way: a direct CRI call can ask for the host's
// namespace on the container alone, which CRI-O honours (leaving the entry
// out) while containerd puts the container in the pod's.
func hostNamespaceSignal(pod *api.PodSandbox, ctr *api.Container, nsType string, host HostNamespaces) string {
	if s := hostIn(pod.GetLinux().GetNamespaces(), "pod", nsType, host); s != "" {
		return s
	}
	return hostIn(ctr.GetLinux().GetNamespaces(), "container", nsType, host)
}

// hostIn reads one namespace list (whose: "pod" or "container").
func hostIn(list []*api.LinuxNamespace, whose, nsType string, host HostNamespaces) string {
	if len(list) == 0 {
		// A runtime that lists no namespaces at all tells nothing.
		return ""
	}
	i := slices.IndexFunc(list, func(n *api.LinuxNamespace) bool { return n.GetType() == nsType })
	if i < 0 {
		return fmt.Sprintf("%s has no %s namespace of its own", whose, nsType)
	}
	if p := list[i].GetPath(); p != "" && host != nil && host.IsHost(nsType, p) {
		return fmt.Sprintf("%s's %s namespace %s is the host's", whose, nsType, p)
	}
	return ""
}
