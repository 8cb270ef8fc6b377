package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CPUSetDir is the root of the cpuset controller: <root>/cpuset on v1, the
// unified tree on v2.
func (h *Hierarchy) CPUSetDir() string {
	if h.Version == V2 {
		return h.CPUDir
	}
	return filepath.Join(h.Root, "cpuset")
}

// HasCPUSet reports whether the tree has a cpuset controller coreguard can
// write: v1's cpuset hierarchy, or cpuset among v2's root controllers.
func (h *Hierarchy) HasCPUSet() bool {
	if h.Version == V2 {
		return hasController(h.CPUDir, "cpuset")
	}
	return exists(filepath.Join(h.CPUSetDir(), "cpuset.cpus"))
}

// CPUs reads a container's cpuset.cpus (cgroupsPath as for SetCPUs): what
// the kernel enforces, whatever the runtime's stored copy says.
func (h *Hierarchy) CPUs(cgroupsPath string) (string, error) {
	file, err := h.cpusetFile(cgroupsPath)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (h *Hierarchy) cpusetFile(cgroupsPath string) (string, error) {
	g, err := Group(cgroupsPath)
	if err != nil {
		return "", err
	}
	return filepath.Join(h.CPUSetDir(), filepath.FromSlash(g), "cpuset.cpus"), nil
}

// SetCPUs writes a container's cpuset.cpus, given its cgroupsPath as the
// runtime has it (NRI's Linux.CgroupsPath, any form Group takes). It is
// one open and one write: it runs on the container-creation path, once per
// shared container, when a pinning shrinks the shared pool (config
// sharedPoolUpdates: cgroup-first). A container whose cgroup is not there
// (still being created, or gone) reads as fs.ErrNotExist; one whose cgroup
// has no cpuset.cpus is an error of its own.
func (h *Hierarchy) SetCPUs(cgroupsPath, cpus string) error {
	file, err := h.cpusetFile(cgroupsPath)
	if err != nil {
		return err
	}
	// No O_CREATE: a missing cgroup must fail, not be made.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && exists(filepath.Dir(file)) {
			// The cgroup is there without the file: on v2, cpuset is not
			// enabled for it. Not "gone": the caller must move it otherwise.
			return fmt.Errorf("%s has no cpuset.cpus: the cpuset controller is not enabled for it", filepath.Dir(file))
		}
		return err
	}
	_, err = f.WriteString(cpus)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", cpus, file, err)
	}
	return nil
}
