package node

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/node/cluster"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKubeletComparison runs the same pods on kubelet's own static CPU
// manager (full-pcpus-only, reservedSystemCPUs 0, no coreguard) and on
// kubelet with cpuManagerPolicy none plus coreguard (reservedSystemCPUs 0),
// each on a fresh cluster, and records what each pod got. The table is
// logged and, with COREGUARD_COMPARISON_OUT=FILE, written as Markdown
// (docs/kubelet-comparison.md quotes it).
func TestKubeletComparison(t *testing.T) {
	var rows [2][]string
	t.Run("kubelet-static", func(t *testing.T) {
		c := startCluster(t, cluster.Options{
			CPUManagerPolicy: "static", ReservedSystemCPUs: "0",
			CPUManagerPolicyOptions: map[string]string{"full-pcpus-only": "true"},
			NoControllers:           true,
		})
		rows[0] = comparePods(t, c)
	})
	t.Run("coreguard", func(t *testing.T) {
		c := startCluster(t, cluster.Options{NoControllers: true})
		cg, err := coreguard.Start(coreguard.Options{
			Socket: c.Runtime.NRISocket, SysfsRoot: topologyDir(t, sysfsgen.TwoCPUsTwoCores),
			Config: "reservedSystemCPUs: \"0\"\nkubeletRootDir: " + c.KubeletRoot + "\n", Dir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cg.Stop)
		rows[1] = comparePods(t, c)
	})
	var b strings.Builder
	b.WriteString("| step | kubelet static, full-pcpus-only | kubelet none + coreguard |\n|---|---|---|\n")
	for i := range max(len(rows[0]), len(rows[1])) {
		cell := func(r []string) (string, string) {
			if i >= len(r) {
				return "", ""
			}
			step, what, _ := strings.Cut(r[i], "\t")
			return step, what
		}
		s0, w0 := cell(rows[0])
		s1, w1 := cell(rows[1])
		fmt.Fprintf(&b, "| %s | %s | %s |\n", max(s0, s1), w0, w1)
	}
	t.Logf("comparison:\n%s", b.String())
	if out := os.Getenv("COREGUARD_COMPARISON_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// comparePods runs the comparison's steps and returns "step\tresult" rows.
func comparePods(t *testing.T, c *cluster.Cluster) []string {
	var rows []string
	row := func(step, format string, a ...any) {
		rows = append(rows, step+"\t"+fmt.Sprintf(format, a...))
	}
	// kubelet's static policy moves shared containers on its reconcile
	// loop (cpuManagerReconcilePeriod 5 s): wait that long before reading.
	const reconcile = 6 * time.Second

	// A shared pod running before the pinning: how long it stays on the
	// pinned core (kubelet: until its reconcile; coreguard: not at all).
	createPod(t, c, podSpec{name: "early"})
	early := waitRunning(t, c, "default", "early")
	t0 := time.Now()
	createPod(t, c, guaranteed("g1", "1"))
	g1 := waitRunning(t, c, "default", "g1")
	row("Guaranteed `cpu: 1` created", "Running after %v", time.Since(t0).Round(10*time.Millisecond))
	row("a BestEffort pod running before it: off its core", "%s", offCore(t, c, early, containerCPU(t, c, g1).Cpus))
	createPod(t, c, podSpec{name: "be"})
	be := waitRunning(t, c, "default", "be")
	time.Sleep(reconcile)
	s := containerCPU(t, c, g1)
	row("its cpuset / container quota / pod quota", "`%s` / %d / %d", s.Cpus, s.Quota, podQuota(t, c, g1))
	row("BestEffort pod's cpuset", "`%s`", containerCPU(t, c, be).Cpus)

	t0 = time.Now()
	createPod(t, c, guaranteed("g2", "1"))
	row("second Guaranteed `cpu: 1` (no whole CPU left)", "%s", settleStatus(t, c, "g2", 15*time.Second))
	t.Logf("g2 after %v: %s", time.Since(t0).Round(10*time.Millisecond), settleStatus(t, c, "g2", 0))
	// A pod kubelet keeps retrying still holds its requests: remove it.
	deletePod(t, c, "default", "g2")

	createPod(t, c, podSpec{name: "frac", cpuReq: "500m", cpuLim: "500m", memReq: "32Mi", memLim: "32Mi"})
	frac := waitPod(t, c, "default", "frac", "settled", func(p *corev1.Pod) bool { return running(p) || p.Status.Phase == corev1.PodFailed })
	if running(frac) {
		s := containerCPU(t, c, frac)
		row("Guaranteed `cpu: 500m` (not integer)", "Running; cpuset `%s`, container quota %d, pod quota %d", s.Cpus, s.Quota, podQuota(t, c, frac))
	} else {
		row("Guaranteed `cpu: 500m` (not integer)", "%s", settleStatus(t, c, "frac", 0))
	}

	createPod(t, c, podSpec{name: "priv", privileged: true})
	row("privileged pod in `default`", "%s", settleStatus(t, c, "priv", 15*time.Second))

	deletePod(t, c, "default", "g1")
	time.Sleep(reconcile)
	row("after deleting the pinned pod: BestEffort cpuset", "`%s`", containerCPU(t, c, be).Cpus)
	return rows
}

// offCore polls the shared pod's cgroup until its cpuset no longer holds
// any of pinned's CPUs, and says after how long (from now: the pinned pod
// is Running) and where it ended.
func offCore(t *testing.T, c *cluster.Cluster, shared *corev1.Pod, pinned string) string {
	t.Helper()
	want, err := cpuset.Parse(pinned)
	if err != nil || want.IsEmpty() {
		return fmt.Sprintf("pinned pod's cpuset %q", pinned)
	}
	t0 := time.Now()
	for {
		list := containerCPU(t, c, shared).Cpus
		cpus, err := cpuset.Parse(list)
		if err == nil && !cpus.Intersects(want) {
			if d := time.Since(t0); d >= 50*time.Millisecond {
				return fmt.Sprintf("after %v (`%s`)", d.Round(100*time.Millisecond), list)
			}
			return fmt.Sprintf("already off it when the pinned pod ran (`%s`)", list)
		}
		if time.Since(t0) > 30*time.Second {
			return fmt.Sprintf("still on it after 30 s (`%s`)", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settleStatus waits up to d for the pod to leave Pending-without-reason and
// returns what kubectl get pods would show, with the waiting message.
func settleStatus(t *testing.T, c *cluster.Cluster, name string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p, err := c.Client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case running(p):
			return "Running"
		case p.Status.Phase == corev1.PodFailed:
			return fmt.Sprintf("Failed, reason %s: %s", p.Status.Reason, p.Status.Message)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "ContainerCreating" && w.Reason != "" {
				return fmt.Sprintf("%s: %s", w.Reason, w.Message)
			}
		}
		if time.Now().After(deadline) {
			return "Pending: " + describe(p, nil)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
