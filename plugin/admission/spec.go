package admission

import (
	"fmt"
	"slices"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// NRI does not show capabilities, masked or read-only paths. Its two
// privileged marks (privilegedSignals) vanish together when a runtime
// handler has privileged_without_host_devices (no allow-all device rule)
// and the pod mounts a volume at /sys (no sysfs mount): the container is
// still privileged. So a container the NRI view cannot clear is given an
// OCI hook (Checker.Hook) that reads the spec the runtime will run and
// refuses it there (RunHook).

// clearedByNRI reports whether NRI's view shows the container is not
// privileged: the runtime's own /sys, mounted sysfs read-only, is there
// (a privileged container gets it read-write, which Inspect catches).
func clearedByNRI(ctr *api.Container) bool {
	return slices.ContainsFunc(ctr.GetMounts(), func(m *api.Mount) bool {
		return m.GetDestination() == "/sys" && m.GetType() == "sysfs" && slices.Contains(m.GetOptions(), "ro")
	})
}

// SpecSignals reports what makes an OCI spec privileged, or nil: the
// capability that makes the others moot (CAP_SYS_ADMIN, in the bounding
// set) together with a writable /proc/sys (not among the read-only
// paths), which together reach every kernel setting. That is what both
// runtimes make of CRI's privileged, with or without host devices. Either
// alone is not privileged: an added CAP_SYS_ADMIN keeps the masks, and an
// unmasked /proc without it cannot write there.
func SpecSignals(spec *specs.Spec) []string {
	if spec.Process == nil || spec.Process.Capabilities == nil {
		return nil
	}
	caps := spec.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_SYS_ADMIN") {
		return nil
	}
	if spec.Linux != nil && slices.Contains(spec.Linux.ReadonlyPaths, "/proc/sys") {
		return nil
	}
	out := []string{"CAP_SYS_ADMIN", "/proc/sys writable"}
	if spec.Linux == nil || len(spec.Linux.MaskedPaths) == 0 {
		out = append(out, "no masked paths")
	}
	return append(out, fmt.Sprintf("%d capabilities", len(caps)))
}
