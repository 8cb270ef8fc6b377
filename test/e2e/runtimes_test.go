package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// expect is what differs between the runtimes, for the scenarios to
// assert instead of skipping: one row per runtime, in the order they run.
type expect struct {
	// runtime is harness.Options.Runtime and the subtest's name.
	runtime string
	// name and version are what CRI's Version reports (the versions
	// README.md "Tested runtimes" lists).
	name, version string
	// refusal is what the runtime puts before a plugin's CreateContainer
	// error in the message the CRI client (kubelet) gets.
	refusal string
	// hostNetwork and hostIPC are coreguard's reason text for a pod
	// sharing the host's network or IPC namespace: containerd lists no
	// such namespace for the pod, CRI-O lists one pinned under its
	// namespaces_dir ({nsdir}) that is the host's. A regexp.
	hostNetwork, hostIPC string
	// ordinaryNS and hostNS: how the runtime lists the pid, ipc and
	// network namespaces of an ordinary pod, and of a pod sharing the
	// host's (nsAbsent, nsNoPath, nsOwnPath, nsHostPath; TestAdmissionSignals).
	ordinaryNS, hostNS map[string]string
	// requiredPlugins: the runtime enforces NRI's default validator
	// (required_plugins). CRI-O v1.34.0's NRI predates validators and its
	// TOML loader ignores the keys: containers are created with coreguard
	// absent.
	requiredPlugins bool
	// requiredMissing is the validator's refusal while coreguard is not
	// connected (when requiredPlugins).
	requiredMissing string
	// updatesOutsideRequests: the runtime's NRI (v0.12.1 or later) takes
	// container updates a plugin sends on its own. Older ones deadlock on
	// them, so coreguard hands what it owes a container over in the answer
	// to the runtime's next request instead (docs/config.md).
	updatesOutsideRequests bool
	// containerHostNS: the host namespaces the runtime gives a container
	// that asks for them on its own config, its sandbox not (a direct CRI
	// call): CRI-O honours pid and network, containerd puts the container
	// in its pod's namespaces.
	containerHostNS map[string]bool
	// hooksAt is the CRI call in which the runtime runs OCI createRuntime
	// hooks (runc create), where coreguard's spec-check hook refuses:
	// containerd makes the task in StartContainer, CRI-O the container in
	// CreateContainer.
	hooksAt string
}

var runtimes = []expect{
	{
		// go install sets no version ldflags: containerd reports its
		// version.go default, "2.4.2+unknown".
		runtime: harness.Containerd, name: "containerd", version: "2.4.2+unknown",
		refusal:         "failed to create containerd container: failed to get NRI adjustment for container: rpc error: code = Unknown desc = ",
		hostNetwork:     `pod has no network namespace of its own`,
		hostIPC:         `pod has no ipc namespace of its own`,
		ordinaryNS:      map[string]string{"pid": nsNoPath, "ipc": nsNoPath, "network": nsOwnPath},
		hostNS:          map[string]string{"pid": nsAbsent, "ipc": nsAbsent, "network": nsAbsent},
		requiredPlugins: true,
		requiredMissing: "failed to create containerd container: failed to get NRI adjustment for container: " +
			`validator "00-default-validator" rejected container adjustment, reason: validation error: required plugin "coreguard" not present`,
		updatesOutsideRequests: true, // NRI v0.12.3
		containerHostNS:        map[string]bool{},
		hooksAt:                "StartContainer",
	},
	{
		runtime: harness.CRIO, name: "cri-o", version: "1.34.0",
		refusal:                "",
		hostNetwork:            `pod's network namespace {nsdir}/netns/[0-9a-f-]+ is the host's`,
		hostIPC:                `pod's ipc namespace {nsdir}/ipcns/[0-9a-f-]+ is the host's`,
		ordinaryNS:             map[string]string{"pid": nsNoPath, "ipc": nsOwnPath, "network": nsOwnPath},
		hostNS:                 map[string]string{"pid": nsAbsent, "ipc": nsHostPath, "network": nsHostPath},
		requiredPlugins:        false,
		updatesOutsideRequests: false, // NRI v0.9.1-0.20250219030224-e597e7849f24
		containerHostNS:        map[string]bool{"pid": true, "network": true},
		hooksAt:                "CreateContainer",
	},
}

// forEachRuntime runs scenario f once per runtime, as subtests named
// "containerd" and "cri-o", one after the other.
func forEachRuntime(t *testing.T, f func(t *testing.T, x expect)) {
	t.Helper()
	for _, x := range runtimes {
		t.Run(x.runtime, func(t *testing.T) { f(t, x) })
	}
}

// reason fills {nsdir} in a reason pattern with rt's namespaces dir.
func (x expect) reason(rt *harness.Runtime, pattern string) string {
	return strings.ReplaceAll(pattern, "{nsdir}", regexp.QuoteMeta(rt.NamespacesDir))
}
