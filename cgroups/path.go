package cgroups

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Cgroup is one cgroup of the cpu controller.
type Cgroup struct {
	Group   string  // path inside the hierarchy, as in /proc/PID/cgroup: "/kubepods/burstable/pod<uid>"
	Dir     string  // the cgroup's directory in the cpu controller
	Version Version // where Dir is: a v1 cpu controller or the v2 unified tree
}

// Resolve finds the cpu cgroup of a kubelet or runtime cgroup path (see
// Group). It does not check that the cgroup exists.
func (h *Hierarchy) Resolve(cgroupPath string) (Cgroup, error) {
	g, err := Group(cgroupPath)
	if err != nil {
		return Cgroup{}, err
	}
	return Cgroup{Group: g, Dir: filepath.Join(h.CPUDir, filepath.FromSlash(g)), Version: h.Version}, nil
}

// Group turns a cgroup path as kubelet or a runtime writes it into the
// path inside a hierarchy. Forms:
//
//	/kubepods/burstable/pod<uid>[/<id>]       cgroupfs driver: already a group
//	kubepods-burstable-pod<uid>.slice         systemd driver, a pod's CgroupParent
//	<slice>:<prefix>:<id>                     systemd driver, a container's cgroupsPath
//	                                          (prefix cri-containerd, crio, docker)
//
// The systemd forms expand as systemd lays slices out on disk:
// "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>" is
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope".
func Group(cgroupPath string) (string, error) {
	switch {
	case strings.Contains(cgroupPath, ":"):
		return systemdGroup(cgroupPath)
	case strings.HasPrefix(cgroupPath, "/"):
		// Clean also keeps ".." from climbing out of the hierarchy.
		return path.Clean(cgroupPath), nil
	case strings.HasSuffix(cgroupPath, ".slice") && !strings.Contains(cgroupPath, "/"):
		return ExpandSlice(cgroupPath)
	}
	return "", fmt.Errorf("cgroup path %q is neither a cgroupfs path (/kubepods/...) nor a systemd slice (kubepods-....slice) or slice:prefix:name", cgroupPath)
}

// systemdGroup expands runc's systemd cgroupsPath "slice:prefix:name": the
// unit is "<prefix>-<name>.scope", or name itself when it is a slice.
func systemdGroup(p string) (string, error) {
	parts := strings.Split(p, ":")
	if len(parts) != 3 || parts[2] == "" {
		return "", fmt.Errorf("systemd cgroup path %q is not slice:prefix:name", p)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = "system.slice" // runc's default parent
	}
	parent, err := ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("systemd cgroup path %q: %w", p, err)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	}
	if strings.Contains(unit, "/") {
		return "", fmt.Errorf("systemd cgroup path %q: unit %q holds a slash", p, unit)
	}
	return path.Join(parent, unit), nil
}

// ExpandSlice turns a systemd slice name into its path: every dash starts a
// nested slice, so "kubepods-burstable-pod1.slice" lives at
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice";
// "-.slice" is the root. (containerd/cgroups/v3 has this only unexported.)
func ExpandSlice(slice string) (string, error) {
	base, ok := strings.CutSuffix(slice, ".slice")
	switch {
	case !ok || strings.Contains(slice, "/"):
		return "", fmt.Errorf("%q is not a systemd slice name (name.slice, no slash)", slice)
	case slice == "-.slice":
		return "/", nil
	case base == "" || strings.HasPrefix(base, "-") || strings.HasSuffix(base, "-") || strings.Contains(base, "--"):
		return "", fmt.Errorf("invalid systemd slice name %q (empty part between dashes)", slice)
	}
	p := "/"
	for i := range len(base) {
		if base[i] == '-' {
			p = path.Join(p, base[:i]+".slice")
		}
	}
	return path.Join(p, slice), nil
}
