package quota

import (
	"sort"

	"github.com/coreguard/coreguard/cgroups"
)

// Throttling is one container's CFS counters, named for people.
type Throttling struct {
	Namespace, Pod, Container string
	cgroups.Stat
}

// Throttling reads cpu.stat of every container coreguard knows, so admins
// see what quota did (or, once cleared, stopped doing). Containers whose
// cgroup cannot be read (gone, not started) are left out.
func (d *Duty) Throttling() []Throttling {
	if d.cg == nil {
		return nil
	}
	type target struct {
		t    Throttling
		path string
	}
	d.mu.Lock()
	var targets []target
	for _, c := range d.ctrs {
		p := d.pods[c.pod]
		if p == nil || c.cgroupsPath == "" {
			continue
		}
		targets = append(targets, target{Throttling{Namespace: p.namespace, Pod: p.name, Container: c.name}, c.cgroupsPath})
	}
	d.mu.Unlock()
	// Read outside the lock: file reads must not hold up container creation.
	var out []Throttling
	for _, tg := range targets {
		st, err := d.cg.ReadCPUStat(tg.path)
		if err != nil {
			continue
		}
		tg.t.Stat = st
		out = append(out, tg.t)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Container < b.Container
	})
	return out
}
