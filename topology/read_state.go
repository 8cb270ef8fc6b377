package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
)

// cpuDirs lists the CPU numbers that have a cpuN folder.
func cpuDirs(cpuDir string) (cpuset.CPUSet, error) {
	entries, err := os.ReadDir(cpuDir)
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("topology: %w", err)
	}
	var b cpuset.Builder
	for _, e := range entries {
		n, ok := numberedName(e.Name(), "cpu")
		if !ok {
			continue
		}
		if n >= cpuset.MaxCPUs {
			return cpuset.CPUSet{}, fileError(filepath.Join(cpuDir, e.Name()), "CPU number %d is out of range", n)
		}
		b.Add(n)
	}
	return b.Set(), nil
}

// numberedName parses names like "cpu12" or "node3"; false for "cpufreq".
func numberedName(name, prefix string) (int, bool) {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok || digits == "" || strings.TrimLeft(digits, "0123456789") != "" || len(digits) > 6 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// readCPUState fills Online, Offline, Isolated and SMTControl.
func readCPUState(cpuDir string, t *Topology) error {
	dirs, err := cpuDirs(cpuDir)
	if err != nil {
		return err
	}
	if t.Online, err = readOnline(cpuDir, dirs); err != nil {
		return err
	}
	if t.Online.IsEmpty() {
		return fileError(filepath.Join(cpuDir, "online"), "no online CPUs")
	}
	if t.Offline, err = readOffline(cpuDir, dirs, t.Online); err != nil {
		return err
	}
	// Isolated CPUs that are offline cannot run anything: the model keeps
	// Isolated within Online.
	isolated, err := readList(filepath.Join(cpuDir, "isolated"))
	if _, err := optional(err); err != nil {
		return err
	}
	t.Isolated = isolated.Intersection(t.Online)
	smt, err := readText(filepath.Join(cpuDir, "smt", "control"))
	if _, err := optional(err); err != nil {
		return err
	}
	t.SMTControl = smt
	return nil
}

// readOnline reads cpu/online. Old snapshots lack it; then a CPU is online
// when its cpuN/online file says 1 or is absent (cpu0 often has none).
func readOnline(cpuDir string, dirs cpuset.CPUSet) (cpuset.CPUSet, error) {
	online, err := readList(filepath.Join(cpuDir, "online"))
	if ok, err := optional(err); ok || err != nil {
		return online, err
	}
	var b cpuset.Builder
	for cpu := range dirs.All() {
		path := filepath.Join(cpuDir, "cpu"+strconv.Itoa(cpu), "online")
		s, err := readText(path)
		switch ok, err := optional(err); {
		case err != nil:
			return cpuset.CPUSet{}, err
		case !ok || s == "1":
			b.Add(cpu)
		case s != "0":
			return cpuset.CPUSet{}, fileError(path, "%q is neither 0 nor 1", s)
		}
	}
	return b.Set(), nil
}

// readOffline returns present CPUs that are not online. cpu/offline is the
// fallback only: it also counts possible-but-absent CPUs (a VM's hotplug
// slots, CPUs beyond kernel_max), which are not CPUs of this machine.
func readOffline(cpuDir string, dirs, online cpuset.CPUSet) (cpuset.CPUSet, error) {
	for _, name := range []string{"present", "offline"} {
		set, err := readList(filepath.Join(cpuDir, name))
		if ok, err := optional(err); err != nil {
			return cpuset.CPUSet{}, err
		} else if ok {
			return set.Difference(online), nil
		}
	}
	return dirs.Difference(online), nil
}

// missingTopology explains an absent topology file of an online CPU: the
// kernel removes the whole folder only for offline CPUs.
func missingTopology(path string, cpu int) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fileError(dir, "CPU %d is online but has no topology folder", cpu)
	}
	return fileError(path, "missing")
}
