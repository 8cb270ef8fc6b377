package plugin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// waitMetric polls coreguard's metrics until they hold every line.
func waitMetric(t *testing.T, h *harness, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(syncTimeout)
	for {
		m := scrapeText(t, h.metrics)
		missing := ""
		for _, l := range lines {
			if !strings.Contains(m, l+"\n") {
				missing = l
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnstartedCreationsGiveCoresBack: creations that fail after
// coreguard's answer, of which the runtime says nothing (played as
// containers created and never started), keep their cores only until
// startTimeout: one user's failing pod retried 20 times does not drain the
// node's exclusive cores, and coreguard's counts go back to what runs.
// Containers found created but not started by a restart's Synchronize are
// held the same way.
func TestUnstartedCreationsGiveCoresBack(t *testing.T) {
	t.Cleanup(plugin.SetReassertEvery(50 * time.Millisecond))
	h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nstartTimeout: 1s")
	b := h.create(h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"}), "app", burstable)
	pod := h.rt.RunPod(nritest.PodSpec{Name: "typo", QoS: "guaranteed"})
	for i := range 20 {
		if i == 10 {
			h.restartPlugin() // the ones created so far: created, not started
		}
		if _, err := h.rt.CreateUnstarted(pod, "app", guaranteed(2)); err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	waitMetric(t, h, "coreguard_exclusive_containers 0", "coreguard_unstarted_containers 0", "coreguard_shared_containers 1")
	h.settle()
	h.check()
	if got := h.cpus(b).String(); got != "0-79" {
		t.Errorf("shared container on %s after the cores came back, want 0-79", got)
	}
	// Every free core but one can be had again.
	big := h.create(h.rt.RunPod(nritest.PodSpec{Name: "big", QoS: "guaranteed"}), "app", guaranteed(76))
	if n := h.cpus(big).Size(); n != 76 {
		t.Errorf("a 76-CPU request got %d CPUs", n)
	}
}

// TestLateStartIsPlacedAgain: a container that starts after its start
// timeout gave its cores back gets whole cores again, its own when still
// free, else others, never cores someone else holds.
func TestLateStartIsPlacedAgain(t *testing.T) {
	t.Cleanup(plugin.SetReassertEvery(50 * time.Millisecond))
	h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"\nstartTimeout: 1s")
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"}), "app", burstable)
	own, err := h.rt.CreateUnstarted(h.rt.RunPod(nritest.PodSpec{Name: "own", QoS: "guaranteed"}), "app", guaranteed(2))
	if err != nil {
		t.Fatal(err)
	}
	ownCPUs := h.cpus(own).String()
	waitMetric(t, h, "coreguard_exclusive_containers 0")
	if err := h.rt.Start(own); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.check()
	if got := h.cpus(own).String(); got != ownCPUs {
		t.Errorf("late container on %s, want its own free cores %s back", got, ownCPUs)
	}

	lost, err := h.rt.CreateUnstarted(h.rt.RunPod(nritest.PodSpec{Name: "lost", QoS: "guaranteed"}), "app", guaranteed(2))
	if err != nil {
		t.Fatal(err)
	}
	lostCPUs := h.cpus(lost).String()
	waitMetric(t, h, "coreguard_exclusive_containers 1")
	taker := h.create(h.rt.RunPod(nritest.PodSpec{Name: "taker", QoS: "guaranteed"}), "app", guaranteed(2))
	if got := h.cpus(taker).String(); got != lostCPUs {
		t.Fatalf("the next pinning got %s, want the given-back %s", got, lostCPUs)
	}
	if err := h.rt.Start(lost); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.check() // lost moved to other whole cores, no overlap
	if got := h.cpus(lost).String(); got == lostCPUs {
		t.Errorf("late container still on %s, which %s holds", got, "taker")
	}
}

// missPool plays a shared container s being created when a pinning moves
// the pool: the update for it is lost (containerd changes only the stored
// spec then), and s still holds the old pool when it starts.
func missPool(t *testing.T, oldRuntime bool) (*harness, string) {
	t.Helper()
	h := newHarness(t, sysfsgen.IntelHT2S, "reservedSystemCPUs: \"0,40\"")
	if oldRuntime {
		h.plugin.PretendOldRuntime()
	}
	h.rt.LoseUpdatesBeforeStart = true
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "b", QoS: "burstable"}), "app", burstable)
	s, err := h.rt.CreateUnstarted(h.rt.RunPod(nritest.PodSpec{Name: "s", QoS: "besteffort"}), "app", nritest.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "g", QoS: "guaranteed"}), "app", guaranteed(2))
	if got := h.cpus(s).String(); got != "0-79" {
		t.Fatalf("the update for the container being created was not lost (%s): the test plays nothing", got)
	}
	return h, s
}

// TestPoolMissedDuringCreationIsResent: a shared container that missed the
// pool while being created gets it when it starts.
func TestPoolMissedDuringCreationIsResent(t *testing.T) {
	h, s := missPool(t, false)
	if err := h.rt.Start(s); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.check()
}

func TestTakesUnsolicited(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.12.1": true, "v0.12.3": true, "v0.12.5": true, "v0.13.0": true, "v1.0.0": true,
		"v0.12.0": false, "v0.11.0": false, "v0.9.1-0.20250219030224-e597e7849f24": false, "v0.3.0": false,
		"unknown": false, "": false,
	} {
		if got := plugin.TakesUnsolicited(v); got != want {
			t.Errorf("TakesUnsolicited(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestOwedUpdatesRideOnAnswers: on a runtime whose NRI deadlocks on
// updates sent outside its requests (before v0.12.1), what coreguard owes a
// container goes out in the answer to the next request that can carry
// updates, here the next creation.
func TestOwedUpdatesRideOnAnswers(t *testing.T) {
	h, s := missPool(t, true)
	if err := h.rt.Start(s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // nothing may go out on its own
	if got := h.cpus(s).String(); got != "0-79" {
		t.Fatalf("an update went out outside a request (%s)", got)
	}
	h.create(h.rt.RunPod(nritest.PodSpec{Name: "next", QoS: "besteffort"}), "app", nritest.Resources{})
	h.check()
}
