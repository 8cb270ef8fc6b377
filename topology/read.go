package topology

import (
	"path/filepath"
)

// DefaultSysfsRoot is where the running kernel shows its sysfs.
const DefaultSysfsRoot = "/sys"

// Read reads the CPU topology under sysfsRoot, a directory laid out like
// /sys (it holds devices/system/cpu and, optionally, devices/system/node).
//
// Absent optional files fall back to what the kernel means by their
// absence: no die_id is one die per package, no cache information is one
// LLC group per socket, no node folders is one NUMA node, no isolated or
// smt/control file is none. Anything inconsistent or unparsable is an error
// naming the file and its value; Read never guesses.
func Read(sysfsRoot string) (*Topology, error) {
	cpuDir := filepath.Join(sysfsRoot, "devices", "system", "cpu")
	nodeDir := filepath.Join(sysfsRoot, "devices", "system", "node")

	t := &Topology{}
	if err := readCPUState(cpuDir, t); err != nil {
		return nil, err
	}
	threads, err := readThreads(cpuDir, t.Online)
	if err != nil {
		return nil, err
	}
	if t.Cores, err = groupCores(threads); err != nil {
		return nil, err
	}
	t.Sockets = groupSockets(t.Cores)
	t.Dies = groupDies(t.Cores)

	numa, err := readNUMA(nodeDir, t.Online)
	if err != nil {
		return nil, err
	}
	t.NUMANodes = numa.nodes
	llc, err := readLLCs(cpuDir, t.Online, t.Sockets)
	if err != nil {
		return nil, err
	}
	t.LLCs = llc.llcs
	if err := placeCores(t.Cores, numa.nodeOf, llc.llcOf, numa.source, llc.source); err != nil {
		return nil, err
	}
	if !numa.implicit {
		if err := checkNodeLinks(nodeDir, t.NUMANodes, t.Online); err != nil {
			return nil, err
		}
	}
	if err := t.Index(); err != nil {
		return nil, err
	}
	return t, nil
}
