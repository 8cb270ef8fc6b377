package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/coreguard/coreguard/cpuset"
)

// numaInfo is the NUMA layout of the online CPUs.
type numaInfo struct {
	nodes    []NUMANode
	nodeOf   map[int]int // online CPU -> node ID
	implicit bool        // no node/nodeN folders: one node 0 holds all
	source   string      // the node folder, for error messages
}

// readNUMA reads node/nodeN/cpulist. Nodes without online CPUs (memory-only,
// CXL, offline) are left out. Every online CPU must be in exactly one node.
func readNUMA(nodeDir string, online cpuset.CPUSet) (numaInfo, error) {
	info := numaInfo{nodeOf: make(map[int]int, online.Size()), source: nodeDir}
	ids, err := nodeIDs(nodeDir)
	if err != nil {
		return info, err
	}
	if len(ids) == 0 {
		info.implicit = true
		info.nodes = []NUMANode{{ID: 0, CPUs: online}}
		for cpu := range online.All() {
			info.nodeOf[cpu] = 0
		}
		return info, nil
	}
	var seen cpuset.Builder
	for _, id := range ids {
		path := filepath.Join(nodeDir, "node"+strconv.Itoa(id), "cpulist")
		list, err := readList(path)
		if errors.Is(err, errAbsent) {
			return info, fileError(path, "missing")
		} else if err != nil {
			return info, err
		}
		cpus := list.Intersection(online)
		if cpus.IsEmpty() {
			continue
		}
		for cpu := range cpus.All() {
			if prev, dup := info.nodeOf[cpu]; dup {
				return info, fileError(path, "%q puts CPU %d in a second node (it is in node%d)", list, cpu, prev)
			}
			info.nodeOf[cpu] = id
		}
		seen.AddSet(cpus)
		info.nodes = append(info.nodes, NUMANode{ID: id, CPUs: cpus})
	}
	if missing := online.Difference(seen.Set()); !missing.IsEmpty() {
		return info, fileError(nodeDir, "online CPUs %s are in no node's cpulist", missing)
	}
	return info, nil
}

// checkNodeLinks confirms each node's cpulist against the cpuN links in
// its folder, online CPUs only (the kernel links offline CPUs too). One
// ReadDir per node keeps it cheap on large machines. A node folder without
// cpuN links (some snapshots) is not checked. ghwcheck_test.go confirms the
// same with ghw.
func checkNodeLinks(nodeDir string, nodes []NUMANode, online cpuset.CPUSet) error {
	for _, n := range nodes {
		dir := filepath.Join(nodeDir, "node"+strconv.Itoa(n.ID))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		var linked cpuset.Builder
		for _, e := range entries {
			if cpu, ok := numberedName(e.Name(), "cpu"); ok && cpu < cpuset.MaxCPUs {
				linked.Add(cpu)
			}
		}
		seen := linked.Set().Intersection(online)
		if !seen.IsEmpty() && !seen.Equals(n.CPUs) {
			return fileError(filepath.Join(dir, "cpulist"),
				"online CPUs %q disagree with the node's cpuN links %q", n.CPUs, seen)
		}
	}
	return nil
}

// nodeIDs lists the nodeN folders in ID order; none when node/ is absent.
func nodeIDs(nodeDir string) ([]int, error) {
	entries, err := os.ReadDir(nodeDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var ids []int
	for _, e := range entries {
		if n, ok := numberedName(e.Name(), "node"); ok {
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
