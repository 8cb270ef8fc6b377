package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/test/e2e/harness"
)

// guaranteed1 is the pinned pod's one container: Guaranteed, 1 CPU.
var guaranteed1 = harness.Resources{CPULimit: 1000, MemLimit: 64 << 20}

var pinSeq atomic.Int64

// pinning measures one pinned pod made as kubelet makes it: RunPodSandbox,
// CreateContainer, StartContainer; then, under coreguard, the wait until
// no shared container's cpuset holds the pinned core, and the invariant;
// then StopContainer, the wait until every shared container holds the core
// again, the invariant again, and the pod's removal. Invariant violations
// are returned apart from errors, which end the run.
func (n *node) pinning(ctx context.Context, p poller, settle time.Duration) (s sample, violations []string, err error) {
	name := fmt.Sprintf("pinned-%d", pinSeq.Add(1))
	t0 := time.Now()
	pod, err := n.rt.RunPod(ctx, harness.PodOptions{Name: name, Containers: []harness.Resources{guaranteed1}})
	if err != nil {
		return s, nil, err
	}
	s.sandbox = time.Since(t0)
	defer func() {
		err = errors.Join(err, pod.Stop(ctx), pod.Remove(ctx))
	}()
	// What kubelet has ready before it calls CreateContainer.
	cfg, err := pod.ContainerConfig(ctx, harness.ContainerOptions{Name: "main", Resources: guaranteed1})
	if err != nil {
		return s, nil, err
	}
	logPath := filepath.Join(pod.Config.LogDirectory, cfg.LogPath)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return s, nil, err
	}
	files := n.sharedFiles()

	t0 = time.Now()
	resp, err := n.rt.CRI.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.ID, Config: cfg, SandboxConfig: pod.Config})
	s.create = time.Since(t0)
	if err != nil {
		return s, nil, fmt.Errorf("CreateContainer %s: %w", name, err)
	}
	c := &harness.Container{ID: resp.ContainerId, Name: cfg.Metadata.Name, Pod: pod, Config: cfg, LogPath: logPath}
	if err := c.Start(ctx); err != nil {
		return s, nil, err
	}
	started := time.Now()
	s.running = started.Sub(t0)

	pinned := n.mode != modeNoop
	if pinned {
		lag, settled, err := p.lag(files, lacks(pinnedCPU), started, started.Add(settle))
		if err != nil {
			return s, nil, err
		}
		s.exclLag = lag
		if !settled {
			violations = append(violations, fmt.Sprintf("%s: shared containers still on CPU %d %v after %s started", n.rt.Kind, pinnedCPU, settle, name))
		}
		v, err := n.checkPinned(ctx, p, c, files)
		if err != nil {
			return s, nil, err
		}
		violations = append(violations, v...)
	}

	t0 = time.Now()
	if err := c.Stop(ctx, 2); err != nil {
		return s, violations, err
	}
	stopped := time.Now()
	s.stop = stopped.Sub(t0)
	if pinned {
		lag, settled, err := p.lag(files, holds(pinnedCPU), stopped, stopped.Add(settle))
		if err != nil {
			return s, violations, err
		}
		s.releaseLag = lag
		if !settled {
			violations = append(violations, fmt.Sprintf("%s: shared containers not back on CPU %d %v after %s stopped", n.rt.Kind, pinnedCPU, settle, name))
		}
		bad, err := p.failing(files, holds(pinnedCPU))
		if err != nil {
			return s, violations, err
		}
		for _, b := range bad {
			violations = append(violations, fmt.Sprintf("%s: after %s stopped, a shared container lacks CPU %d: %s", n.rt.Kind, name, pinnedCPU, b))
		}
	}
	return s, violations, nil
}

// checkPinned checks the invariant once the pinning settled: the pinned
// container runs on the pinned core alone (its cgroup and its process),
// and no shared container's cpuset holds it.
func (n *node) checkPinned(ctx context.Context, p poller, c *harness.Container, files []string) ([]string, error) {
	var out []string
	st, err := c.CPU(ctx)
	if err != nil {
		return nil, err
	}
	want := cpuset.New(pinnedCPU).String()
	if st.Cpus != want || st.CpusAllowed != want {
		out = append(out, fmt.Sprintf("%s: pinned %s on cpuset.cpus %q, Cpus_allowed_list %q; want %q",
			n.rt.Kind, c.Pod.Config.Metadata.Name, st.Cpus, st.CpusAllowed, want))
	}
	bad, err := p.failing(files, lacks(pinnedCPU))
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		out = append(out, fmt.Sprintf("%s: while %s runs, a shared container holds CPU %d: %s", n.rt.Kind, c.Pod.Config.Metadata.Name, pinnedCPU, b))
	}
	return out, nil
}
