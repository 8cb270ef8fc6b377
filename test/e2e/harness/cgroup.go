package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// CgroupMode is how this host's cgroups are mounted.
type CgroupMode int

const (
	// CgroupV1 includes hybrid hosts: controllers live in v1 hierarchies.
	CgroupV1 CgroupMode = 1
	// CgroupV2 is the unified hierarchy at /sys/fs/cgroup.
	CgroupV2 CgroupMode = 2
)

func (m CgroupMode) String() string {
	if m == CgroupV2 {
		return "v2"
	}
	return "v1"
}

const cgroupFS = "/sys/fs/cgroup"

var (
	cgOnce   sync.Once
	cgMode   CgroupMode
	cgMounts map[string]string // v1 controller (or "name=systemd") -> mount point
	cgV2     string            // unified mount point ("" if none)
	cgErr    error
)

func detectCgroups() {
	var st unix.Statfs_t
	if cgErr = unix.Statfs(cgroupFS, &st); cgErr != nil {
		return
	}
	cgMode = CgroupV1
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		cgMode = CgroupV2
	}
	mi, err := readMountInfo()
	if err != nil {
		cgErr = err
		return
	}
	cgMounts = map[string]string{}
	for _, m := range mi {
		switch m.FSType {
		case "cgroup2":
			if cgV2 == "" || m.MountPoint == cgroupFS {
				cgV2 = m.MountPoint
			}
		case "cgroup":
			// Super options name the controllers: "rw,cpu,cpuacct" or "rw,name=systemd".
			for _, o := range strings.Split(m.SuperOpts, ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent") && o != "clone_children" && o != "noprefix" {
					if _, dup := cgMounts[o]; !dup {
						cgMounts[o] = m.MountPoint
					}
				}
			}
		}
	}
}

// DetectCgroupMode reports v1 (or hybrid) versus unified v2.
func DetectCgroupMode() (CgroupMode, error) {
	cgOnce.Do(detectCgroups)
	return cgMode, cgErr
}

// CgroupDir is the directory of cgroup path (as in the OCI spec's
// cgroupsPath or a CgroupParent) for a v1 controller; on v2 the controller
// is ignored.
func CgroupDir(controller, path string) (string, error) {
	mode, err := DetectCgroupMode()
	if err != nil {
		return "", err
	}
	if mode == CgroupV2 {
		return filepath.Join(cgV2, path), nil
	}
	mp, ok := cgMounts[controller]
	if !ok {
		return "", fmt.Errorf("cgroup v1 controller %q is not mounted", controller)
	}
	return filepath.Join(mp, path), nil
}

// ReadCgroupFile returns the trimmed content of one cgroup file.
func ReadCgroupFile(controller, path, file string) (string, error) {
	dir, err := CgroupDir(controller, path)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return "", fmt.Errorf("read cgroup file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// cgroupHierarchies lists every mounted hierarchy once (v1 mounts and the
// v2 one), for creating or removing a path in all of them.
func cgroupHierarchies() ([]string, error) {
	if _, err := DetectCgroupMode(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, mp := range cgMounts {
		if !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	}
	if cgV2 != "" && !seen[cgV2] {
		out = append(out, cgV2)
	}
	return out, nil
}

// CgroupDirsOf lists the existing directories of path in all hierarchies.
func CgroupDirsOf(path string) ([]string, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hs {
		d := filepath.Join(h, path)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}
