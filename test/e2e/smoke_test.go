package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// TestSmoke runs a Guaranteed and a Burstable pod on each real runtime
// and checks that the kernel enforces what CRI asked for, then that
// teardown leaves nothing behind. It is the baseline the NRI plugin tests
// build on, and it checks the runtime versions README.md lists as tested.
func TestSmoke(t *testing.T) {
	forEachRuntime(t, testSmoke)
}

func testSmoke(t *testing.T, x expect) {
	harness.SkipIfRuntimeUnavailable(t, x.runtime, "")
	rt := harness.Start(t, harness.Options{Runtime: x.runtime})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := rt.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime %s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	if v.RuntimeName != x.name || v.RuntimeVersion != x.version {
		t.Errorf("runtime %s %s, want %s %s (the version README.md lists as tested; update both with the install script)",
			v.RuntimeName, v.RuntimeVersion, x.name, x.version)
	}
	mode, err := harness.DetectCgroupMode()
	if err != nil {
		t.Fatal(err)
	}
	hostCpus, err := harness.ReadCgroupFile("cpuset", "/", cpusetFile(mode))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Guaranteed", func(t *testing.T) {
		res := harness.Resources{CPULimit: 1000, MemLimit: 64 << 20}
		c := runOne(ctx, t, rt, res, []string{"cpus"})
		if c.Pod.QoS != harness.Guaranteed || c.Pod.CgroupParent != rt.CgroupRoot+"/pod"+c.Pod.UID {
			t.Errorf("QoS %s, cgroup parent %s", c.Pod.QoS, c.Pod.CgroupParent)
		}
		st := checkCPU(ctx, t, c, hostCpus, 100000, 1024)
		logs, err := c.WaitForLog(ctx, "Cpus_allowed_list:")
		if err != nil {
			t.Fatal(err)
		}
		if want := "Cpus_allowed_list: " + st.CpusAllowed; !strings.Contains(logs, want) {
			t.Errorf("workload printed %q, want %q", strings.TrimSpace(logs), want)
		}
		checkPodCgroup(t, c.Pod, 100000, 1024)
	})

	t.Run("Burstable", func(t *testing.T) {
		res := harness.Resources{CPURequest: 250, CPULimit: 500, MemLimit: 128 << 20}
		file := "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
		if mode == harness.CgroupV2 {
			file = "/sys/fs/cgroup/cpu.max"
		}
		c := runOne(ctx, t, rt, res, []string{"cat", file})
		if c.Pod.QoS != harness.Burstable || !strings.HasPrefix(c.Pod.CgroupParent, rt.CgroupRoot+"/burstable/pod") {
			t.Errorf("QoS %s, cgroup parent %s", c.Pod.QoS, c.Pod.CgroupParent)
		}
		checkCPU(ctx, t, c, hostCpus, 50000, 256)
		// The container sees its own cgroup at /sys/fs/cgroup from inside.
		logs, err := c.WaitForLog(ctx, "==> "+file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "50000") {
			t.Errorf("quota seen from inside the container: %q, want 50000", logs)
		}
		checkPodCgroup(t, c.Pod, 50000, 256)
	})

	// Without kubelet's pod cgroup setup, runc still creates the pod-level
	// directory for the container, but with no limit of its own.
	t.Run("PodCgroupNotPrecreated", func(t *testing.T) {
		res := harness.Resources{CPURequest: 250, CPULimit: 500}
		pod, err := rt.RunPod(ctx, harness.PodOptions{Containers: []harness.Resources{res}, NoPodCgroup: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pod.RunContainer(ctx, harness.ContainerOptions{Resources: res}); err != nil {
			t.Fatal(err)
		}
		s, err := harness.ReadCPUState(pod.CgroupParent, 0)
		if err != nil {
			t.Fatalf("pod cgroup should exist once a container runs: %v", err)
		}
		if s.Quota != -1 || s.Shares != defaultShares(mode) {
			t.Errorf("runc-created pod cgroup: quota %d shares %d, want -1 and default", s.Quota, s.Shares)
		}
	})

	// Two busy threads under a 100m limit get throttled within a few periods
	// even on a loaded machine (with 500m they need more than half a CPU
	// per period to hit the limit at all, which a busy 2-CPU box may not
	// give them).
	t.Run("BurnThrottled", func(t *testing.T) {
		res := harness.Resources{CPURequest: 50, CPULimit: 100}
		c := runOne(ctx, t, rt, res, []string{"burn", "2"})
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := c.CPU(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stat["nr_throttled"] > 0 {
				t.Logf("throttled: %v", st.Stat)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("never throttled: %v", st.Stat)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("PrivilegedHostPID", func(t *testing.T) {
		pod, err := rt.RunPod(ctx, harness.PodOptions{Privileged: true, HostPID: true, HostIPC: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := pod.RunContainer(ctx, harness.ContainerOptions{Privileged: true, Args: []string{"cat", "/proc/1/cmdline"}})
		if err != nil {
			t.Fatal(err)
		}
		// With the host PID namespace, pid 1 is the host's init, not the pause process.
		logs, err := c.WaitForLog(ctx, "==> /proc/1/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs, "/workload") {
			t.Errorf("pid 1 is the sandbox's, host PID not shared: %q", logs)
		}
		if pod.QoS != harness.BestEffort || !strings.HasPrefix(pod.CgroupParent, rt.CgroupRoot+"/besteffort/pod") {
			t.Errorf("QoS %s, cgroup parent %s", pod.QoS, pod.CgroupParent)
		}
	})

	// CNI (loopback) gives an ordinary pod a network namespace of its own;
	// a host-network pod shares the node's.
	t.Run("NetworkNamespace", func(t *testing.T) {
		st, err := rt.CRI.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.GetStatus().GetConditions() {
			if c.Type == runtimeapi.NetworkReady && !c.Status {
				t.Errorf("NetworkReady false: %s %s", c.Reason, c.Message)
			}
		}
		host, err := harness.HostNetNS()
		if err != nil {
			t.Fatal(err)
		}
		for _, hostNetwork := range []bool{false, true} {
			pod, err := rt.RunPod(ctx, harness.PodOptions{HostNetwork: hostNetwork})
			if err != nil {
				t.Fatal(err)
			}
			c, err := pod.RunContainer(ctx, harness.ContainerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cs, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ns, err := harness.NetNS(cs.Pid)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := pod.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ip := ps.GetStatus().GetNetwork().GetIp()
			t.Logf("hostNetwork=%v: container netns %s (host %s), pod IP %q", hostNetwork, ns, host, ip)
			if hostNetwork != (ns == host) {
				t.Errorf("hostNetwork=%v but container netns %s, host's %s", hostNetwork, ns, host)
			}
			if want := map[bool]string{false: "127.0.0.1", true: ""}[hostNetwork]; ip != want {
				t.Errorf("hostNetwork=%v: pod IP %q, want %q", hostNetwork, ip, want)
			}
		}
	})

	// Pods and containers survive a runtime restart; CRI answers again.
	t.Run("Restart", func(t *testing.T) {
		res := harness.Resources{CPULimit: 200, MemLimit: 32 << 20}
		c := runOne(ctx, t, rt, res, nil)
		before := rt.PID()
		t0 := time.Now()
		if err := rt.Restart(); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart took %v", time.Since(t0).Round(time.Millisecond))
		if rt.PID() == before {
			t.Errorf("%s pid unchanged after restart", x.name)
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.CRI.State.String() != "CONTAINER_RUNNING" {
			t.Errorf("container state after restart: %s", st.CRI.State)
		}
	})

	pid := rt.PID()
	t0 := time.Now()
	if err := rt.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	t.Logf("teardown took %v", time.Since(t0).Round(time.Millisecond))
	if left := rt.Leftovers(); len(left) > 0 {
		t.Errorf("left behind after teardown:\n%s", strings.Join(left, "\n"))
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("%s pid %d still alive", x.name, pid)
	}
}

func runOne(ctx context.Context, t *testing.T, rt *harness.Runtime, res harness.Resources, args []string) *harness.Container {
	t.Helper()
	t0 := time.Now()
	pod, err := rt.RunPod(ctx, harness.PodOptions{Containers: []harness.Resources{res}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Args: args, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod + container running after %v", time.Since(t0).Round(time.Millisecond))
	return c
}

// checkCPU compares the container's cgroup with the CRI request: quota and
// shares as kubelet computed them; no cpuset asked, so all host CPUs.
func checkCPU(ctx context.Context, t *testing.T, c *harness.Container, hostCpus string, quota, shares int64) *harness.CPUState {
	t.Helper()
	st, err := c.CPU(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %+v", c.Pod.QoS, *st)
	req := c.Config.Linux.Resources
	if req.CpuQuota != quota || req.CpuShares != shares {
		t.Errorf("CRI request quota %d shares %d, want %d %d", req.CpuQuota, req.CpuShares, quota, shares)
	}
	if st.Quota != quota || st.Period != harness.CFSPeriod {
		t.Errorf("cgroup quota/period %d/%d, want %d/%d", st.Quota, st.Period, quota, harness.CFSPeriod)
	}
	if want := sharesIn(st.Mode, shares); st.Shares != want {
		t.Errorf("cgroup shares/weight %d, want %d", st.Shares, want)
	}
	if st.Cpus != hostCpus || st.CpusAllowed != hostCpus {
		t.Errorf("cpuset.cpus %q, Cpus_allowed_list %q, want host's %q", st.Cpus, st.CpusAllowed, hostCpus)
	}
	if !strings.HasPrefix(st.CgroupsPath, c.Pod.CgroupParent+"/") {
		t.Errorf("container cgroup %s not under pod cgroup %s", st.CgroupsPath, c.Pod.CgroupParent)
	}
	return st
}

// checkPodCgroup verifies the pod-level values written like kubelet does.
func checkPodCgroup(t *testing.T, pod *harness.Pod, quota, shares int64) {
	t.Helper()
	s, err := harness.ReadCPUState(pod.CgroupParent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Quota != quota || s.Shares != sharesIn(s.Mode, shares) {
		t.Errorf("pod cgroup quota %d shares %d, want %d %d", s.Quota, s.Shares, quota, shares)
	}
}

func sharesIn(mode harness.CgroupMode, shares int64) int64 {
	if mode == harness.CgroupV2 {
		return harness.SharesToWeight(shares)
	}
	return shares
}

func defaultShares(mode harness.CgroupMode) int64 {
	if mode == harness.CgroupV2 {
		return 100
	}
	return 1024
}

func cpusetFile(mode harness.CgroupMode) string {
	if mode == harness.CgroupV2 {
		return "cpuset.cpus.effective"
	}
	return "cpuset.cpus"
}
