package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUState is what the kernel enforces for a container, read from its
// cgroup and its init process.
type CPUState struct {
	Mode        CgroupMode
	CgroupsPath string // from the OCI spec, relative to each hierarchy
	Pid         int
	Cpus        string // v1 cpuset.cpus; v2 cpuset.cpus.effective
	Mems        string // v1 cpuset.mems; v2 cpuset.mems.effective
	Quota       int64  // cfs quota in µs, -1 unlimited (v2 "max")
	Period      int64
	Shares      int64 // v1 cpu.shares; on v2 cpu.weight
	Stat        map[string]int64
	// CpusAllowed is Cpus_allowed_list of the init process.
	CpusAllowed string
}

// CPU reads the container's effective CPU settings. The container must be
// running (it needs the init pid).
func (c *Container) CPU(ctx context.Context) (*CPUState, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Spec == nil || st.Spec.Linux == nil || st.Spec.Linux.CgroupsPath == "" {
		return nil, fmt.Errorf("container %s: no cgroupsPath in verbose status", c.Name)
	}
	if st.Pid == 0 {
		return nil, fmt.Errorf("container %s: no pid (state %s)", c.Name, st.CRI.GetState())
	}
	s, err := ReadCPUState(st.Spec.Linux.CgroupsPath, st.Pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	return s, nil
}

// ReadCPUState reads the CPU files of a cgroup path (cgroupfs driver form,
// e.g. "/kubepods/burstable/pod<uid>/<id>") and, if pid > 0, its
// Cpus_allowed_list. Works for pod cgroups too (pid 0).
func ReadCPUState(cgroupsPath string, pid int) (*CPUState, error) {
	mode, err := DetectCgroupMode()
	if err != nil {
		return nil, err
	}
	s := &CPUState{Mode: mode, CgroupsPath: cgroupsPath, Pid: pid}
	read := func(ctrl, file string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = ReadCgroupFile(ctrl, cgroupsPath, file)
		return v
	}
	num := func(v string) int64 {
		if err != nil {
			return 0
		}
		if v == "max" {
			return -1
		}
		var n int64
		n, err = strconv.ParseInt(v, 10, 64)
		return n
	}
	if mode == CgroupV1 {
		s.Cpus = read("cpuset", "cpuset.cpus")
		s.Mems = read("cpuset", "cpuset.mems")
		s.Quota = num(read("cpu", "cpu.cfs_quota_us"))
		s.Period = num(read("cpu", "cpu.cfs_period_us"))
		s.Shares = num(read("cpu", "cpu.shares"))
	} else {
		s.Cpus = read("cpuset", "cpuset.cpus.effective")
		s.Mems = read("cpuset", "cpuset.mems.effective")
		if f := strings.Fields(read("cpu", "cpu.max")); len(f) == 2 {
			s.Quota, s.Period = num(f[0]), num(f[1])
		}
		s.Shares = num(read("cpu", "cpu.weight"))
	}
	stat := read("cpu", "cpu.stat")
	if err != nil {
		return nil, err
	}
	s.Stat = parseFlatKeyed(stat)
	if pid > 0 {
		if s.CpusAllowed, err = CpusAllowedList(pid); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CpusAllowedList reads Cpus_allowed_list from /proc/PID/status.
func CpusAllowedList(pid int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Cpus_allowed_list in /proc/%d/status", pid)
}

// parseFlatKeyed parses "key value" lines (cpu.stat).
func parseFlatKeyed(s string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			out[f[0]] = n
		}
	}
	return out
}
