package plugin_test

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/plugin/admission"
	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/plugin/quota"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// samples parses a scrape into series (name{labels} as exposed) → value.
func samples(t *testing.T, m *plugin.Metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(scrape(t, m)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// family returns the series of one metric name.
func family(all map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range all {
		if k == name || strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

// labelValues returns the values one label takes in a family.
func labelValues(fam map[string]float64, label string) []string {
	var out []string
	for k := range fam {
		if _, rest, ok := strings.Cut(k, label+`="`); ok {
			v, _, _ := strings.Cut(rest, `"`)
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

func sum(fam map[string]float64) float64 {
	var s float64
	for _, v := range fam {
		s += v
	}
	return s
}

// TestPoolPartsAddUp: coreguard_cores and coreguard_cpus split the online
// cores and CPUs into parts that add up to all of them, with no total
// among them, reserved not counted again inside shared, and isolated CPUs
// (kept out of the shared pool) a part of their own.
func TestPoolPartsAddUp(t *testing.T) {
	tests := []struct {
		name, shape, cfg string
		request          int64
		cores, cpus      map[string]float64
	}{
		{"odd request isolated", sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\noddCPUs: isolate", 5,
			map[string]float64{"exclusive": 2, "withheld": 1, "reserved": 1, "shared": 36, "isolated": 0},
			map[string]float64{"exclusive": 5, "withheld": 1, "reserved": 2, "shared": 72, "isolated": 0}},
		// isolcpus=2-3,10-11 on 8 cores of 2 threads (n, n+8): cores 2 and
		// 3 are isolated, out of the shared pool and not given out here.
		{"isolated CPUs", sysfsgen.IsolCPUs, "reservedSystemCPUs: \"0,8\"", 2,
			map[string]float64{"exclusive": 1, "withheld": 0, "reserved": 1, "shared": 4, "isolated": 2},
			map[string]float64{"exclusive": 2, "withheld": 0, "reserved": 2, "shared": 8, "isolated": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.shape, tt.cfg)
			h.create(h.rt.RunPod(nritest.PodSpec{Name: "bg", QoS: "burstable"}), "bg", burstable)
			h.create(h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"}), "app", guaranteed(tt.request))
			all := samples(t, h.metrics)
			cores, cpus := family(all, "coreguard_cores"), family(all, "coreguard_cpus")
			if got := labelValues(cores, "state"); !slices.Equal(got, []string{"exclusive", "isolated", "reserved", "shared", "withheld"}) {
				t.Errorf("coreguard_cores states %v", got)
			}
			if got := labelValues(cpus, "pool"); !slices.Equal(got, []string{"exclusive", "isolated", "reserved", "shared", "withheld"}) {
				t.Errorf("coreguard_cpus pools %v", got)
			}
			if got, want := sum(cores), float64(len(h.topo.Cores)); got != want {
				t.Errorf("coreguard_cores add up to %v, want the %v online cores: %v", got, want, cores)
			}
			if got, want := sum(cpus), float64(h.topo.Online.Size()); got != want {
				t.Errorf("coreguard_cpus add up to %v, want the %v online CPUs: %v", got, want, cpus)
			}
			for state, want := range tt.cores {
				if got := cores[`coreguard_cores{state="`+state+`"}`]; got != want {
					t.Errorf("coreguard_cores{state=%q} = %v, want %v", state, got, want)
				}
			}
			for pool, want := range tt.cpus {
				if got := cpus[`coreguard_cpus{pool="`+pool+`"}`]; got != want {
					t.Errorf("coreguard_cpus{pool=%q} = %v, want %v", pool, got, want)
				}
			}
		})
	}
}

// TestLabelledSeriesExistFromStart: before any container, every series
// whose label values are known exists: each handler's latency, each
// allocation failure reason, each pool part, the verdict and the build;
// admission's reasons exist for each namespace with a pod (enforce: the
// rejection counter; audit: the audit counter; off: neither).
func TestLabelledSeriesExistFromStart(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, `reservedSystemCPUs: "0,40"`)
	all := samples(t, h.metrics)
	fam := family(all, "coreguard_nri_handler_duration_seconds_count")
	events := labelValues(fam, "event")
	if want := slices.Sorted(slices.Values(plugin.NRIEvents)); !slices.Equal(events, want) {
		t.Errorf("handler latency events at start: %v, want %v", events, want)
	}
	if got := labelValues(family(all, "coreguard_allocation_failures_total"), "reason"); !slices.Equal(got, slices.Sorted(slices.Values(pinning.FailureReasons))) {
		t.Errorf("allocation failure reasons at start: %v, want %v", got, pinning.FailureReasons)
	}
	if got := labelValues(family(all, "coreguard_cpuset_writes_total"), "result"); !slices.Equal(got, []string{"failed", "ok"}) {
		t.Errorf("cpuset write results at start: %v, want failed, ok", got)
	}
	for _, name := range []string{"coreguard_kernel_cfs_bug", "coreguard_build_info", "coreguard_runtime_connected",
		"coreguard_pinning_enabled", "coreguard_config_rejected", "coreguard_shared_fallbacks_total",
		"coreguard_pod_quota_errors_total", "coreguard_pod_quota_reasserted_total", "coreguard_unstarted_released_total",
		"coreguard_exclusive_containers", "coreguard_shared_containers", "coreguard_unstarted_containers"} {
		if len(family(all, name)) != 1 {
			t.Errorf("%s at start: %v", name, family(all, name))
		}
	}
	// Every handler coreguard runs was among them: churn adds no event.
	pod := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	id := h.create(pod, "app", guaranteed(2))
	if err := h.rt.Update(id, guaranteed(2)); err != nil {
		t.Fatal(err)
	}
	h.rt.Stop(id)
	h.rt.Remove(id)
	h.rt.RemovePod(pod)
	after := labelValues(family(samples(t, h.metrics), "coreguard_nri_handler_duration_seconds_count"), "event")
	if !slices.Equal(after, events) {
		t.Errorf("handler events %v after churn, %v at start", after, events)
	}
}

// TestAdmissionSeriesFollowPods: the reasons of the mode's counter exist
// at 0 for a namespace while it has a pod on the node; when its last pod
// goes, the series that never counted go, one that counted stays.
func TestAdmissionSeriesFollowPods(t *testing.T) {
	for _, mode := range []string{"enforce", "audit", "off"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, sysfsgen.IntelHT2S, "admission:\n  mode: "+mode)
			counter := map[string]string{"enforce": "coreguard_admission_rejections_total", "audit": "coreguard_admission_audit_total"}[mode]
			shop := h.rt.RunPod(nritest.PodSpec{Name: "web", Namespace: "shop", QoS: "burstable"})
			dev := h.rt.RunPod(nritest.PodSpec{Name: "debug", Namespace: "dev", HostNetwork: true})
			_, _ = h.rt.Create(dev, "app", burstable) // host network outside kube-system
			all := samples(t, h.metrics)
			for _, name := range []string{"coreguard_admission_rejections_total", "coreguard_admission_audit_total"} {
				fam := family(all, name)
				if name != counter {
					if len(fam) != 0 {
						t.Errorf("%s in mode %s: %v", name, mode, fam)
					}
					continue
				}
				for _, ns := range []string{"shop", "dev"} {
					for _, k := range admission.Kinds {
						key := fmt.Sprintf(`%s{namespace=%q,reason=%q}`, name, ns, k)
						want := 0.0
						if ns == "dev" && k == admission.HostNetwork {
							want = 1
						}
						if v, ok := fam[key]; !ok || v != want {
							t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
						}
					}
				}
			}
			h.rt.RemovePod(shop)
			h.rt.RemovePod(dev)
			left := slices.Sorted(maps.Keys(family(samples(t, h.metrics), counter)))
			var want []string
			if counter != "" {
				want = []string{fmt.Sprintf(`%s{namespace="dev",reason="hostNetwork"}`, counter)}
			}
			if !slices.Equal(left, want) {
				t.Errorf("after the pods went: %v, want %v", left, want)
			}
		})
	}
}

// TestAdmissionSeriesAfterRestart: a restarted coreguard learns the
// namespaces of running pods at Synchronize.
func TestAdmissionSeriesAfterRestart(t *testing.T) {
	h := newHarness(t, sysfsgen.IntelHT2S, "")
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "web", Namespace: "shop", QoS: "burstable"}), "app", burstable)
	h.restartPlugin()
	fam := family(samples(t, h.metrics), "coreguard_admission_rejections_total")
	if got := labelValues(fam, "namespace"); !slices.Equal(got, []string{"shop"}) || len(fam) != len(admission.Kinds) {
		t.Errorf("after restart: %v", fam)
	}
}

// TestQuotaLiftedAndKept: one series per live container says whether its
// quota runs lifted or kept, and why; the pod's cgroup is reported lifted
// with its pinned container; a stopped container leaves.
func TestQuotaLiftedAndKept(t *testing.T) {
	cg := &fakeCgroups{quotas: map[string]int64{}}
	h := newHarnessWith(t, sysfsgen.IntelHT2S, "cfsQuota: auto", plugin.Options{Cgroups: cg, KernelRelease: release(false)})
	web := h.rt.RunPod(nritest.PodSpec{Name: "web", Namespace: "shop", QoS: "burstable"})
	db := h.rt.RunPod(nritest.PodSpec{Name: "db", Namespace: "shop", QoS: "guaranteed"})
	h.create(web, "nginx", burstable)
	pinned := h.create(db, "postgres", guaranteed(2))
	all := samples(t, h.metrics)
	for key, want := range map[string]float64{
		fmt.Sprintf(`coreguard_quota_kept{container="nginx",namespace="shop",pod="web",reason=%q}`, quota.KeptNoBug):        1,
		fmt.Sprintf(`coreguard_quota_lifted{container="postgres",namespace="shop",pod="db",reason=%q}`, quota.LiftedPinned): 1,
		fmt.Sprintf(`coreguard_pod_quota_lifted{namespace="shop",pod="db",reason=%q}`, quota.LiftedPinned):                  1,
		`coreguard_kernel_cfs_bug{rule="mainline-5.4",verdict="not-buggy"}`:                                                 0,
	} {
		if got, ok := all[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for _, name := range []string{"coreguard_quota_lifted", "coreguard_quota_kept", "coreguard_pod_quota_lifted"} {
		if n := len(family(all, name)); n != 1 {
			t.Errorf("%d series of %s, want 1", n, name)
		}
	}
	h.rt.Stop(pinned)
	if fam := family(samples(t, h.metrics), "coreguard_quota_lifted"); len(fam) != 0 {
		t.Errorf("a stopped container still reported: %v", fam)
	}
}

// TestBuildInfo: the version given in Options, with the Go that built it.
func TestBuildInfo(t *testing.T) {
	m := plugin.NewMetrics()
	if _, err := plugin.New(plugin.Options{Topology: mustTopology(t), Log: quietLog(), Metrics: m, Version: "v1.2.3",
		KernelRelease: release(false), Config: mustConfig(t, "kubeletRootDir: "+t.TempDir())}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`coreguard_build_info{goarch=%q,goos=%q,goversion=%q,version="v1.2.3"}`, runtime.GOARCH, runtime.GOOS, runtime.Version())
	if got := family(samples(t, m), "coreguard_build_info"); len(got) != 1 || got[want] != 1 {
		t.Errorf("coreguard_build_info: %v, want %s 1", got, want)
	}
}

// TestNoCAdvisorNames: coreguard exports nothing under cAdvisor's names.
func TestNoCAdvisorNames(t *testing.T) {
	cg := &fakeCgroups{quotas: map[string]int64{}}
	h := newHarnessWith(t, sysfsgen.IntelHT2S, "cfsQuota: clear", plugin.Options{Cgroups: cg})
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "web", QoS: "burstable"}), "nginx", burstable)
	for k := range samples(t, h.metrics) {
		if strings.HasPrefix(k, "container_") || strings.HasPrefix(k, "machine_") {
			t.Errorf("series %s is named like cAdvisor's", k)
		}
	}
}

func mustTopology(t *testing.T) *topology.Topology {
	t.Helper()
	topo, err := sysfsgen.BuildShape(sysfsgen.NoSMT)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func quietLog() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// TestKernelVerdictMetric: the verdict's value is what cfsQuota: auto acts
// on; a kernel no rule decides reads unknown, rule none, and counts as
// kernel.unknown says.
func TestKernelVerdictMetric(t *testing.T) {
	for _, tt := range []struct {
		release, unknown, want string
	}{
		{release(true), "not-buggy", `coreguard_kernel_cfs_bug{rule="upstream-4.18-5.2",verdict="buggy"} 1`},
		{"not-a-release", "not-buggy", `coreguard_kernel_cfs_bug{rule="none",verdict="unknown"} 0`},
		{"not-a-release", "buggy", `coreguard_kernel_cfs_bug{rule="none",verdict="unknown"} 1`},
	} {
		m := plugin.NewMetrics()
		cfg := mustConfig(t, "kubeletRootDir: "+t.TempDir()+"\nkernel:\n  unknown: "+tt.unknown)
		if _, err := plugin.New(plugin.Options{Topology: mustTopology(t), Log: quietLog(), Metrics: m, KernelRelease: tt.release, Config: cfg}); err != nil {
			t.Fatal(err)
		}
		if got := family(samples(t, m), "coreguard_kernel_cfs_bug"); len(got) != 1 || !strings.Contains(scrape(t, m), "\n"+tt.want+"\n") {
			t.Errorf("kernel %s, unknown %s: %v, want %s", tt.release, tt.unknown, got, tt.want)
		}
	}
}
