package plugin_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/kubelet"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// writeCPUManagerState writes kubelet's CPU manager checkpoint as kubelet
// does (a policy other than static names no CPUs).
func writeCPUManagerState(t *testing.T, dir, policy string) {
	t.Helper()
	text := `{"policyName":"` + policy + `","defaultCpuSet":"","checksum":1}`
	if policy == kubelet.PolicyStatic {
		text = `{"policyName":"static","defaultCpuSet":"0-79","entries":{},"checksum":2}`
	}
	// Written aside and renamed, as kubelet's checkpoint manager does.
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, kubelet.CPUManagerStateFile)); err != nil {
		t.Fatal(err)
	}
}

func scrapeText(t *testing.T, m *plugin.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestKubeletStaticPolicyPausesPinning: while kubelet's CPU manager
// checkpoint says static, coreguard leaves cpusets alone (kubelet owns
// them) and says so in the metrics; quota and admission still act. Once
// kubelet runs policy none, coreguard pins again without a restart, and the
// containers created meanwhile get the shared pool.
func TestKubeletStaticPolicyPausesPinning(t *testing.T) {
	t.Cleanup(plugin.SetReassertEvery(50 * time.Millisecond)) // runs after the harness stops
	dir := t.TempDir()
	writeCPUManagerState(t, dir, kubelet.PolicyStatic)
	h := newHarness(t, sysfsgen.IntelHT2S, "cfsQuota: clear\nkubeletRootDir: "+dir)

	gpod := h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"})
	g := h.create(gpod, "app", guaranteed(2))
	c := h.rt.Container(g)
	if cpus := c.Linux.Resources.Cpu.Cpus; cpus != "" {
		t.Errorf("kubelet static: coreguard set cpuset %q, want none (kubelet's to set)", cpus)
	}
	if q := c.Linux.Resources.Cpu.GetQuota().GetValue(); q != -1 {
		t.Errorf("kubelet static, cfsQuota clear: quota %d, want -1", q)
	}
	if _, err := h.rt.Create(h.rt.RunPod(nritest.PodSpec{Name: "hostnet", HostNetwork: true}), "app", nritest.Resources{}); err == nil {
		t.Errorf("kubelet static: a host-network pod in default was admitted")
	}
	if m := scrapeText(t, h.metrics); !strings.Contains(m, "coreguard_pinning_enabled 0") {
		t.Errorf("metrics lack coreguard_pinning_enabled 0")
	}

	writeCPUManagerState(t, dir, "none")
	deadline := time.Now().Add(syncTimeout)
	for !strings.Contains(scrapeText(t, h.metrics), "coreguard_pinning_enabled 1") {
		if time.Now().After(deadline) {
			t.Fatal("coreguard did not resume pinning after kubelet moved to policy none")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The container kubelet would have pinned joins the shared pool.
	for h.cpus(g).String() != "0-79" {
		if time.Now().After(deadline) {
			t.Fatalf("container created while paused on %q, want the shared pool 0-79", h.cpus(g))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := h.create(h.rt.RunPod(nritest.PodSpec{Name: "p", QoS: "guaranteed"}), "app", guaranteed(2))
	if got := h.cpus(p).String(); got != "0,40" {
		t.Errorf("after resuming, a Guaranteed cpu: 2 container got %q, want the whole core 0,40", got)
	}
	if got := h.cpus(g).String(); got != "1-39,41-79" {
		t.Errorf("shared container on %q after the pinning, want 1-39,41-79", got)
	}
	h.check()

	// Back to static (kubelet reconfigured and restarted): pinning stops
	// again and the pinned container's cores are no longer coreguard's.
	writeCPUManagerState(t, dir, kubelet.PolicyStatic)
	for !strings.Contains(scrapeText(t, h.metrics), "coreguard_pinning_enabled 0") {
		if time.Now().After(deadline.Add(syncTimeout)) {
			t.Fatal("coreguard did not pause pinning after kubelet moved to the static policy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := scrapeText(t, h.metrics); !strings.Contains(m, `coreguard_exclusive_containers 0`) {
		t.Errorf("paused, yet coreguard still holds exclusive containers")
	}

	// A checkpoint torn or unreadable: the last known policy stands.
	if err := os.WriteFile(filepath.Join(dir, kubelet.CPUManagerStateFile), []byte(`{"policyN`), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * 50 * time.Millisecond) // ten checks
	if m := scrapeText(t, h.metrics); !strings.Contains(m, "coreguard_pinning_enabled 0") {
		t.Errorf("an unreadable checkpoint resumed pinning")
	}
	if n := countLogs(h, "cannot tell which CPU manager policy"); n != 1 {
		t.Errorf("the unreadable checkpoint was reported %d times in ten checks, want once", n)
	}
	if cpus := h.rt.Container(h.create(gpod, "late", guaranteed(2))).Linux.Resources.Cpu.Cpus; cpus != "" {
		t.Errorf("an unreadable checkpoint after static: coreguard set cpuset %q", cpus)
	}
}

// countLogs counts the plugin's log entries holding text.
func countLogs(h *harness, text string) int {
	n := 0
	for _, e := range h.logs.AllEntries() {
		if strings.Contains(e.Message, text) {
			n++
		}
	}
	return n
}
