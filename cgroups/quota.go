package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Unlimited is the quota of a cgroup without CFS bandwidth limit (v1 -1,
// v2 "max").
const Unlimited int64 = -1

// ClearPodQuota lifts the CFS quota kubelet sets on a pod's own cgroup,
// which NRI cannot adjust (it changes containers only). podCgroupParent is
// the pod's CgroupParent in either driver's form (see Group). v1 writes
// cpu.cfs_quota_us = -1, always allowed (v1 refuses only a parent quota
// below a child's); v2 writes cpu.max "max <period>", keeping the period.
// Clearing an unlimited cgroup changes nothing. A pod whose cgroup is gone
// gives an error matching fs.ErrNotExist.
func (h *Hierarchy) ClearPodQuota(podCgroupParent string) error {
	c, err := h.existing(podCgroupParent)
	if err != nil {
		return err
	}
	quota, period, err := c.quota()
	if err != nil {
		return err
	}
	if quota == Unlimited {
		return nil
	}
	if h.Version == V2 {
		return h.clearV2(c, period)
	}
	return h.clearV1(c)
}

// PodQuota reads back a pod cgroup's CFS quota and period in
// microseconds; quota is Unlimited when there is none.
func (h *Hierarchy) PodQuota(podCgroupParent string) (quota, period int64, err error) {
	c, err := h.existing(podCgroupParent)
	if err != nil {
		return 0, 0, err
	}
	return c.quota()
}

// PodQuota is Hierarchy.PodQuota on the host's hierarchy.
func PodQuota(podCgroupParent string) (quota, period int64, err error) {
	h, err := Host()
	if err != nil {
		return 0, 0, err
	}
	return h.PodQuota(podCgroupParent)
}

// existing resolves a cgroup path and checks the cgroup is there, so a
// vanished pod reads as fs.ErrNotExist rather than as a write failure.
func (h *Hierarchy) existing(cgroupPath string) (Cgroup, error) {
	c, err := h.Resolve(cgroupPath)
	if err != nil {
		return Cgroup{}, err
	}
	if fi, err := os.Stat(c.Dir); err != nil {
		return Cgroup{}, fmt.Errorf("cgroup %s (%s): %w", c.Dir, cgroupPath, err)
	} else if !fi.IsDir() {
		return Cgroup{}, fmt.Errorf("cgroup %s (%s) is not a directory", c.Dir, cgroupPath)
	}
	return c, nil
}

// clearV1 goes through containerd's cgroup1 with only the cpu controller
// and only Quota set: its cpu controller writes just cpu.cfs_quota_us.
// cgroup1 addresses the controller as <root>/cpu; a host with only a
// "cpu,cpuacct" directory (no cpu symlink) gets the same single write.
func (h *Hierarchy) clearV1(c Cgroup) error {
	const what = "cpu.cfs_quota_us = -1"
	if filepath.Base(h.CPUDir) != "cpu" {
		if err := os.WriteFile(filepath.Join(c.Dir, "cpu.cfs_quota_us"), []byte("-1"), 0o644); err != nil {
			return fmt.Errorf("write %s in %s: %w", what, c.Dir, err)
		}
		return nil
	}
	cpuOnly := func() ([]cgroup1.Subsystem, error) {
		return []cgroup1.Subsystem{cgroup1.NewCpu(filepath.Dir(h.CPUDir))}, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(c.Group), cgroup1.WithHierarchy(cpuOnly))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		err = fmt.Errorf("%w (%w)", fs.ErrNotExist, err)
	}
	if err != nil {
		return fmt.Errorf("load cgroup %s to write %s: %w", c.Dir, what, err)
	}
	unlimited := Unlimited
	if err := cg.Update(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &unlimited}}); err != nil {
		return fmt.Errorf("write %s in %s: %w", what, c.Dir, err)
	}
	return nil
}

// clearV2 writes cpu.max through containerd's cgroup2 manager; only CPU.Max
// is set, so nothing else is written.
func (h *Hierarchy) clearV2(c Cgroup, period int64) error {
	p := uint64(period)
	cpuMax := cgroup2.NewCPUMax(nil, &p)
	m, err := cgroup2.Load(c.Group, cgroup2.WithMountpoint(h.CPUDir))
	if err == nil {
		err = m.Update(&cgroup2.Resources{CPU: &cgroup2.CPU{Max: cpuMax}})
	}
	if err != nil {
		return fmt.Errorf("write cpu.max = %q in %s: %w", cpuMax, c.Dir, err)
	}
	return nil
}

// quota reads a cgroup's CFS quota and period (µs).
func (c Cgroup) quota() (quota, period int64, err error) {
	if c.Version == V2 {
		return c.readCPUMax()
	}
	if quota, err = readInt(filepath.Join(c.Dir, "cpu.cfs_quota_us")); err != nil {
		return 0, 0, err
	}
	if period, err = readInt(filepath.Join(c.Dir, "cpu.cfs_period_us")); err != nil {
		return 0, 0, err
	}
	if quota < 0 {
		quota = Unlimited
	}
	return quota, period, nil
}

// readCPUMax parses v2 cpu.max: "<quota|max> <period>".
func (c Cgroup) readCPUMax() (quota, period int64, err error) {
	file := filepath.Join(c.Dir, "cpu.max")
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s: %q is not \"<quota|max> <period>\"", file, strings.TrimSpace(string(b)))
	}
	if period, err = strconv.ParseInt(f[1], 10, 64); err != nil || period <= 0 {
		return 0, 0, fmt.Errorf("%s: bad period %q", file, f[1])
	}
	if f[0] == "max" {
		return Unlimited, period, nil
	}
	if quota, err = strconv.ParseInt(f[0], 10, 64); err != nil || quota <= 0 {
		return 0, 0, fmt.Errorf("%s: bad quota %q", file, f[0])
	}
	return quota, period, nil
}

func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return n, nil
}
