package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// burstSettle bounds the wait, after a burst of creations and removals,
// for every running container to hold what coreguard decided: the
// shared-pool updates the runtime applies after coreguard answers, and the
// pool re-sent to containers that missed it while being created (at their
// start). docs/config.md states the window.
const burstSettle = 15 * time.Second

// TestConcurrentBursts plays kubelet's pod workers: several goroutines
// create and remove shared pods (several containers each) through CRI
// while another creates and removes a Guaranteed pod, which is pinned to
// CPU 1 whenever it is free (CPU 0 reserved). After each burst settles, no
// shared container's cgroup holds the pinned core and the pinned container
// holds it alone: "no shared container runs on a pinned core" holds
// whatever the interleaving.
func TestConcurrentBursts(t *testing.T) {
	forEachRuntime(t, testConcurrentBursts)
}

func testConcurrentBursts(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	const (
		rounds         = 2
		sharedWorkers  = 3
		podsPerWorker  = 5
		ctrsPerPod     = 7
		pinnedAttempts = 5
	)
	var mu sync.Mutex
	shared := map[string]*harness.Container{} // running shared containers
	var pinned *harness.Container             // the running pinned one, if any
	var sharedPods []*harness.Pod
	created := 0

	for round := range rounds {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, sharedWorkers+1)
		for w := range sharedWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for i := range podsPerWorker {
					name := fmt.Sprintf("shared-%d-%d-%d", round, w, i)
					pod, err := rt.RunPod(ctx, harness.PodOptions{Name: name})
					if err != nil {
						errs <- err
						return
					}
					for k := range ctrsPerPod {
						res := burstable
						if rng.IntN(2) == 0 {
							res = harness.Resources{} // BestEffort
						}
						c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: fmt.Sprint("c", k), Resources: res})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						shared[c.ID] = c
						created++
						mu.Unlock()
					}
					mu.Lock()
					sharedPods = append(sharedPods, pod)
					// Remove an older pod now and then, as pods come and go.
					var gone *harness.Pod
					if len(sharedPods) > 3 && rng.IntN(2) == 0 {
						k := rng.IntN(len(sharedPods) - 1)
						gone = sharedPods[k]
						sharedPods = append(sharedPods[:k], sharedPods[k+1:]...)
						for id, c := range shared {
							if c.Pod == gone {
								delete(shared, id)
							}
						}
					}
					mu.Unlock()
					if gone != nil {
						if err := errors.Join(gone.Stop(ctx), gone.Remove(ctx)); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pinnedAttempts {
				c, err := tryRunPod(ctx, rt, fmt.Sprintf("pinned-%d-%d", round, i), guaranteed1)
				if err != nil {
					if !strings.Contains(err.Error(), "exclusive CPUs") {
						errs <- err
						return
					}
					continue // the core is held: kubelet would retry
				}
				mu.Lock()
				pinned, created = c, created+1
				mu.Unlock()
				time.Sleep(time.Duration(100+50*i) * time.Millisecond)
				if i < pinnedAttempts-1 || round < rounds-1 {
					mu.Lock()
					pinned = nil
					mu.Unlock()
					if err := errors.Join(c.Pod.Stop(ctx), c.Pod.Remove(ctx)); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(shared)
		mu.Unlock()
		t.Logf("round %d: %d shared containers running, pinned %v, %d created so far, burst took %v",
			round, n, pinned != nil, created, time.Since(t0).Round(time.Millisecond))
		if !x.updatesOutsideRequests {
			// What coreguard owes a container that missed the pool while
			// being created goes out with the runtime's next request: the
			// next creation on the node, as kubelet's next pod brings.
			c := runPod(ctx, t, rt, fmt.Sprintf("next-%d", round), harness.Resources{})
			shared[c.ID] = c
		}
		waitExclusive(ctx, t, shared, pinned)
	}
	if created < 200 {
		t.Errorf("the bursts created %d containers, want hundreds", created)
	}
}

// waitExclusive waits (burstSettle at most) until the pinned container,
// if any, runs on CPU 1 alone and every shared container on the pool: 0
// while CPU 1 is pinned, else 0-1. It reads the cgroups and the processes.
func waitExclusive(ctx context.Context, t *testing.T, shared map[string]*harness.Container, pinned *harness.Container) {
	t.Helper()
	pool := "0-1"
	if pinned != nil {
		pool = "0"
	}
	deadline := time.Now().Add(burstSettle)
	t0 := time.Now()
	for {
		var wrong []string
		if pinned != nil {
			if st, err := pinned.CPU(ctx); err != nil {
				t.Fatal(err)
			} else if st.Cpus != "1" || st.CpusAllowed != "1" {
				wrong = append(wrong, fmt.Sprintf("pinned %s on %s/%s", pinned.Pod.Config.Metadata.Name, st.Cpus, st.CpusAllowed))
			}
		}
		for _, c := range shared {
			st, err := c.CPU(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Cpus != pool || st.CpusAllowed != pool {
				wrong = append(wrong, fmt.Sprintf("%s/%s on %s/%s", c.Pod.Config.Metadata.Name, c.Name, st.Cpus, st.CpusAllowed))
			}
		}
		if len(wrong) == 0 {
			t.Logf("all %d shared containers on %s after %v", len(shared), pool, time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the burst, %d containers are not where coreguard put them (shared pool %s):\n  %s",
				burstSettle, len(wrong), pool, strings.Join(wrong, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refuser is a second NRI plugin, after coreguard, that refuses containers
// named "refused": the runtime then fails a creation coreguard already
// answered, and tells coreguard nothing.
type refuser struct{}

func (refuser) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if c.GetName() == "refused" {
		return nil, nil, errors.New("refused by the second plugin")
	}
	return nil, nil, nil
}

func startRefuser(t *testing.T, socket string) {
	t.Helper()
	st, err := stub.New(refuser{}, stub.WithPluginName("refuser"), stub.WithPluginIdx("20"), stub.WithSocketPath(socket))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Start(ctx); err != nil {
		t.Fatalf("refuser plugin: %v", err)
	}
	t.Cleanup(st.Stop)
}

// TestFailedCreationsGiveCoresBack: creations that fail after coreguard
// answered — a Guaranteed pod whose command does not exist, retried 20
// times as kubelet retries it, and a container a second NRI plugin refuses
// — leave the free whole cores and coreguard's container counts where they
// were once startTimeout (here 2s) has passed; with coreguard restarted in
// the middle too (the runtime's restart restarts the pre-installed plugin).
func TestFailedCreationsGiveCoresBack(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, x expect) {
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) { testFailedCreations(t, x, restart) })
		}
	})
}

func testFailedCreations(t *testing.T, x expect, restart bool) {
	rt := startRuntime(t, x)
	cg := startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0+"\nstartTimeout: 2s\nmetricsAddress: \"127.0.0.1:0\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := runPod(ctx, t, rt, "burstable", burstable)
	wantCPUs(ctx, t, b, "0-1")

	typo, err := rt.RunPod(ctx, harness.PodOptions{Name: "typo", Containers: []harness.Resources{guaranteed1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if i == 10 && restart {
			syncs := cg.Syncs()
			if err := rt.Restart(); err != nil {
				t.Fatal(err)
			}
			if err := cg.WaitSyncs(syncs+1, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		_, err := typo.RunContainer(ctx, harness.ContainerOptions{Name: "app", Attempt: uint32(i),
			Command: []string{"/no/such/command"}, Resources: guaranteed1})
		if err == nil {
			t.Fatalf("attempt %d: a container with a missing command started", i)
		}
	}
	waitCountsBack(t, cg)
	waitPoolBack(ctx, t, x, b)

	startRefuser(t, rt.NRISocket) // after the restart: it does not reconnect
	refusedPod, err := rt.RunPod(ctx, harness.PodOptions{Name: "refused", Containers: []harness.Resources{guaranteed1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refusedPod.CreateContainer(ctx, harness.ContainerOptions{Name: "refused", Resources: guaranteed1}); err == nil ||
		!strings.Contains(err.Error(), "refused by the second plugin") {
		t.Fatalf("container refused by the second plugin: %v", err)
	}
	waitCountsBack(t, cg)
	waitPoolBack(ctx, t, x, b)

	// And the core can be had: a Guaranteed pod is pinned to it.
	g := runPod(ctx, t, rt, "guaranteed", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	waitCPUs(ctx, t, b, "0")
}

// waitPoolBack waits for the shared container to have the whole pool back.
// A runtime that takes no updates outside its requests gets it with its
// next request (the next creation, which follows in the test).
func waitPoolBack(ctx context.Context, t *testing.T, x expect, b *harness.Container) {
	t.Helper()
	if x.updatesOutsideRequests {
		waitCPUs(ctx, t, b, "0-1")
	}
}

// waitCountsBack waits until coreguard's counts are what runs: one shared
// container, nothing held exclusively, nothing waiting to start. Bound:
// startTimeout (2s) plus coreguard's 10 s check, plus slack.
func waitCountsBack(t *testing.T, cg instance) {
	t.Helper()
	deadline := time.Now().Add(2*time.Second + 15*time.Second)
	for {
		body := scrape(t, cg)
		if strings.Contains(body, "\ncoreguard_exclusive_containers 0\n") && strings.Contains(body, "\ncoreguard_unstarted_containers 0\n") &&
			strings.Contains(body, "\ncoreguard_shared_containers 1\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("coreguard's counts did not come back:\n  %s", strings.Join(metricLines(body, "coreguard_"), "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
