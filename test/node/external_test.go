package node

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/test/node/cluster"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// externalConfig is coreguard's configuration in TestNodeExternal: CPU 0
// for the system and shared pods, CPU 1 for one pinned pod, every CFS
// quota lifted.
const externalConfig = `reservedSystemCPUs: "0"
cfsQuota: clear
`

// TestNodeExternal runs coreguard as an external NRI plugin (a process
// next to containerd, the generated 2-CPU topology of this machine) under
// kubelet with cpuManagerPolicy none, and drives it through the API server.
func TestNodeExternal(t *testing.T) {
	c := startCluster(t, cluster.Options{})
	cg, err := coreguard.Start(coreguard.Options{
		Socket: c.Runtime.NRISocket, SysfsRoot: topologyDir(t, sysfsgen.TwoCPUsTwoCores),
		Config: externalConfig + "kubeletRootDir: " + c.KubeletRoot + "\n", Dir: t.TempDir(), MetricsAddress: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(cg.LogTail(60))
		}
		cg.Stop()
	})

	var pinned *corev1.Pod
	t.Run("pinning", func(t *testing.T) {
		t0 := time.Now()
		// No CPU request (kubelet's allocatable counts requests: 2 CPUs must
		// hold two Guaranteed `cpu: 1` pods below), a 500m limit.
		createPod(t, c, podSpec{name: "shared", cpuReq: "0", cpuLim: "500m", memReq: "32Mi", memLim: "64Mi"})
		shared := waitRunning(t, c, "default", "shared")
		t.Logf("burstable pod Running %v after create", time.Since(t0).Round(time.Millisecond))
		waitCpus(t, c, shared, "0-1")

		createPod(t, c, guaranteed("pinned", "1"))
		p := waitRunning(t, c, "default", "pinned")
		waitCpus(t, c, p, "1")
		waitCpus(t, c, shared, "0")
		if q := containerCPU(t, c, p).Quota; q != -1 {
			t.Errorf("pinned container cpu.cfs_quota_us = %d, want -1", q)
		}
		waitPodQuota(t, c, p, -1, 5*time.Second)

		createPod(t, c, podSpec{name: "besteffort"})
		be := waitRunning(t, c, "default", "besteffort")
		waitCpus(t, c, be, "0")

		// No whole core left: the second Guaranteed pod is refused, and
		// kubelet shows why.
		createPod(t, c, guaranteed("second", "1"))
		msg := waitCreateContainerError(t, c, "default", "second")
		if !strings.Contains(msg, "coreguard") {
			t.Errorf("second Guaranteed pod: CreateContainerError %q does not name coreguard", msg)
		}
		t.Logf("second Guaranteed pod: %s", msg)
		deletePod(t, c, "default", "second")

		// Deleting the pinned pod returns its CPU to the shared pool.
		deletePod(t, c, "default", "pinned")
		waitCpus(t, c, shared, "0-1")
		waitCpus(t, c, be, "0-1")

		createPod(t, c, guaranteed("pinned2", "1"))
		pinned = waitRunning(t, c, "default", "pinned2")
		waitCpus(t, c, pinned, "1")
		waitCpus(t, c, shared, "0")
		waitCpus(t, c, be, "0")
		deletePod(t, c, "default", "besteffort")
	})
	if pinned == nil {
		t.FailNow()
	}

	t.Run("quota", func(t *testing.T) {
		shared := getPod(t, c, "default", "shared")
		// kubelet writes the burstable pod's limit (500m -> 50000) into the
		// pod cgroup; with cfsQuota: clear coreguard lifts it.
		waitPodQuota(t, c, shared, -1, 15*time.Second)
		waitPodQuota(t, c, pinned, -1, 5*time.Second)

		// Through kubelet's pod resyncs (syncFrequency 10 s): watch both
		// pod cgroups for 12 s.
		seen := watchPodQuota(t, c, 12*time.Second, shared, pinned)
		t.Logf("pod quotas seen over 12 s of kubelet resyncs: %v", seen)
		waitPodQuota(t, c, shared, -1, 12*time.Second)
		waitPodQuota(t, c, pinned, -1, 12*time.Second)

		// coreguard's periodic re-assert: write a quota into the pinned
		// pod's cgroup the way kubelet does (100000 for `cpu: 1`) and see
		// it lifted again within its 10 s period.
		dir, err := harness.CgroupDir("cpu", podCgroup(c, pinned))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("100000"), 0o644); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		waitPodQuota(t, c, pinned, -1, 12*time.Second)
		t.Logf("pod quota 100000 written behind coreguard's back: back to -1 after %v", time.Since(t0).Round(10*time.Millisecond))

		// In-place resize of the burstable pod's CPU limit 500m -> 800m.
		t0 = time.Now()
		patch := `{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"800m"}}}]}}`
		if _, err := c.Client.CoreV1().Pods("default").Patch(context.Background(), "shared",
			types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize"); err != nil {
			t.Fatalf("resize: %v", err)
		}
		// Done when kubelet has seen the new generation and shows no
		// PodResizePending / PodResizeInProgress condition.
		resized := waitPod(t, c, "default", "shared", "resized to 800m", func(p *corev1.Pod) bool {
			if p.Status.ObservedGeneration < p.Generation || !running(p) {
				return false
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodResizePending || cond.Type == corev1.PodResizeInProgress {
					return false
				}
			}
			return true
		})
		if l := resized.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]; l.Cmp(resource.MustParse("800m")) != 0 {
			t.Fatalf("spec CPU limit after resize = %s, want 800m", l.String())
		}
		// kubelet reports the limit the runtime says the container has; with
		// the quota lifted (-1) it keeps showing the previous value.
		t.Logf("status CPU limit after the resize: %s", resized.Status.ContainerStatuses[0].Resources.Limits.Cpu())
		t.Logf("resize actuated by kubelet after %v", time.Since(t0).Round(time.Millisecond))
		seen = watchPodQuota(t, c, 2*time.Second, resized)
		t.Logf("pod quota seen in the 2 s after the resize: %v", seen)
		waitPodQuota(t, c, resized, -1, 12*time.Second)
		if q := containerCPU(t, c, resized).Quota; q != -1 {
			t.Errorf("resized container cpu.cfs_quota_us = %d, want -1", q)
		}

		// Container restarts: kill each container's process; kubelet starts
		// a new container, which coreguard handles like any creation.
		for _, name := range []string{"shared", "pinned2"} {
			p := getPod(t, c, "default", name)
			before := p.Status.ContainerStatuses[0].RestartCount
			killContainer(t, c, p)
			p = waitPod(t, c, "default", name, "restarted", func(p *corev1.Pod) bool {
				return running(p) && p.Status.ContainerStatuses[0].RestartCount > before
			})
			if q := containerCPU(t, c, p).Quota; q != -1 {
				t.Errorf("%s after restart: container cpu.cfs_quota_us = %d, want -1", name, q)
			}
			waitPodQuota(t, c, p, -1, 12*time.Second)
			if name == "pinned2" {
				waitCpus(t, c, p, "1")
				pinned = p
			} else {
				waitCpus(t, c, p, "0")
			}
		}
	})

	t.Run("admission", func(t *testing.T) {
		for _, ns := range []string{"default", "kube-system"} {
			createPod(t, c, podSpec{name: "priv", ns: ns, privileged: true})
			createPod(t, c, podSpec{name: "hostns", ns: ns, hostPID: true, hostNetwork: true})
		}
		for _, tc := range []struct{ name, want string }{{"priv", "privileged"}, {"hostns", "host"}} {
			msg := waitCreateContainerError(t, c, "default", tc.name)
			if !strings.Contains(msg, "coreguard") || !strings.Contains(msg, tc.want) {
				t.Errorf("default/%s: CreateContainerError %q, want coreguard's refusal naming %q", tc.name, msg, tc.want)
			}
			ev := waitEvent(t, c, "default", tc.name, "Failed", "coreguard", tc.want)
			t.Logf("default/%s event: %s", tc.name, ev)
			waitRunning(t, c, "kube-system", tc.name)
		}

		// A static pod never passes the API server's admission; coreguard
		// still refuses it at the runtime.
		if err := c.WriteStaticPod("static-priv.yaml", staticPrivileged); err != nil {
			t.Fatal(err)
		}
		mirror := "static-priv-" + cluster.NodeName
		msg := waitCreateContainerError(t, c, "default", mirror)
		if !strings.Contains(msg, "coreguard") || !strings.Contains(msg, "privileged") {
			t.Errorf("static pod: CreateContainerError %q, want coreguard's refusal", msg)
		}
		t.Logf("static pod %s: %s", mirror, msg)
		if err := c.RemoveStaticPod("static-priv.yaml"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		url, err := cg.MetricsURL()
		if err != nil {
			t.Fatal(err)
		}
		m := scrape(t, url)
		for _, want := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"coreguard_admission_rejections_total", []string{`namespace="default"`, `reason="privileged"`}, 2},
			{"coreguard_admission_rejections_total", []string{`namespace="default"`, `reason="hostPID"`}, 1},
			{"coreguard_admission_rejections_total", []string{`namespace="default"`, `reason="hostNetwork"`}, 1},
			{"coreguard_allocation_failures_total", nil, 1},
			{"coreguard_exclusive_containers", nil, 1},
		} {
			got, key := metric(m, want.name, want.labels...)
			if got < want.min {
				t.Errorf("%s%v = %v (%s), want >= %v", want.name, want.labels, got, key, want.min)
			}
		}
		for k, v := range m {
			if strings.HasPrefix(k, "coreguard_") && !strings.Contains(k, "duration") {
				t.Logf("metric %s %v", k, v)
			}
		}
		// The API server's node proxy refuses loopback node addresses, and
		// this node's address is 127.0.0.1: note what it says.
		_, perr := c.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + cluster.NodeName + "/proxy/healthz").DoRaw(context.Background())
		t.Logf("node proxy: %v", perr)
	})
}

// staticPrivileged is a privileged static pod in default.
var staticPrivileged = `apiVersion: v1
kind: Pod
metadata:
  name: static-priv
  namespace: default
spec:
  containers:
  - name: c
    image: ` + harness.WorkloadImage + `
    imagePullPolicy: Never
    args: [sleep]
    securityContext:
      privileged: true
`

// metric sums the samples of name whose labels include every given pair.
func metric(m map[string]float64, name string, labels ...string) (float64, string) {
	var sum float64
	var keys []string
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(k, l) {
				ok = false
			}
		}
		if ok {
			sum += v
			keys = append(keys, k)
		}
	}
	return sum, strings.Join(keys, ", ")
}

// watchPodQuota samples the pod cgroups' quotas every 50 ms and returns
// each value seen per pod.
func watchPodQuota(t *testing.T, c *cluster.Cluster, d time.Duration, pods ...*corev1.Pod) map[string][]int64 {
	t.Helper()
	seen := map[string][]int64{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, p := range pods {
			q := podQuota(t, c, p)
			if s := seen[p.Name]; len(s) == 0 || s[len(s)-1] != q {
				seen[p.Name] = append(s, q)
			}
		}
	}
	return seen
}

// killContainer SIGKILLs every process of the pod's container.
func killContainer(t *testing.T, c *cluster.Cluster, p *corev1.Pod) {
	t.Helper()
	procs, err := harness.ReadCgroupFile("cpu", containerCgroup(c, p), "cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(procs) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
