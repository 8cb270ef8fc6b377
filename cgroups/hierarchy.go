package cgroups

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	cgv3 "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where the host's cgroup hierarchies are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// Version is the cgroup version that holds the cpu controller.
type Version int

// The cgroup versions.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string { return fmt.Sprintf("v%d", int(v)) }

// Hierarchy is the cgroup tree that holds the cpu controller.
type Hierarchy struct {
	Root    string  // the directory given to Open
	Version Version // V1: separate controller mounts; V2: the unified tree
	// CPUDir is the root of the cpu controller: <root>/cpu (or cpu,cpuacct)
	// on v1, the unified mount on v2. Groups are joined to it.
	CPUDir string
}

// v1CPUDirs are the names the v1 cpu controller is mounted under: alone
// (this CI machine) or co-mounted with cpuacct (most distributions, which
// also add a "cpu" symlink).
var v1CPUDirs = []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"}

// Open finds the cpu controller under root. A real cgroup2 mount, or a
// directory with cgroup.controllers (a v2 fixture tree), is v2; a root with
// a cpu controller directory is v1. On a hybrid host the v1 cpu controller
// wins unless only the unified tree offers cpu.
func Open(root string) (*Hierarchy, error) {
	root = filepath.Clean(root)
	if unified(root) {
		return &Hierarchy{Root: root, Version: V2, CPUDir: root}, nil
	}
	for _, name := range v1CPUDirs {
		dir := filepath.Join(root, name)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return &Hierarchy{Root: root, Version: V1, CPUDir: dir}, nil
		}
	}
	if exists(filepath.Join(root, "cgroup.controllers")) {
		return &Hierarchy{Root: root, Version: V2, CPUDir: root}, nil
	}
	if u := filepath.Join(root, "unified"); unified(u) && hasController(u, "cpu") {
		return &Hierarchy{Root: root, Version: V2, CPUDir: u}, nil
	}
	return nil, fmt.Errorf("no cpu cgroup controller under %s (neither a cgroup2 mount nor a v1 cpu directory): %w", root, fs.ErrNotExist)
}

// unified reports whether dir is a cgroup2 mount. For the host's own root
// it asks containerd's cgroups.Mode, which is what the runtime decides by.
func unified(dir string) bool {
	if dir == DefaultRoot {
		return cgv3.Mode() == cgv3.Unified
	}
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func hasController(dir, name string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	for _, c := range strings.Fields(string(b)) {
		if c == name {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// host is the hierarchy at DefaultRoot, found once: mounts do not move
// under a running plugin.
var host = sync.OnceValues(func() (*Hierarchy, error) { return Open(DefaultRoot) })

// Host returns the host's hierarchy (at DefaultRoot).
func Host() (*Hierarchy, error) { return host() }
