package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stat is a cgroup's CFS bandwidth counters from cpu.stat, for `coreguard
// throttle`: what kubelet's cAdvisor exports as
// container_cpu_cfs_periods_total,
// container_cpu_cfs_throttled_periods_total and
// container_cpu_cfs_throttled_seconds_total (coreguard's metrics do not
// repeat them: docs/metrics.md). They count only throttling by this
// cgroup's own quota; a container held back by its pod's quota shows it in
// the pod cgroup's cpu.stat.
type Stat struct {
	Periods       uint64        // nr_periods: enforcement periods with runnable tasks
	Throttled     uint64        // nr_throttled: periods in which the quota ran out
	ThrottledTime time.Duration // v1 throttled_time (ns), v2 throttled_usec
}

// Ratio is the share of periods that were throttled, 0 to 1.
func (s Stat) Ratio() float64 {
	if s.Periods == 0 {
		return 0
	}
	return float64(s.Throttled) / float64(s.Periods)
}

// ReadCPUStat reads the throttling counters of a cgroup given as a kubelet
// or runtime cgroup path (see Group). A cgroup that is gone gives an error
// matching fs.ErrNotExist.
func (h *Hierarchy) ReadCPUStat(cgroupPath string) (Stat, error) {
	c, err := h.Resolve(cgroupPath)
	if err != nil {
		return Stat{}, err
	}
	return c.CPUStat()
}

// ReadCPUStat is Hierarchy.ReadCPUStat on the host's hierarchy.
func ReadCPUStat(cgroupPath string) (Stat, error) {
	h, err := Host()
	if err != nil {
		return Stat{}, err
	}
	return h.ReadCPUStat(cgroupPath)
}

// CPUStat reads the cgroup's cpu.stat. On v1 it is the cpu controller's
// file (cpuacct may be mounted apart). A cpu.stat without bandwidth
// counters (v2 with the cpu controller not enabled by the parent, or a
// kernel without CONFIG_CFS_BANDWIDTH) reads as zeros.
func (c Cgroup) CPUStat() (Stat, error) {
	file := filepath.Join(c.Dir, "cpu.stat")
	b, err := os.ReadFile(file)
	if err != nil {
		return Stat{}, err
	}
	s, err := parseCPUStat(b, c.Version)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}

// parseCPUStat reads "key value" lines; unknown keys (usage_usec,
// nr_bursts, burst_time, ...) are skipped.
func parseCPUStat(b []byte, v Version) (Stat, error) {
	var s Stat
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		var dst *uint64
		var unit time.Duration
		switch {
		case key == "nr_periods":
			dst = &s.Periods
		case key == "nr_throttled":
			dst = &s.Throttled
		case key == "throttled_time" && v == V1:
			unit = time.Nanosecond
		case key == "throttled_usec" && v == V2:
			unit = time.Microsecond
		default:
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("%s: %w", key, err)
		}
		if dst != nil {
			*dst = n
		} else {
			s.ThrottledTime = time.Duration(n) * unit
		}
	}
	return s, sc.Err()
}
