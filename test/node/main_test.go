// Package node runs coreguard under a real kubelet on a private single-node
// cluster (test/node/cluster) and checks what kubectl users see: pod status,
// events, and the cgroup files kubelet and coreguard write.
package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/test/node/cluster"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

func TestMain(m *testing.M) {
	code := m.Run()
	coreguard.RemoveBuild()
	os.Exit(code)
}

// settle bounds waits for kubelet and coreguard to act on a change.
const settle = 60 * time.Second

func skipIfUnavailable(t *testing.T) {
	t.Helper()
	why := cluster.Missing()
	if why == "" {
		return
	}
	if os.Getenv("COREGUARD_E2E_REQUIRED") == "1" {
		t.Fatalf("node test prerequisites missing and COREGUARD_E2E_REQUIRED=1: %s", why)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n", t.Name(), why)
	t.Skip(why)
}

// startCluster starts a cluster torn down (and checked for leftovers) at
// the end of t; component log tails are logged when t failed.
func startCluster(t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	skipIfUnavailable(t)
	if _, err := coreguard.Build(); err != nil { // before the clock starts
		t.Fatal(err)
	}
	c, err := cluster.Launch(opts, t.Logf)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.DumpLogs(40)
		}
		t0 := time.Now()
		if err := c.Close(); err != nil {
			t.Errorf("cluster teardown: %v", err)
		}
		if left := c.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after teardown:\n  %s", strings.Join(left, "\n  "))
		}
		t.Logf("cluster torn down in %v, nothing left", time.Since(t0).Round(time.Millisecond))
	})
	return c
}

// topologyDir writes a generated sysfs tree describing this machine's CPUs
// 0 and 1 in the given shape.
func topologyDir(t *testing.T, shape string) string {
	t.Helper()
	spec, ok := sysfsgen.Shapes()[shape]
	if !ok {
		t.Fatalf("no sysfsgen shape %q", shape)
	}
	dir := t.TempDir()
	if err := sysfsgen.Write(dir, spec); err != nil {
		t.Fatalf("sysfsgen %s: %v", shape, err)
	}
	return dir
}

// ---- pods ------------------------------------------------------------------

type podSpec struct {
	name, ns       string
	cpuReq, cpuLim string // "" = none
	memReq, memLim string
	privileged     bool
	hostPID        bool
	hostNetwork    bool
	annotations    map[string]string
	runtimeClass   string // RuntimeClass name, "" none
	sysVolume      string // a host dir mounted at /sys (a hostPath volume), "" none
}

func guaranteed(name string, cpu string) podSpec {
	return podSpec{name: name, ns: "default", cpuReq: cpu, cpuLim: cpu, memReq: "64Mi", memLim: "64Mi"}
}

func (s podSpec) pod() *corev1.Pod {
	rl := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	grace := int64(2)
	ctr := corev1.Container{
		Name: "c", Image: harness.WorkloadImage, ImagePullPolicy: corev1.PullNever, Args: []string{"sleep"},
		Resources: corev1.ResourceRequirements{Requests: rl(s.cpuReq, s.memReq), Limits: rl(s.cpuLim, s.memLim)},
	}
	if s.privileged {
		priv := true
		ctr.SecurityContext = &corev1.SecurityContext{Privileged: &priv}
	}
	var volumes []corev1.Volume
	if s.sysVolume != "" {
		volumes = append(volumes, corev1.Volume{Name: "sys", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: s.sysVolume}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "sys", MountPath: "/sys"})
	}
	var runtimeClass *string
	if s.runtimeClass != "" {
		runtimeClass = &s.runtimeClass
	}
	ns := s.ns
	if ns == "" {
		ns = "default"
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns, Annotations: s.annotations},
		Spec: corev1.PodSpec{
			NodeName: cluster.NodeName, Containers: []corev1.Container{ctr},
			HostPID: s.hostPID, HostNetwork: s.hostNetwork, TerminationGracePeriodSeconds: &grace,
			Volumes: volumes, RuntimeClassName: runtimeClass,
			// The node's taints come and go with its conditions; these pods
			// must stay put.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
	}
}

func createPod(t *testing.T, c *cluster.Cluster, s podSpec) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(s.pod().Namespace).Create(context.Background(), s.pod(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", s.name, err)
	}
	return p
}

func getPod(t *testing.T, c *cluster.Cluster, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

// waitPod polls the pod until cond holds.
func waitPod(t *testing.T, c *cluster.Cluster, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s not %s after %v: %s", ns, name, what, settle, describe(p, err))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func describe(p *corev1.Pod, err error) string {
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodReady && c.Type != corev1.ContainersReady && c.Type != corev1.PodInitialized &&
			c.Type != corev1.PodScheduled && c.Type != "PodReadyToStartContainers" {
			fmt.Fprintf(&b, "; condition %s=%s %s %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, "; container %s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		if cs.Resources != nil {
			fmt.Fprintf(&b, " resources %v/%v", cs.Resources.Requests, cs.Resources.Limits)
		}
		if w := cs.State.Waiting; w != nil {
			fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
		}
	}
	return b.String()
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

func waitRunning(t *testing.T, c *cluster.Cluster, ns, name string) *corev1.Pod {
	t.Helper()
	return waitPod(t, c, ns, name, "Running", running)
}

// waitCreateContainerError waits for kubelet's CreateContainerError and
// returns its message.
func waitCreateContainerError(t *testing.T, c *cluster.Cluster, ns, name string) string {
	t.Helper()
	p := waitPod(t, c, ns, name, "in CreateContainerError", func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "CreateContainerError" {
				return true
			}
		}
		return false
	})
	return p.Status.ContainerStatuses[0].State.Waiting.Message
}

// waitContainerMessage waits for the pod's container to show a waiting or
// terminated message (current or last) holding want, and returns it.
func waitContainerMessage(t *testing.T, c *cluster.Cluster, ns, name, want string) string {
	t.Helper()
	var msg string
	waitPod(t, c, ns, name, "showing "+want, func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			for _, m := range []string{stateMessage(cs.State), stateMessage(cs.LastTerminationState)} {
				if strings.Contains(m, want) {
					msg = m
					return true
				}
			}
		}
		return false
	})
	return msg
}

func stateMessage(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return s.Waiting.Message
	case s.Terminated != nil:
		return s.Terminated.Message
	}
	return ""
}

func deletePod(t *testing.T, c *cluster.Cluster, ns, name string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", ns, name, err)
	}
	deadline := time.Now().Add(settle)
	for {
		if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s still there %v after delete", ns, name, settle)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// events returns the messages of the events about a pod (kubectl describe's
// Events section).
func events(t *testing.T, c *cluster.Cluster, ns, name string) []string {
	t.Helper()
	sel := fields.Set{"involvedObject.name": name}.AsSelector().String()
	l, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatalf("events of %s/%s: %v", ns, name, err)
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Type+" "+e.Reason+" "+e.Message)
	}
	return out
}

// waitEvent waits for an event about the pod containing every want.
func waitEvent(t *testing.T, c *cluster.Cluster, ns, name string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		evs := events(t, c, ns, name)
	next:
		for _, e := range evs {
			for _, w := range want {
				if !strings.Contains(e, w) {
					continue next
				}
			}
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event about %s/%s containing %q after %v; events:\n  %s", ns, name, want, settle, strings.Join(evs, "\n  "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ---- cgroups -----------------------------------------------------------------

// podCgroup is kubelet's cgroupfs path of the pod.
func podCgroup(c *cluster.Cluster, p *corev1.Pod) string {
	base := c.CgroupRoot + "/kubepods"
	switch p.Status.QOSClass {
	case corev1.PodQOSBurstable:
		base += "/burstable"
	case corev1.PodQOSBestEffort:
		base += "/besteffort"
	}
	return base + "/pod" + string(p.UID)
}

// containerCgroup is the cgroup of the pod's first container as it runs now.
func containerCgroup(c *cluster.Cluster, p *corev1.Pod) string {
	id := p.Status.ContainerStatuses[0].ContainerID
	return podCgroup(c, p) + "/" + strings.TrimPrefix(id, "containerd://")
}

// containerCPU reads the running container's cpuset, quota and its init's
// Cpus_allowed_list.
func containerCPU(t *testing.T, c *cluster.Cluster, p *corev1.Pod) *harness.CPUState {
	t.Helper()
	cg := containerCgroup(c, p)
	procs, err := harness.ReadCgroupFile("cpu", cg, "cgroup.procs")
	if err != nil {
		t.Fatalf("container of %s: %v", p.Name, err)
	}
	pid := 0
	if f := strings.Fields(procs); len(f) > 0 {
		pid, _ = strconv.Atoi(f[0])
	}
	s, err := harness.ReadCPUState(cg, pid)
	if err != nil {
		t.Fatalf("container of %s: %v", p.Name, err)
	}
	return s
}

func podQuota(t *testing.T, c *cluster.Cluster, p *corev1.Pod) int64 {
	t.Helper()
	v, err := harness.ReadCgroupFile("cpu", podCgroup(c, p), "cpu.cfs_quota_us")
	if err != nil {
		t.Fatalf("pod cgroup of %s: %v", p.Name, err)
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// waitCpus polls the pod's container until its cpuset and
// Cpus_allowed_list are want.
func waitCpus(t *testing.T, c *cluster.Cluster, p *corev1.Pod, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := containerCPU(t, c, p)
		if s.Cpus == want && s.CpusAllowed == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: cpuset.cpus %q, Cpus_allowed_list %q; want %q", p.Name, s.Cpus, s.CpusAllowed, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPodQuota polls the pod-level cpu.cfs_quota_us until it is want.
func waitPodQuota(t *testing.T, c *cluster.Cluster, p *corev1.Pod, want int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := podQuota(t, c, p)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pod cgroup %s cpu.cfs_quota_us = %d after %v, want %d", p.Name, podCgroup(c, p), got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- metrics -------------------------------------------------------------------

// scrape fetches a Prometheus text page and returns "name{labels}" -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, b)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// freePort picks a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
