package plugin_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

const syncTimeout = 10 * time.Second

// harness is a fake runtime with coreguard connected to it over NRI.
type harness struct {
	t       *testing.T
	rt      *nritest.Runtime
	topo    *topology.Topology
	cfg     *config.Config
	extra   plugin.Options // Cgroups, KernelRelease and ProcRoot for the quota tests
	metrics *plugin.Metrics
	plugin  *plugin.Plugin // the one running now
	logs    *logtest.Hook  // what the running one logged
	stop    func()
}

func newHarness(t *testing.T, shape, cfgYAML string) *harness {
	t.Helper()
	return newHarnessWith(t, shape, cfgYAML, plugin.Options{})
}

func newHarnessWith(t *testing.T, shape, cfgYAML string, extra plugin.Options) *harness {
	t.Helper()
	topo, err := sysfsgen.BuildShape(shape)
	if err != nil {
		t.Fatal(err)
	}
	// No host state: an empty dir is no cgroup tree (tests that need one
	// pass extra.Cgroups) and holds no kubelet checkpoint.
	empty := t.TempDir()
	if !strings.Contains(cfgYAML, "kubeletRootDir:") {
		cfgYAML += "\nkubeletRootDir: " + empty
	}
	cfg, err := config.Parse([]byte(cfgYAML + "\ncgroupRoot: " + empty + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if extra.KernelRelease == "" && extra.ProcRoot == "" {
		extra.KernelRelease = release(false) // whatever kernel runs the tests
	}
	h := &harness{t: t, rt: nritest.Start(t), topo: topo, cfg: cfg, extra: extra}
	h.startPlugin()
	t.Cleanup(func() { h.stop() })
	return h
}

// startPlugin runs a fresh coreguard process-equivalent and waits for its
// Synchronize.
func (h *harness) startPlugin() {
	h.t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	h.logs = logtest.NewLocal(log)
	h.metrics = plugin.NewMetrics()
	p, err := plugin.New(plugin.Options{Socket: h.rt.Socket, Config: h.cfg, Topology: h.topo, Log: log, Metrics: h.metrics,
		Cgroups: h.extra.Cgroups, KernelRelease: h.extra.KernelRelease, ProcRoot: h.extra.ProcRoot, RuntimeNRI: nritest.NRIVersion})
	if err != nil {
		h.t.Fatal(err)
	}
	h.plugin = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("plugin Run: %v", err)
			}
		case <-time.After(syncTimeout):
			h.t.Errorf("plugin did not stop")
		}
	}
	h.rt.WaitSync(syncTimeout)
}

func (h *harness) restartPlugin() {
	h.t.Helper()
	h.stop()
	h.startPlugin()
}

func (h *harness) create(pod *api.PodSandbox, name string, res nritest.Resources) string {
	h.t.Helper()
	id, err := h.rt.Create(pod, name, res)
	if err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	return id
}

func (h *harness) cpus(id string) cpuset.CPUSet {
	h.t.Helper()
	s, err := cpuset.Parse(h.rt.Container(id).GetLinux().GetResources().GetCpu().GetCpus())
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// check asserts the node-wide guarantees on the runtime's running containers:
// what coreguard holds is what runs (a container it pins runs on exactly
// its CPUs); pinned cpusets lie on whole cores (their cores' other threads
// withheld from everyone) and are disjoint; every other container runs on
// the same shared pool, which is online minus the pinned cores (minus
// isolated CPUs) and never empty while a shared container runs.
func (h *harness) check() {
	h.t.Helper()
	if err := h.verify(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) verify() error {
	var taken cpuset.CPUSet
	var shared []string
	held := h.plugin.Holdings()
	for _, c := range h.rt.Containers() {
		if c.State != api.ContainerState_CONTAINER_RUNNING {
			continue // created, never started: nothing runs, no cgroup holds CPUs
		}
		cpus, err := cpuset.Parse(c.GetLinux().GetResources().GetCpu().GetCpus())
		if err != nil || cpus.IsEmpty() {
			return fmt.Errorf("container %s has cpuset %q (%v)", c.Name, c.GetLinux().GetResources().GetCpu().GetCpus(), err)
		}
		mine, pinned := held[c.Id]
		if !pinned {
			shared = append(shared, c.Name+" on "+cpus.String())
			continue
		}
		if !mine.Equals(cpus) {
			return fmt.Errorf("%s: runs on %s, coreguard holds %s for it", c.Name, cpus, mine)
		}
		var cores cpuset.Builder
		for cpu := range cpus.All() {
			core, _ := h.topo.CoreOf(cpu)
			cores.AddSet(core.CPUs)
		}
		whole := cores.Set()
		if withheld := whole.Difference(cpus); !withheld.IsEmpty() && h.cfg.OddCPUs != alloc.Isolate {
			return fmt.Errorf("%s: cpuset %s splits cores %s", c.Name, cpus, whole)
		}
		if whole.Intersects(taken) {
			return fmt.Errorf("%s: cores %s overlap other exclusive CPUs %s", c.Name, whole, taken)
		}
		taken = taken.Union(whole)
	}
	want := h.topo.Online.Difference(taken).Difference(h.topo.Isolated)
	for _, s := range shared {
		if !strings.HasSuffix(s, " on "+want.String()) {
			return fmt.Errorf("shared container %s, shared pool is %s", s, want)
		}
	}
	if want.IsEmpty() && len(shared) > 0 {
		return fmt.Errorf("shared pool is empty under shared containers %v", shared)
	}
	return nil
}

var (
	guaranteed = func(n int64) nritest.Resources {
		return nritest.Resources{RequestMilli: n * 1000, LimitMilli: n * 1000}
	}
	burstable = nritest.Resources{RequestMilli: 250, LimitMilli: 2000}
)

func TestPinningAndSharedPool(t *testing.T) {
	// 2 sockets × 20 cores × SMT2, siblings n and n+40.
	h := newHarness(t, sysfsgen.IntelHT2S, `reservedSystemCPUs: "0,40"`)
	web := h.rt.RunPod(nritest.PodSpec{Name: "web", QoS: "burstable"})
	shared1 := h.create(web, "nginx", burstable)
	if got := h.cpus(shared1).String(); got != "0-79" {
		t.Fatalf("first shared container on %s, want every CPU", got)
	}
	db := h.rt.RunPod(nritest.PodSpec{Name: "db", QoS: "guaranteed"})
	pinned := h.create(db, "postgres", guaranteed(4))
	if got := h.cpus(pinned).String(); got != "1-2,41-42" {
		t.Fatalf("pinned on %s, want two whole cores 1-2,41-42", got)
	}
	if got := h.cpus(shared1).String(); got != "0,3-40,43-79" {
		t.Fatalf("shared container not shrunk: %s", got)
	}
	frac := h.rt.RunPod(nritest.PodSpec{Name: "frac", QoS: "guaranteed"})
	fracID := h.create(frac, "app", nritest.Resources{RequestMilli: 1500, LimitMilli: 1500})
	if !h.cpus(fracID).Equals(h.cpus(shared1)) {
		t.Fatalf("fractional Guaranteed container on %s, not the shared pool %s", h.cpus(fracID), h.cpus(shared1))
	}
	h.check()
	h.rt.Stop(pinned)
	if got := h.cpus(shared1).String(); got != "0-79" {
		t.Fatalf("shared pool did not grow back on stop: %s", got)
	}
	h.check()
	h.create(db, "postgres-2", guaranteed(6))
	for _, m := range []struct {
		name, label string
		want        float64
	}{
		{"coreguard_exclusive_containers", "", 1},
		{"coreguard_runtime_connected", "", 1},
		{"coreguard_cores", "exclusive", 3},
		{"coreguard_cores", "reserved", 1},
		{"coreguard_cores", "shared", 36},
		{"coreguard_cpus", "shared", 72},
		{"coreguard_cpus", "reserved", 2},
	} {
		if got := metricValue(t, h.metrics, m.name, m.label); got != m.want {
			t.Errorf("%s{%s} = %v, want %v", m.name, m.label, got, m.want)
		}
	}
}

// metricValue reads one gauge from the plugin's registry; label is the
// value of its only label, or "" for none.
func metricValue(t *testing.T, m *plugin.Metrics, name, label string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			if label == "" || (len(metric.GetLabel()) == 1 && metric.GetLabel()[0].GetValue() == label) {
				if g := metric.GetGauge(); g != nil {
					return g.GetValue()
				}
				return metric.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func TestOddRequests(t *testing.T) {
	tests := []struct {
		mode     string
		want     string
		withheld string
		err      string
	}{
		{"round-up", "1-3,41-43", "", ""},
		{"isolate", "1-3,41-42", "43", ""},
		{"reject", "", "", `coreguard: container "vm" in pod default/kubevirt: 5 exclusive CPUs: SMT alignment error: requested 5 CPUs is not a multiple of 2 threads per core; nearest whole-core sizes are 4 and 6`},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\noddCPUs: "+tt.mode)
			bg := h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "besteffort"}), "bg", nritest.Resources{})
			pod := h.rt.RunPod(nritest.PodSpec{Name: "kubevirt", QoS: "guaranteed"})
			id, err := h.rt.Create(pod, "vm", guaranteed(5))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := h.cpus(id).String(); got != tt.want {
				t.Errorf("cpuset %s, want %s", got, tt.want)
			}
			if got := h.rt.Container(id).Annotations[pinning.AnnotationWithheld]; got != tt.withheld {
				t.Errorf("withheld %q, want %q", got, tt.withheld)
			}
			if h.cpus(bg).Intersects(cpuset.MustParse("1-3,41-43")) {
				t.Errorf("shared container %s runs on the odd container's cores", h.cpus(bg))
			}
			h.check()
		})
	}
}

func TestExhaustion(t *testing.T) {
	// 8 cores SMT2 (16 CPUs, siblings n, n+8 on the isolcpus shape minus
	// isolation is simplest as no-smt): use 8 single-thread cores.
	t.Run("reject", func(t *testing.T) {
		h := newHarness(t, sysfsgen.NoSMT, `reservedSystemCPUs: "0"`)
		pod := h.rt.RunPod(nritest.PodSpec{Name: "big", QoS: "guaranteed"})
		h.create(pod, "a", guaranteed(5))
		_, err := h.rt.Create(pod, "b", guaranteed(3))
		want := `coreguard: container "b" in pod default/big: 3 exclusive CPUs: not enough free whole cores for 3 exclusive CPUs: 2 whole cores (2 CPUs) free: socket 0: 2 (NUMA node 0: 2)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v\nwant %q", err, want)
		}
		h.check()
	})
	t.Run("shared", func(t *testing.T) {
		h := newHarness(t, sysfsgen.NoSMT, "reservedSystemCPUs: \"0\"\nonExhaustion: shared")
		pod := h.rt.RunPod(nritest.PodSpec{Name: "big", QoS: "guaranteed"})
		h.create(pod, "a", guaranteed(5))
		id := h.create(pod, "b", guaranteed(3))
		if got := h.cpus(id).String(); got != "0,6-7" {
			t.Fatalf("fallback container on %s, want the shared pool 0,6-7", got)
		}
		h.check()
	})
	t.Run("shared pool never empties under a shared container", func(t *testing.T) {
		h := newHarness(t, sysfsgen.TwoCPUsTwoCores, "")
		h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
		pod := h.rt.RunPod(nritest.PodSpec{Name: "p", QoS: "guaranteed"})
		h.create(pod, "a", guaranteed(1))
		if _, err := h.rt.Create(pod, "b", guaranteed(1)); err == nil || !strings.Contains(err.Error(), "shared pool without a CPU") {
			t.Fatalf("error %v, want a refusal to empty the shared pool", err)
		}
		h.check()
	})
	t.Run("a lone pinned container may take the last core", func(t *testing.T) {
		// One core with threads 0 and 1 and nothing shared running: a
		// Guaranteed cpu: 1 gets the whole core; a shared container that
		// comes later is refused with a message saying why.
		h := newHarness(t, sysfsgen.TwoCPUsOneCore, "")
		id := h.create(h.rt.RunPod(nritest.PodSpec{Name: "odd", QoS: "guaranteed"}), "main", guaranteed(1))
		if got := h.cpus(id).String(); got != "0-1" {
			t.Fatalf("cpuset %s, want the whole core 0-1", got)
		}
		_, err := h.rt.Create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
		if err == nil || !strings.Contains(err.Error(), "no CPU is left for containers without exclusive CPUs") {
			t.Fatalf("shared container with an empty pool: %v", err)
		}
	})
}

func TestOptOuts(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, "exemptNamespaces: [batch]")
	optOut := h.rt.RunPod(nritest.PodSpec{Name: "o", QoS: "guaranteed", Annotations: map[string]string{pinning.AnnotationExclusive: "false"}})
	exempt := h.rt.RunPod(nritest.PodSpec{Name: "e", Namespace: "batch", QoS: "guaranteed"})
	for _, pod := range []*api.PodSandbox{optOut, exempt} {
		id := h.create(pod, "c", guaranteed(2))
		if h.cpus(id).String() != "0-79" {
			t.Errorf("%s: cpuset %s, want the shared pool", pod.Name, h.cpus(id))
		}
	}
	bad := h.rt.RunPod(nritest.PodSpec{Name: "bad", QoS: "guaranteed", Annotations: map[string]string{pinning.AnnotationExclusive: "no"}})
	if _, err := h.rt.Create(bad, "c", guaranteed(2)); err == nil || !strings.Contains(err.Error(), `coreguard.io/exclusive-cpus: "no" is not "true" or "false"`) {
		t.Fatalf("bad annotation: %v", err)
	}
	h.check()
}

func TestUpdateContainer(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, `reservedSystemCPUs: "0,40"`)
	pod := h.rt.RunPod(nritest.PodSpec{Name: "db", QoS: "guaranteed"})
	id := h.create(pod, "postgres", guaranteed(4))
	bg := h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
	before := h.cpus(id)
	// kubelet's periodic UpdateContainerResources: same size, no cpuset.
	if err := h.rt.Update(id, guaranteed(4)); err != nil {
		t.Fatal(err)
	}
	if !h.cpus(id).Equals(before) {
		t.Fatalf("update moved a pinned container: %s -> %s", before, h.cpus(id))
	}
	// A resize to another whole number re-allocates.
	if err := h.rt.Update(id, guaranteed(6)); err != nil {
		t.Fatal(err)
	}
	if h.cpus(id).Size() != 6 {
		t.Fatalf("resize to 6 gave %s", h.cpus(id))
	}
	h.check()
	// A fractional resize is refused and changes nothing.
	kept := h.cpus(id)
	err := h.rt.Update(id, nritest.Resources{RequestMilli: 2500, LimitMilli: 2500})
	if err == nil || !strings.Contains(err.Error(), "needs a whole number of CPUs") {
		t.Fatalf("fractional resize: %v", err)
	}
	// A resize beyond the machine is refused and keeps the cores.
	err = h.rt.Update(id, guaranteed(200))
	if err == nil || !strings.Contains(err.Error(), "resize from 6 to 200 exclusive CPUs refused (keeps "+kept.String()+")") {
		t.Fatalf("huge resize: %v", err)
	}
	if !h.cpus(id).Equals(kept) {
		t.Fatalf("refused resize moved the container: %s", h.cpus(id))
	}
	// A shared container's update keeps it on the shared pool.
	if err := h.rt.Update(bg, burstable); err != nil {
		t.Fatal(err)
	}
	h.check()
}

func TestRemoveWithoutStopGrowsPool(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, "")
	bg := h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
	id := h.create(h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"}), "g", guaranteed(2))
	h.rt.Remove(id)
	deadline := time.Now().Add(syncTimeout)
	for h.cpus(bg).String() != "0-79" {
		if time.Now().After(deadline) {
			t.Fatalf("shared pool not grown after removal: %s", h.cpus(bg))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRestartRebuildsState(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, `reservedSystemCPUs: "0,40"`)
	g := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	bgPod := h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"})
	a := h.create(g, "a", guaranteed(4))
	bg := h.create(bgPod, "bg", burstable)
	pinnedA := h.cpus(a)

	h.stop()
	// While coreguard is away: a Guaranteed container the runtime created
	// without it, and one that claims a's cores (a conflict).
	away := h.rt.AddContainer(g, "away", guaranteed(2), map[string]string{}, "")
	clash := h.rt.AddContainer(g, "zz-clash", guaranteed(2), map[string]string{pinning.AnnotationCPUs: "1,41"}, "1,41")
	h.startPlugin()

	if !h.cpus(a).Equals(pinnedA) {
		t.Fatalf("restart moved a pinned container: %s -> %s", pinnedA, h.cpus(a))
	}
	if h.cpus(away).Size() != 2 || h.cpus(away).Intersects(pinnedA) {
		t.Fatalf("container created while away got %s", h.cpus(away))
	}
	if h.cpus(clash).Intersects(pinnedA) || h.cpus(clash).Size() != 2 {
		t.Fatalf("conflicting container not re-pinned: %s", h.cpus(clash))
	}
	_ = bg
	// The annotation of containers pinned during sync is not rewritten (NRI
	// updates cannot set annotations), so check without them.
	next := h.create(g, "next", guaranteed(2))
	for _, other := range []string{a, away, clash} {
		if h.cpus(next).Intersects(h.cpus(other)) {
			t.Fatalf("new container %s overlaps %s", h.cpus(next), h.cpus(other))
		}
	}
}

func TestRuntimeRestartReconnects(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, "")
	g := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	a := h.create(g, "a", guaranteed(2))
	h.rt.Restart()
	h.rt.WaitSync(syncTimeout)
	b := h.create(g, "b", guaranteed(2))
	if h.cpus(a).Intersects(h.cpus(b)) {
		t.Fatalf("after reconnect %s overlaps %s", h.cpus(b), h.cpus(a))
	}
	h.check()
}

func TestBadRuntimeConfigIsRefused(t *testing.T) {
	topo, err := sysfsgen.BuildShape(sysfsgen.NoSMT)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	p, err := plugin.New(plugin.Options{Topology: topo, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Configure(context.Background(), "oddCPUs: sometimes\n", "containerd", "v2")
	if err == nil || !strings.Contains(err.Error(), `oddCPUs: "sometimes" is not one of`) {
		t.Fatalf("Configure error %v", err)
	}
	if _, err := plugin.New(plugin.Options{Topology: topo, Log: log, Config: mustConfig(t, `reservedSystemCPUs: "0-7"`)}); err == nil ||
		!strings.Contains(err.Error(), "leaves no core") {
		t.Fatalf("New with every CPU reserved: %v", err)
	}
}

func mustConfig(t *testing.T, y string) *config.Config {
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChurn creates and removes hundreds of containers of every kind, with
// random plugin restarts, checking the guarantees after every step.
func TestChurn(t *testing.T) {
	for _, mode := range []string{"round-up", "isolate", "round-up\nsharedPoolUpdates: after-response"} {
		t.Run(mode, func(t *testing.T) {
			after := strings.Contains(mode, "after-response")
			h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nonExhaustion: shared\noddCPUs: "+mode)
			rng := rand.New(rand.NewPCG(7, uint64(len(mode))))
			var live []string
			steps := 300
			if testing.Short() {
				steps = 60
			}
			for i := 0; i < steps; i++ {
				switch r := rng.IntN(20); {
				case r == 0:
					h.restartPlugin()
				case r < 11 || len(live) == 0:
					qos := []string{"guaranteed", "guaranteed", "burstable", "besteffort"}[rng.IntN(4)]
					pod := h.rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("p", i), QoS: qos})
					res := guaranteed(int64(1 + rng.IntN(9)))
					if qos != "guaranteed" {
						res = burstable
					}
					live = append(live, h.create(pod, fmt.Sprint("c", i), res))
				default:
					k := rng.IntN(len(live))
					if rng.IntN(2) == 0 {
						h.rt.Stop(live[k])
					}
					h.rt.Remove(live[k])
					live = append(live[:k], live[k+1:]...)
					h.settle()
				}
				if after {
					h.settle() // the pool's updates follow the response
				}
				h.check()
			}
		})
	}
}

// settle waits for the asynchronous update that follows a removal.
func (h *harness) settle() {
	deadline := time.Now().Add(syncTimeout)
	for h.verify() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	// NRI's adaptation logs through logrus' standard logger; keep test
	// output to what fails.
	logrus.SetLevel(logrus.ErrorLevel)
	m.Run()
}

func TestSharedPoolAfterResponse(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nsharedPoolUpdates: after-response")
	bg := h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
	pod := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	id := h.create(pod, "app", guaranteed(4))
	if got := h.cpus(id).String(); got != "1-2,41-42" {
		t.Fatalf("pinned on %s", got)
	}
	h.settle() // the shared pool's update comes right after the response
	h.check()
	h.rt.Stop(id)
	h.rt.Remove(id)
	h.settle()
	if got := h.cpus(bg).String(); got != "0-79" {
		t.Fatalf("shared pool did not grow back: %s", got)
	}
}

// TestRestartKeepsFallbackShared: a container that fell back to the shared
// pool (onExhaustion: shared) is not taken for pinned when coreguard
// restarts: it runs on the shared pool with the other shared containers,
// and taking its CPUs would empty the pool under them.
func TestRestartKeepsFallbackShared(t *testing.T) {
	h := newHarness(t, sysfsgen.TwoCPUsTwoCores, "onExhaustion: shared")
	g1 := h.create(h.rt.RunPod(nritest.PodSpec{Name: "g1", QoS: "guaranteed"}), "app", guaranteed(1))
	b := h.create(h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"}), "app", burstable)
	g2 := h.create(h.rt.RunPod(nritest.PodSpec{Name: "g2", QoS: "guaranteed"}), "app", guaranteed(1))
	for _, tc := range []struct{ id, want string }{{g1, "0"}, {b, "1"}, {g2, "1"}} {
		if got := h.cpus(tc.id).String(); got != tc.want {
			t.Fatalf("before restart: %s on %q, want %q", tc.id, got, tc.want)
		}
	}
	h.restartPlugin()
	h.check()
	for _, tc := range []struct{ id, want string }{{g1, "0"}, {b, "1"}, {g2, "1"}} {
		if got := h.cpus(tc.id).String(); got != tc.want {
			t.Errorf("after restart: %s on %q, want %q", tc.id, got, tc.want)
		}
	}
	be := h.create(h.rt.RunPod(nritest.PodSpec{Name: "be", QoS: "besteffort"}), "app", nritest.Resources{})
	if got := h.cpus(be).String(); got != "1" {
		t.Errorf("BestEffort after restart on %q, want the shared pool 1", got)
	}
}

// TestChurnFallbacks is TestChurn on a small machine with nothing
// reserved, where pinned containers fall back to the shared pool
// (onExhaustion: shared) and the pool runs dry: restarts must rebuild what
// creation would have built, and every step keeps the node-wide guarantees
// (check). The only refusal allowed is a shared container with no CPU left.
func TestChurnFallbacks(t *testing.T) {
	h := newHarness(t, sysfsgen.NoSMT, "onExhaustion: shared")
	rng := rand.New(rand.NewPCG(11, 15))
	var live []string
	steps := 400
	if testing.Short() {
		steps = 80
	}
	for i := 0; i < steps; i++ {
		switch r := rng.IntN(20); {
		case r == 0:
			h.restartPlugin()
		case r < 11 || len(live) == 0:
			qos := []string{"guaranteed", "guaranteed", "guaranteed", "burstable"}[rng.IntN(4)]
			pod := h.rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("p", i), QoS: qos})
			res := guaranteed(int64(1 + rng.IntN(4)))
			if qos != "guaranteed" {
				res = burstable
			}
			id, err := h.rt.Create(pod, fmt.Sprint("c", i), res)
			if err != nil {
				if !strings.Contains(err.Error(), "no CPU is left for containers without exclusive CPUs") {
					t.Fatalf("step %d: %v", i, err)
				}
				continue
			}
			live = append(live, id)
		default:
			k := rng.IntN(len(live))
			h.rt.Stop(live[k])
			h.rt.Remove(live[k])
			live = append(live[:k], live[k+1:]...)
			h.settle()
		}
		if err := h.verify(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}
