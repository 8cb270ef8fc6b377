package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// machineTopology picks the sysfs root coreguard runs on. Pinning must
// name CPUs this machine has (runc cannot apply a cpuset with CPUs the
// kernel lacks), so a simulated tree has exactly this machine's CPU count.
// It returns the root and a sentence saying what it is.
func machineTopology(tmp string) (root, what string, err error) {
	if t, err := topology.Read("/sys"); err == nil && t.ThreadsPerCore() > 1 && t.Online.Size() >= 4 {
		return "/sys", fmt.Sprintf("this machine's own /sys (%d CPUs, %d threads per core)", t.Online.Size(), t.ThreadsPerCore()), nil
	}
	n := runtime.NumCPU()
	spec, name := sysfsgen.Spec{CoresPerSocket: max(n/2, 1), ThreadsPerCore: 2, Numbering: sysfsgen.Linear, SMTControl: "on"},
		fmt.Sprintf("%d cores x 2 threads, siblings adjacent", max(n/2, 1))
	if n == 2 {
		spec, name = sysfsgen.Shapes()[sysfsgen.TwoCPUsOneCore], sysfsgen.TwoCPUsOneCore+": one core with threads 0 and 1"
	}
	root = filepath.Join(tmp, "sysfs")
	if err := sysfsgen.Write(root, spec); err != nil {
		return "", "", err
	}
	what = fmt.Sprintf("SIMULATED: a generated sysfs tree (%s) given to coreguard with --sysfs-root;\n"+
		"  this machine has %d CPUs without usable SMT. containerd, runc, the containers and every cgroup\n"+
		"  file below are real; only the core layout is invented, over CPU numbers this machine has.", name, n)
	return root, what, nil
}

// bigTopology writes the 80-CPU two-socket tree for the dry-run contrast.
func bigTopology(tmp string) (string, error) {
	root := filepath.Join(tmp, "intel-2s-ht")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	return root, sysfsgen.Write(root, sysfsgen.Shapes()[sysfsgen.IntelHT2S])
}
