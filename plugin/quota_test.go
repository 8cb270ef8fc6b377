package plugin_test

import (
	"io/fs"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// fakeCgroups holds pod quotas in memory, as kubelet would have written them.
type fakeCgroups struct {
	mu     sync.Mutex
	quotas map[string]int64 // pod cgroup parent → quota
}

func (f *fakeCgroups) ClearPodQuota(parent string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.quotas[parent]; !ok {
		return fs.ErrNotExist
	}
	f.quotas[parent] = cgroups.Unlimited
	return nil
}

func (f *fakeCgroups) PodQuota(parent string) (int64, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, ok := f.quotas[parent]
	if !ok {
		return 0, 0, fs.ErrNotExist
	}
	return q, 100000, nil
}

// kubeletWrites sets a pod's quota, as kubelet does when it makes or
// resyncs the pod cgroup.
func (f *fakeCgroups) kubeletWrites(parent string, q int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quotas[parent] = q
}

func (f *fakeCgroups) quota(parent string) int64 {
	q, _, _ := f.PodQuota(parent)
	return q
}

// release is a kernel the built-in table calls buggy, or fixed.
func release(buggy bool) string {
	if buggy {
		return "5.0.0" // upstream 4.18-5.3: the bug, no backport
	}
	return "5.10.0"
}

func TestQuotaModes(t *testing.T) {
	tests := []struct {
		name        string
		cfg         string
		buggy       bool
		burstableQ  int64 // container quota after creation
		burstablePQ int64 // pod quota after creation
	}{
		{"keep", "cfsQuota: keep", true, 200000, 200000},
		{"clear", "cfsQuota: clear", false, -1, -1},
		{"auto on a buggy kernel", "cfsQuota: auto", true, -1, -1},
		{"auto on a fixed kernel", "cfsQuota: auto", false, 200000, 200000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg := &fakeCgroups{quotas: map[string]int64{}}
			h := newHarnessWith(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\n"+tt.cfg,
				plugin.Options{Cgroups: cg, KernelRelease: release(tt.buggy)})
			bpod := h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"})
			cg.kubeletWrites(bpod.Linux.CgroupParent, 200000)
			b := h.create(bpod, "app", burstable)
			if q := h.rt.Container(b).Linux.Resources.Cpu.GetQuota().GetValue(); q != tt.burstableQ {
				t.Errorf("burstable container quota %d, want %d", q, tt.burstableQ)
			}
			if q := cg.quota(bpod.Linux.CgroupParent); q != tt.burstablePQ {
				t.Errorf("burstable pod quota %d, want %d", q, tt.burstablePQ)
			}
			// Pinned containers run without quota in every mode, pod too.
			gpod := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
			cg.kubeletWrites(gpod.Linux.CgroupParent, 400000)
			g := h.create(gpod, "app", guaranteed(4))
			if q := h.rt.Container(g).Linux.Resources.Cpu.GetQuota().GetValue(); q != -1 {
				t.Errorf("pinned container quota %d, want -1", q)
			}
			if q := cg.quota(gpod.Linux.CgroupParent); q != -1 {
				t.Errorf("pinned pod quota %d, want -1", q)
			}
			// kubelet's UpdateContainerResources sends the quota again: the
			// update coreguard returns keeps it off.
			if err := h.rt.Update(g, guaranteed(4)); err != nil {
				t.Fatal(err)
			}
			if q := h.rt.Container(g).Linux.Resources.Cpu.GetQuota().GetValue(); q != -1 {
				t.Errorf("pinned container quota after kubelet's update %d, want -1", q)
			}
		})
	}
}

// TestQuotaAutoReadsProcfs: the plugin reads its kernel from procfs as
// `coreguard kernel` does, so Debian's upstream version decides the
// verdict cfsQuota: auto acts on; the log names the kernel and the
// upstream version, the metric the verdict and its rule.
func TestQuotaAutoReadsProcfs(t *testing.T) {
	for _, tt := range []struct {
		tree      string
		quota     int64
		verdict   string
		upstream  string
		metricRow string
	}{
		{"debian-10.2", -1, "buggy", "upstream 4.19.67 from /proc/version",
			`coreguard_kernel_cfs_bug{rule="stable-4.19",verdict="buggy"} 1`},
		{"debian-10.3", 200000, "not-buggy", "upstream 4.19.98 from /proc/version",
			`coreguard_kernel_cfs_bug{rule="stable-4.19",verdict="not-buggy"} 0`},
	} {
		t.Run(tt.tree, func(t *testing.T) {
			cg := &fakeCgroups{quotas: map[string]int64{}}
			h := newHarnessWith(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\ncfsQuota: auto",
				plugin.Options{Cgroups: cg, ProcRoot: filepath.Join("..", "kernel", "testdata", "proc", tt.tree)})
			pod := h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"})
			cg.kubeletWrites(pod.Linux.CgroupParent, 200000)
			c := h.create(pod, "app", burstable)
			if q := h.rt.Container(c).Linux.Resources.Cpu.GetQuota().GetValue(); q != tt.quota {
				t.Errorf("container quota %d, want %d", q, tt.quota)
			}
			logged := false
			for _, e := range h.logs.AllEntries() {
				if e.Data["verdict"] == tt.verdict && e.Data["basis"] == tt.upstream && e.Data["upstream"] == tt.upstream {
					logged = true
				}
			}
			if !logged {
				t.Errorf("no verdict %s on %q logged", tt.verdict, tt.upstream)
			}
			if body := scrape(t, h.metrics); !strings.Contains(body, tt.metricRow) {
				t.Errorf("metrics lack %s", tt.metricRow)
			}
		})
	}
}

// TestQuotaSurvivesRestartAndIsReported: a lifted quota stays lifted
// across a restart, and the metrics say which container and pod run
// without it and why, with no throttling counters of cAdvisor's.
func TestQuotaSurvivesRestartAndIsReported(t *testing.T) {
	cg := &fakeCgroups{quotas: map[string]int64{}}
	h := newHarnessWith(t, sysfsgen.IntelHT2S, "cfsQuota: clear", plugin.Options{Cgroups: cg})
	pod := h.rt.RunPod(nritest.PodSpec{Name: "b", Namespace: "shop", QoS: "burstable"})
	cg.kubeletWrites(pod.Linux.CgroupParent, 200000)
	h.create(pod, "app", burstable)
	h.restartPlugin()
	if q := cg.quota(pod.Linux.CgroupParent); q != -1 {
		t.Errorf("pod quota after restart %d", q)
	}
	got := scrape(t, h.metrics)
	for _, want := range []string{
		`coreguard_quota_lifted{container="app",namespace="shop",pod="b",reason="cfs-quota-clear"} 1`,
		`coreguard_pod_quota_lifted{namespace="shop",pod="b",reason="cfs-quota-clear"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\ncontainer_") {
		t.Errorf("metrics repeat cAdvisor's container_* series:\n%s", got)
	}
}

// scrape returns the metrics page as Prometheus would read it.
func scrape(t *testing.T, m *plugin.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
