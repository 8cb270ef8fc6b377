package plugin_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// cpusetCgroups plays the cgroup tree for sharedPoolUpdates: cgroup-first:
// each container's cpuset.cpus as coreguard wrote it. Pod quotas are not
// its concern.
type cpusetCgroups struct {
	mu     sync.Mutex
	cpus   map[string]string // cgroupsPath → cpuset.cpus
	writes int
	delay  time.Duration // each write takes this long (a loaded kernel)
}

func newCpusetCgroups() *cpusetCgroups { return &cpusetCgroups{cpus: map[string]string{}} }

func (*cpusetCgroups) ClearPodQuota(string) error { return fs.ErrNotExist }
func (*cpusetCgroups) PodQuota(string) (int64, int64, error) {
	return 0, 0, fs.ErrNotExist
}

func (f *cpusetCgroups) SetCPUs(path, cpus string) error {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cpus[path] = cpus
	f.writes++
	return nil
}

func (f *cpusetCgroups) CPUs(path string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cpus, ok := f.cpus[path]
	if !ok {
		return "", fs.ErrNotExist // never written: the runtime's copy holds
	}
	return cpus, nil
}

func (f *cpusetCgroups) of(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cpus[path]
}

// cgroupOf is a container's cgroupsPath as the runtime has it.
func (h *harness) cgroupOf(id string) string {
	for _, c := range h.rt.Containers() {
		if c.Id == id {
			return c.GetLinux().GetCgroupsPath()
		}
	}
	h.t.Fatalf("no container %s", id)
	return ""
}

// With cgroup-first, the shared containers' cgroups hold the new pool when
// the pinned container starts: coreguard writes them after it answered
// the creation, and the start (NRI's StartContainer) waits for the writes.
// The runtime is sent no update for them: its view keeps the cpuset they
// were created with. The release grows them back right after the stop.
func TestSharedPoolCgroupFirst(t *testing.T) {
	cg := newCpusetCgroups()
	cg.delay = 5 * time.Millisecond // the start must wait for 10 slow writes
	h := newHarnessWith(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nsharedPoolUpdates: cgroup-first", plugin.Options{Cgroups: cg})
	var bg []string
	for i := range 10 {
		bg = append(bg, h.create(h.rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("bg", i), QoS: "burstable"}), "bg", burstable))
	}
	if cg.writes != 0 {
		t.Fatalf("%d cgroup writes before any pinning", cg.writes)
	}
	id := h.create(h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"}), "app", guaranteed(4))
	if got := h.cpus(id).String(); got != "1-2,41-42" {
		t.Fatalf("pinned on %s", got)
	}
	for _, b := range bg {
		if got := cg.of(h.cgroupOf(b)); got != "0,3-40,43-79" {
			t.Errorf("shared container %s's cgroup holds %q when the pinning returned, want 0,3-40,43-79", b, got)
		}
	}
	h.checkCgroups(cg)
	for _, b := range bg {
		if got := h.cpus(b).String(); got != "0-79" {
			t.Errorf("the runtime was sent an update for %s: its view is %s", b, got)
		}
	}
	h.rt.Stop(id)
	// The grown pool is written right after the stop's answer.
	for _, b := range bg {
		deadline := time.Now().Add(syncTimeout)
		for cg.of(h.cgroupOf(b)) != "0-79" && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := cg.of(h.cgroupOf(b)); got != "0-79" {
			t.Errorf("shared container %s's cgroup holds %q after the stop, want 0-79", b, got)
		}
	}
	h.rt.Remove(id)
	h.checkCgroups(cg)
}

// TestCgroupFirstChurn: containers of every kind created (and started)
// and removed at random, with plugin restarts; after every step no shared
// container's cgroup (as coreguard wrote it, or as created) holds a CPU a
// pinned container holds.
func TestCgroupFirstChurn(t *testing.T) {
	cg := newCpusetCgroups()
	h := newHarnessWith(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nonExhaustion: shared\nsharedPoolUpdates: cgroup-first", plugin.Options{Cgroups: cg})
	rng := rand.New(rand.NewPCG(11, 3))
	var live []string
	steps := 300
	if testing.Short() {
		steps = 60
	}
	for i := range steps {
		switch r := rng.IntN(20); {
		case r == 0:
			h.restartPlugin()
		case r < 11 || len(live) == 0:
			qos := []string{"guaranteed", "guaranteed", "burstable", "besteffort"}[rng.IntN(4)]
			res := guaranteed(int64(1 + rng.IntN(9)))
			if qos != "guaranteed" {
				res = burstable
			}
			live = append(live, h.create(h.rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("p", i), QoS: qos}), fmt.Sprint("c", i), res))
		default:
			k := rng.IntN(len(live))
			h.rt.Stop(live[k])
			h.rt.Remove(live[k])
			live = append(live[:k], live[k+1:]...)
		}
		h.checkCgroups(cg)
	}
}

// checkCgroups: every running shared container's cgroup cpuset (what
// coreguard wrote, else what it was created with) is off every pinned CPU,
// and every pinned container runs on what coreguard holds for it.
func (h *harness) checkCgroups(cg *cpusetCgroups) {
	h.t.Helper()
	held := h.plugin.Holdings()
	var pinned cpuset.Builder
	for _, cpus := range held {
		pinned.AddSet(cpus)
	}
	exclusive := pinned.Set()
	for _, c := range h.rt.Containers() {
		if c.State != api.ContainerState_CONTAINER_RUNNING {
			continue
		}
		if mine, ok := held[c.Id]; ok {
			if got := c.GetLinux().GetResources().GetCpu().GetCpus(); got != mine.String() {
				h.t.Fatalf("pinned container %s runs on %q, coreguard holds %s for it", c.Name, got, mine)
			}
			continue
		}
		list := cg.of(c.GetLinux().GetCgroupsPath())
		if list == "" {
			list = c.GetLinux().GetResources().GetCpu().GetCpus()
		}
		cpus, err := cpuset.Parse(list)
		if err != nil {
			h.t.Fatalf("%s: cpuset %q: %v", c.Name, list, err)
		}
		if cpus.Intersects(exclusive) {
			h.t.Fatalf("shared container %s's cgroup holds %s, pinned CPUs are %s", c.Name, cpus, exclusive)
		}
	}
}
