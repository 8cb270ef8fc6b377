package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ContainerStat is the throttling of one container-level cgroup.
type ContainerStat struct {
	PodUID      string `json:"podUID"`
	ContainerID string `json:"containerID"`
	Group       string `json:"cgroup"` // path inside the hierarchy
	Stat
}

// kubeRoots are where kubelet puts pods with its default cgroup root, for
// the cgroupfs and the systemd drivers.
var kubeRoots = []string{"/kubepods", "/kubepods.slice"}

// Containers finds container cgroups (the direct children of pod cgroups)
// under parent (a cgroup path in any form Group accepts), or under
// kubelet's /kubepods and /kubepods.slice when parent is empty, and reads
// their cpu.stat. The result is sorted most throttled first: by ratio,
// then by throttled time. Cgroups that vanish while walking are skipped.
func (h *Hierarchy) Containers(parent string) ([]ContainerStat, error) {
	roots := kubeRoots
	if parent != "" {
		g, err := Group(parent)
		if err != nil {
			return nil, err
		}
		if !exists(filepath.Join(h.CPUDir, filepath.FromSlash(g))) {
			return nil, fmt.Errorf("cgroup %s: %w", filepath.Join(h.CPUDir, filepath.FromSlash(g)), fs.ErrNotExist)
		}
		roots = []string{g}
	}
	var out []ContainerStat
	for _, r := range roots {
		found, err := h.walkPods(r)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	sortByThrottling(out)
	return out, nil
}

// walkPods descends from group to every pod cgroup and reads its children.
func (h *Hierarchy) walkPods(group string) ([]ContainerStat, error) {
	var out []ContainerStat
	top := filepath.Join(h.CPUDir, filepath.FromSlash(group))
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // no such root, or gone while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		uid, ok := podUID(d.Name())
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(h.CPUDir, p)
		if err != nil {
			return err
		}
		found, err := h.podContainers("/"+filepath.ToSlash(rel), uid)
		out = append(out, found...)
		if err != nil {
			return err
		}
		return filepath.SkipDir // containers are not pods
	})
	return out, err
}

// podContainers reads every container cgroup right under a pod cgroup.
func (h *Hierarchy) podContainers(podGroup, uid string) ([]ContainerStat, error) {
	entries, err := os.ReadDir(filepath.Join(h.CPUDir, filepath.FromSlash(podGroup)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []ContainerStat
	for _, e := range entries {
		id, ok := containerID(e.Name())
		if !e.IsDir() || !ok {
			continue
		}
		c := Cgroup{Group: path.Join(podGroup, e.Name()), Version: h.Version}
		c.Dir = filepath.Join(h.CPUDir, filepath.FromSlash(c.Group))
		s, err := c.CPUStat()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, ContainerStat{PodUID: uid, ContainerID: id, Group: c.Group, Stat: s})
	}
	return out, nil
}

// podUID recognises a pod cgroup: "pod<uid>" (cgroupfs) or
// "<qos path>-pod<uid>.slice" (systemd, where kubelet turned the UID's
// dashes into underscores; they are turned back).
func podUID(name string) (string, bool) {
	if uid, ok := strings.CutPrefix(name, "pod"); ok && uid != "" && !strings.Contains(uid, ".") {
		return uid, true
	}
	base, ok := strings.CutSuffix(name, ".slice")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(base, "-pod")
	if i < 0 || i+4 == len(base) {
		return "", false
	}
	return strings.ReplaceAll(base[i+4:], "_", "-"), true
}

// containerID takes the runtime's id from a container cgroup name:
// "<id>" (containerd, cgroupfs), "crio-<id>" (CRI-O, cgroupfs) or
// "<prefix>-<id>.scope" (systemd). CRI-O's conmon scopes are not
// containers.
func containerID(name string) (string, bool) {
	if strings.HasPrefix(name, "crio-conmon-") {
		return "", false
	}
	base := strings.TrimSuffix(name, ".scope")
	if i := strings.LastIndex(base, "-"); i >= 0 {
		base = base[i+1:]
	}
	return base, base != ""
}

func sortByThrottling(s []ContainerStat) {
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if ra, rb := a.Ratio(), b.Ratio(); ra != rb {
			return ra > rb
		}
		if a.ThrottledTime != b.ThrottledTime {
			return a.ThrottledTime > b.ThrottledTime
		}
		return a.Group < b.Group
	})
}
