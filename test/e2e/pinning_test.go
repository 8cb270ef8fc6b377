package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestOneCoreOddRequest is scenario (a): on one core with threads 0 and 1,
// a Guaranteed `cpu: 1` container is what kubelet's full-pcpus-only refuses
// with SMTAlignmentError. coreguard rounds it up to the whole core, or,
// with oddCPUs: reject, refuses it with its own message.
//
// The one core is the whole machine (no reserved CPUs): coreguard lets the
// pinned container empty the shared pool only while no shared container
// runs, and then refuses shared containers until it ends.
func TestOneCoreOddRequest(t *testing.T) {
	forEachRuntime(t, testOneCoreOddRequest)
}

func testOneCoreOddRequest(t *testing.T, x expect) {
	t.Run("round-up", func(t *testing.T) {
		rt := startRuntime(t, x)
		startCoreguard(t, rt, sysfsgen.TwoCPUsOneCore, "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		c, err := tryRunPod(ctx, rt, "odd", guaranteed1)
		if err != nil {
			t.Fatalf("Guaranteed cpu:1 on one 2-thread core (no reserved CPUs, no shared container) should run on cpuset 0-1: %v", err)
		}
		wantCPUs(ctx, t, c, "0-1")
		wantAnnotation(ctx, t, c, pinning.AnnotationCPUs, "0-1")

		// The shared pool is empty now: a shared container is refused.
		_, err = tryRunPod(ctx, rt, "burstable", burstable)
		if err == nil || !strings.Contains(err.Error(), "desc = "+x.refusal+`coreguard: container "main" in pod default/burstable: no CPU is left for containers without exclusive CPUs`) {
			t.Fatalf("burstable while the only core is pinned: err = %v, want coreguard's empty shared pool refusal", err)
		}
		t.Logf("refused as expected: %v", err)
		// Once the pinned container ends, shared containers run on the core.
		stopAndRemove(ctx, t, c)
		b := runPod(ctx, t, rt, "burstable-2", burstable)
		wantCPUs(ctx, t, b, "0-1")
	})
	t.Run("round-up, shared container running", func(t *testing.T) {
		rt := startRuntime(t, x)
		startCoreguard(t, rt, sysfsgen.TwoCPUsOneCore, "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		b := runPod(ctx, t, rt, "burstable", burstable)
		wantCPUs(ctx, t, b, "0-1")
		_, err := tryRunPod(ctx, rt, "odd", guaranteed1)
		if err == nil || !strings.Contains(err.Error(), "desc = "+x.refusal+"coreguard:") ||
			!strings.Contains(err.Error(), "it would leave the shared pool without a CPU") {
			t.Fatalf("Guaranteed cpu:1 while a shared container runs on the only core: err = %v, want coreguard's refusal to empty the shared pool", err)
		}
		t.Logf("refused as expected: %v", err)
		wantCPUs(ctx, t, b, "0-1")
	})
	t.Run("reject", func(t *testing.T) {
		rt := startRuntime(t, x)
		startCoreguard(t, rt, sysfsgen.TwoCPUsOneCore, "oddCPUs: reject\n")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_, err := tryRunPod(ctx, rt, "odd", guaranteed1)
		if err == nil || !strings.Contains(err.Error(), "desc = "+x.refusal+"coreguard:") || !strings.Contains(err.Error(), "SMT alignment error") {
			t.Fatalf("CreateContainer with oddCPUs: reject: err = %v, want coreguard's SMT alignment error", err)
		}
		t.Logf("refused as expected: %v", err)
	})
}

// TestSharedPoolShrinksAndGrows is scenario (b): two single-thread cores,
// CPU 0 reserved. A running burstable container leaves CPU 1 to a
// Guaranteed one and gets it back when that one ends.
func TestSharedPoolShrinksAndGrows(t *testing.T) {
	forEachRuntime(t, testSharedPoolShrinksAndGrows)
}

func testSharedPoolShrinksAndGrows(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, `reservedSystemCPUs: "0"`)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	b := runPod(ctx, t, rt, "burstable", burstable)
	wantCPUs(ctx, t, b, "0-1")
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	wantAnnotation(ctx, t, g, pinning.AnnotationCPUs, "1")
	waitCPUs(ctx, t, b, "0")

	// StopContainer's answer already carries the grown pool.
	if err := g.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitCPUs(ctx, t, b, "0-1")
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	waitCPUs(ctx, t, b, "0-1")
}

// wantAnnotation checks the container's OCI spec as created (the runtime's
// verbose status), where NRI adjustments land.
func wantAnnotation(ctx context.Context, t *testing.T, c *harness.Container, key, want string) {
	t.Helper()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec == nil {
		t.Fatalf("pod %s: no runtimeSpec in verbose status", c.Pod.Config.Metadata.Name)
	}
	if got, ok := st.Spec.Annotations[key]; !ok || got != want {
		t.Errorf("pod %s: spec annotation %s = %q (present %v), want %q", c.Pod.Config.Metadata.Name, key, got, ok, want)
	}
	if got := st.CRI.GetAnnotations()[key]; got != "" {
		t.Logf("CRI status annotations also show %s=%s", key, got)
	}
}

// TestSharedPoolCgroupFirst: with sharedPoolUpdates: cgroup-first (the
// default), the running shared containers' cgroups are off the pinned core
// when the pinned container's StartContainer returns: coreguard writes
// their cpuset.cpus right after answering the creation, and the start
// waits for the writes. kubelet's
// UpdateContainerResources, even one naming every CPU, cannot widen a
// shared container back onto the pinned core (coreguard's UpdateContainer
// answer sets the pool). The release grows the pool back.
func TestSharedPoolCgroupFirst(t *testing.T) {
	forEachRuntime(t, testSharedPoolCgroupFirst)
}

func testSharedPoolCgroupFirst(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	cg := startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0+"\nsharedPoolUpdates: cgroup-first\nmetricsAddress: \"127.0.0.1:0\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var shared []*harness.Container
	for _, name := range []string{"b1", "b2", "b3"} {
		b := runPod(ctx, t, rt, name, burstable)
		wantCPUs(ctx, t, b, "0-1")
		shared = append(shared, b)
	}
	pod, err := rt.RunPod(ctx, harness.PodOptions{Name: "guaranteed", Containers: []harness.Resources{guaranteed1}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := pod.CreateContainer(ctx, harness.ContainerOptions{Name: "main", Resources: guaranteed1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range shared {
		wantCPUs(ctx, t, b, "0") // no wait: written before the start
	}
	// By coreguard, not by the runtime (which, in-response, would have
	// applied updates in the answer before returning too).
	wantMetric(t, scrape(t, cg), `coreguard_cpuset_writes_total{result="ok"} 3`)
	wantCPUs(ctx, t, g, "1")

	// kubelet's update of a shared container: its resources as the pod
	// spec has them, and with a cpuset naming every CPU.
	updateResources(ctx, t, rt, shared[0], burstable)
	wantCPUs(ctx, t, shared[0], "0")
	wide := harness.LinuxResources(burstable)
	wide.CpusetCpus = "0-1"
	if _, err := rt.CRI.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: shared[1].ID, Linux: wide}); err != nil {
		t.Fatalf("UpdateContainerResources with cpuset 0-1: %v", err)
	}
	wantCPUs(ctx, t, shared[1], "0")

	if err := g.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, b := range shared {
		waitCPUs(ctx, t, b, "0-1")
	}
}
