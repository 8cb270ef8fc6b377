package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupParentFor is kubelet's cgroupfs-driver pod cgroup: root/pod<uid>
// for Guaranteed, root/burstable/pod<uid>, root/besteffort/pod<uid>.
func CgroupParentFor(root string, qos QoS, uid string) string {
	switch qos {
	case Burstable:
		return root + "/burstable/pod" + uid
	case BestEffort:
		return root + "/besteffort/pod" + uid
	}
	return root + "/pod" + uid
}

// EnsurePodCgroup does what kubelet's pod container manager does before
// RunPodSandbox: create the QoS and pod cgroups in every hierarchy and write
// the pod-level limits. containerd/runc would only mkdir the path (with
// default, unlimited values) when the first container starts.
//
// Values, as kubelet: cpu.shares from the summed requests (2 for
// BestEffort; besteffort QoS cgroup 2 too), cpu.cfs_quota_us from the summed
// limits when every container has one, else -1; memory limit likewise.
func EnsurePodCgroup(root string, qos QoS, uid string, containers []Resources) error {
	parent := CgroupParentFor(root, qos, uid)
	mode, err := DetectCgroupMode()
	if err != nil {
		return err
	}
	for _, p := range prefixes(parent) {
		if err := mkCgroup(mode, p); err != nil {
			return err
		}
	}
	if qos == BestEffort {
		if err := writeCPU(mode, root+"/besteffort", MinShares, -1); err != nil {
			return err
		}
	}
	t := PodTotals(containers)
	shares, quota := MilliCPUToShares(t.CPURequest), int64(-1)
	if qos == BestEffort {
		shares = MinShares
	}
	if t.CPULimit != 0 {
		quota = MilliCPUToQuota(t.CPULimit, CFSPeriod)
	}
	if err := writeCPU(mode, parent, shares, quota); err != nil {
		return err
	}
	if t.MemLimit != 0 {
		ctrl, file := "memory", "memory.limit_in_bytes"
		if mode == CgroupV2 {
			file = "memory.max"
		}
		if err := writeCgroup(ctrl, parent, file, strconv.FormatInt(t.MemLimit, 10)); err != nil {
			return err
		}
	}
	return nil
}

// prefixes("/a/b/c") = ["/a", "/a/b", "/a/b/c"].
func prefixes(p string) []string {
	var out []string
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		out = append(out, "/"+strings.Join(parts[:i+1], "/"))
	}
	return out
}

func mkCgroup(mode CgroupMode, path string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if mode == CgroupV1 && h == cgV2 {
			continue // hybrid: kubelet's cgroupfs manager leaves the unified tree alone
		}
		d := filepath.Join(h, path)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		if mode == CgroupV2 {
			// Enable the controllers kubelet uses for the children.
			_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+cpu +cpuset +memory +pids"), 0)
		}
	}
	if mode == CgroupV1 {
		return inheritCpuset(path)
	}
	return nil
}

// inheritCpuset copies the parent's cpuset.cpus/mems into a new v1 cpuset
// cgroup: they start empty and an empty cpuset cannot hold tasks.
func inheritCpuset(path string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := ReadCgroupFile("cpuset", path, f)
		if err != nil || cur != "" {
			continue
		}
		v, err := ReadCgroupFile("cpuset", filepath.Dir(path), f)
		if err != nil {
			return err
		}
		if err := writeCgroup("cpuset", path, f, v); err != nil {
			return err
		}
	}
	return nil
}

func writeCPU(mode CgroupMode, path string, shares, quota int64) error {
	if mode == CgroupV2 {
		limit := "max"
		if quota > 0 {
			limit = strconv.FormatInt(quota, 10)
		}
		if err := writeCgroup("cpu", path, "cpu.max", fmt.Sprintf("%s %d", limit, CFSPeriod)); err != nil {
			return err
		}
		return writeCgroup("cpu", path, "cpu.weight", strconv.FormatInt(SharesToWeight(shares), 10))
	}
	if err := writeCgroup("cpu", path, "cpu.shares", strconv.FormatInt(shares, 10)); err != nil {
		return err
	}
	if err := writeCgroup("cpu", path, "cpu.cfs_period_us", strconv.Itoa(CFSPeriod)); err != nil {
		return err
	}
	return writeCgroup("cpu", path, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
}

// SharesToWeight is the v1 shares -> v2 cpu.weight mapping runc and kubelet use.
func SharesToWeight(shares int64) int64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

func writeCgroup(controller, path, file, value string) error {
	dir, err := CgroupDir(controller, path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(dir, file), err)
	}
	return nil
}
