package sysfsgen

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/coreguard/coreguard/cpuset"
)

// Write writes the sysfs tree of spec under dir, which then holds
// devices/system/cpu and devices/system/node like /sys does.
func Write(dir string, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	return writeLayout(dir, fromSpec(spec))
}

// treeWriter writes files under a root and keeps the first error, so the
// layout code reads as a list of files.
type treeWriter struct {
	root string
	err  error
	made map[string]bool // directories known to exist
}

func (w *treeWriter) mkdir(dir string) error {
	if w.made[dir] {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w.made[dir] = true
	return nil
}

func (w *treeWriter) file(content string, parts ...string) {
	if w.err != nil {
		return
	}
	path := filepath.Join(append([]string{w.root}, parts...)...)
	if w.err = w.mkdir(filepath.Dir(path)); w.err == nil {
		w.err = os.WriteFile(path, []byte(content+"\n"), 0o644)
	}
}

func (w *treeWriter) link(target string, parts ...string) {
	if w.err != nil {
		return
	}
	path := filepath.Join(append([]string{w.root}, parts...)...)
	if w.err = w.mkdir(filepath.Dir(path)); w.err == nil {
		w.err = os.Symlink(target, path)
	}
}

// sets holds the CPU lists the files show. The kernel lists only online
// CPUs in topology, cache and node files.
type sets struct {
	present, online      cpuset.CPUSet
	core, pkg, llc, node map[int]cpuset.CPUSet
	die                  map[[2]int]cpuset.CPUSet // (socket, die)
}

// groupBy collects the online CPUs of the layout by a key.
func groupBy[K comparable](l layout, key func(p place) (K, bool)) map[K]cpuset.CPUSet {
	builders := map[K]*cpuset.Builder{}
	for _, p := range l.places {
		k, ok := key(p)
		if !p.online || !ok {
			continue
		}
		if builders[k] == nil {
			builders[k] = &cpuset.Builder{}
		}
		builders[k].Add(p.cpu)
	}
	out := make(map[K]cpuset.CPUSet, len(builders))
	for k, b := range builders {
		out[k] = b.Set()
	}
	return out
}

func gather(l layout) sets {
	var present, online cpuset.Builder
	for _, p := range l.places {
		present.Add(p.cpu)
		if p.online {
			online.Add(p.cpu)
		}
	}
	s := sets{present: present.Set(), online: online.Set()}
	s.core = groupBy(l, func(p place) (int, bool) { return p.core, true })
	s.pkg = groupBy(l, func(p place) (int, bool) { return p.socket, true })
	s.llc = groupBy(l, func(p place) (int, bool) { return p.llc, true })
	s.node = groupBy(l, func(p place) (int, bool) { return p.node, p.node >= 0 })
	s.die = groupBy(l, func(p place) ([2]int, bool) { return [2]int{p.socket, p.die}, true })
	return s
}

func writeLayout(root string, l layout) error {
	w := &treeWriter{root: filepath.Join(root, "devices", "system"), made: map[string]bool{}}
	s := gather(l)
	w.file(s.online.String(), "cpu", "online")
	w.file(s.present.String(), "cpu", "present")
	w.file(s.present.String(), "cpu", "possible")
	w.file(s.present.Difference(s.online).String(), "cpu", "offline")
	w.file(l.isolated.String(), "cpu", "isolated")
	if l.smtControl != "" {
		w.file(l.smtControl, "cpu", "smt", "control")
	}
	for _, p := range l.places {
		writeCPU(w, l, s, p)
	}
	writeNodes(w, l, s)
	return w.err
}

// cache is one cpuN/cache/indexK folder.
type cache struct {
	level  int
	kind   string
	shared cpuset.CPUSet
	id     int // -1: no id file
}

func writeCPU(w *treeWriter, l layout, s sets, p place) {
	cpu := "cpu" + strconv.Itoa(p.cpu)
	w.file(map[bool]string{true: "1", false: "0"}[p.online], "cpu", cpu, "online")
	if p.node >= 0 {
		node := "node" + strconv.Itoa(p.node)
		w.link(filepath.Join("..", "..", "node", node), "cpu", cpu, node)
	}
	if !p.online {
		return // the kernel removes an offline CPU's topology and caches
	}
	topo := func(content string, name string) { w.file(content, "cpu", cpu, "topology", name) }
	topo(strconv.Itoa(p.socket), "physical_package_id")
	topo(strconv.Itoa(p.coreID), "core_id")
	topo(s.core[p.core].String(), "core_cpus_list")
	topo(s.core[p.core].String(), "thread_siblings_list")
	topo(s.pkg[p.socket].String(), "core_siblings_list")
	topo(s.pkg[p.socket].String(), "package_cpus_list")
	if !l.noDieID {
		topo(strconv.Itoa(p.die), "die_id")
		topo(s.die[[2]int{p.socket, p.die}].String(), "die_cpus_list")
	}
	// L1 and L2 are there so that readers meet the usual index0-2 before
	// the L3 in index3; only the files readers use are written, since
	// creating files is slow on disk-backed temp dirs.
	caches := []cache{
		{1, "Data", s.core[p.core], p.core},
		{1, "Instruction", s.core[p.core], p.core},
		{2, "Unified", s.core[p.core], p.core},
	}
	if !l.noL3 {
		caches = append(caches, cache{3, "Unified", s.llc[p.llc], l.llcIDs[p.llc]})
	}
	for i, c := range caches {
		index := "index" + strconv.Itoa(i)
		file := func(content, name string) { w.file(content, "cpu", cpu, "cache", index, name) }
		file(strconv.Itoa(c.level), "level")
		file(c.kind, "type")
		file(c.shared.String(), "shared_cpu_list")
		if l.cacheIDs && c.id >= 0 {
			file(strconv.Itoa(c.id), "id")
		}
	}
}

func writeNodes(w *treeWriter, l layout, s sets) {
	if len(l.nodeIDs) == 0 {
		return
	}
	var all, withCPU cpuset.Builder
	for _, id := range l.nodeIDs {
		all.Add(id)
		if !s.node[id].IsEmpty() {
			withCPU.Add(id)
		}
		w.file(s.node[id].String(), "node", "node"+strconv.Itoa(id), "cpulist")
	}
	// Like the kernel, a node links all its present CPUs, offline ones too.
	for _, p := range l.places {
		if p.node >= 0 {
			cpu := "cpu" + strconv.Itoa(p.cpu)
			w.link(filepath.Join("..", "..", "cpu", cpu), "node", "node"+strconv.Itoa(p.node), cpu)
		}
	}
	w.file(all.Set().String(), "node", "online")
	w.file(all.Set().String(), "node", "possible")
	w.file(withCPU.Set().String(), "node", "has_cpu")
}
