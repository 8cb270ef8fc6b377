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

// l3Entry is what one online CPU's level-3 cache folder says.
type l3Entry struct {
	cpu      int
	dir      string // cpuN/cache/indexK, "" when the CPU shows no L3
	shared   cpuset.CPUSet
	text     string // shared_cpu_list as read
	id       int    // -1 when the id file is absent
	idSource string
}

// llcInfo is the last-level-cache grouping of the online CPUs.
type llcInfo struct {
	llcs   []LLC
	llcOf  map[int]int // online CPU -> LLC index
	source string
}

// readLLCs groups online CPUs by the level-3 cache they share. Without any
// L3 information each socket is one implicit group (as kubelet assumes);
// L3 information for some CPUs but not others is an error.
func readLLCs(cpuDir string, online cpuset.CPUSet, sockets []Socket) (llcInfo, error) {
	info := llcInfo{llcOf: make(map[int]int, online.Size()), source: cpuDir}
	entries := make([]l3Entry, 0, online.Size())
	var with, without []int
	for cpu := range online.All() {
		e, err := readL3(filepath.Join(cpuDir, "cpu"+strconv.Itoa(cpu), "cache"), cpu, online)
		if err != nil {
			return info, err
		}
		if e.dir == "" {
			without = append(without, cpu)
		} else {
			with = append(with, cpu)
		}
		entries = append(entries, e)
	}
	switch {
	case len(with) == 0:
		for i, s := range sockets {
			info.llcs = append(info.llcs, LLC{Index: i, ID: -1, CPUs: s.CPUs, Implicit: true})
			for cpu := range s.CPUs.All() {
				info.llcOf[cpu] = i
			}
		}
		return info, nil
	case len(without) > 0:
		return info, fileError(filepath.Join(cpuDir, fmt.Sprintf("cpu%d", without[0]), "cache"),
			"CPU %d shows no level-3 cache while CPU %d does", without[0], with[0])
	}
	return groupL3(entries, info)
}

// groupL3 makes one group per distinct shared_cpu_list, checking that all
// members agree on the list and on the cache id.
func groupL3(entries []l3Entry, info llcInfo) (llcInfo, error) {
	byCPU := make(map[int]*l3Entry, len(entries))
	for i := range entries {
		byCPU[entries[i].cpu] = &entries[i]
	}
	groupOfID := map[int]int{}
	for i := range entries {
		e := &entries[i]
		if idx, seen := info.llcOf[e.cpu]; seen {
			g := info.llcs[idx]
			owner := byCPU[g.CPUs.Min()]
			switch {
			case !e.shared.Equals(g.CPUs):
				return info, fileError(filepath.Join(e.dir, "shared_cpu_list"), "%q disagrees with cpu%d's %q",
					e.text, owner.cpu, owner.text)
			case e.id != g.ID:
				return info, fileError(e.idSource, "cache id %d disagrees with cpu%d's id %d", e.id, owner.cpu, g.ID)
			}
			continue
		}
		idx := len(info.llcs)
		for m := range e.shared.All() {
			if other, taken := info.llcOf[m]; taken {
				owner := byCPU[info.llcs[other].CPUs.Min()]
				return info, fileError(filepath.Join(e.dir, "shared_cpu_list"),
					"%q puts CPU %d in a second L3 group (cpu%d's %q)", e.text, m, owner.cpu, owner.text)
			}
			info.llcOf[m] = idx
		}
		if e.id >= 0 {
			if other, dup := groupOfID[e.id]; dup {
				return info, fileError(e.idSource, "cache id %d is also the id of L3 group %s", e.id, info.llcs[other].CPUs)
			}
			groupOfID[e.id] = idx
		}
		info.llcs = append(info.llcs, LLC{Index: idx, ID: e.id, CPUs: e.shared})
	}
	return info, nil
}

// readL3 finds the CPU's level-3 cache folder. index3 is the usual place
// (L1d, L1i, L2, L3), so it is tried first to spare reading every level.
func readL3(cacheDir string, cpu int, online cpuset.CPUSet) (l3Entry, error) {
	e := l3Entry{cpu: cpu, id: -1}
	dir, err := findL3(cacheDir)
	if err != nil || dir == "" {
		return e, err
	}
	e.dir = dir
	listFile := filepath.Join(dir, "shared_cpu_list")
	if e.text, err = readText(listFile); errors.Is(err, errAbsent) {
		return e, fileError(listFile, "missing")
	} else if err != nil {
		return e, err
	}
	set, perr := cpuset.Parse(e.text)
	if perr != nil {
		return e, fileError(listFile, "%q is not a CPU list: %v", e.text, perr)
	}
	if !set.Contains(cpu) {
		return e, fileError(listFile, "%q does not contain CPU %d itself", e.text, cpu)
	}
	e.shared = set.Intersection(online)
	e.idSource = filepath.Join(dir, "id")
	if e.id, err = readInt(e.idSource); errors.Is(err, errAbsent) {
		e.id = -1
	} else if err != nil {
		return e, err
	}
	return e, nil
}

func findL3(cacheDir string) (string, error) {
	if level, err := readText(filepath.Join(cacheDir, "index3", "level")); err == nil && level == "3" {
		return filepath.Join(cacheDir, "index3"), nil
	}
	entries, err := os.ReadDir(cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("topology: %w", err)
	}
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), "index") {
			continue
		}
		path := filepath.Join(cacheDir, ent.Name(), "level")
		level, err := readText(path)
		if ok, err := optional(err); err != nil {
			return "", err
		} else if !ok {
			continue
		}
		if _, perr := strconv.Atoi(level); perr != nil {
			return "", fileError(path, "%q is not a cache level", level)
		}
		if level == "3" {
			return filepath.Join(cacheDir, ent.Name()), nil
		}
	}
	return "", nil
}
