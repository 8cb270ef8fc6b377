package quota

import (
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/cgroups"
)

type memCgroups map[string]int64

func (m memCgroups) ClearPodQuota(p string) error {
	if _, ok := m[p]; !ok {
		return fs.ErrNotExist
	}
	m[p] = cgroups.Unlimited
	return nil
}

func (m memCgroups) PodQuota(p string) (int64, int64, error) {
	q, ok := m[p]
	if !ok {
		return 0, 0, fs.ErrNotExist
	}
	return q, 100000, nil
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func podAndContainer(id, parent string, quota int64) (*api.PodSandbox, *api.Container) {
	pod := &api.PodSandbox{Id: "pod-" + id, Name: id, Namespace: "default", Linux: &api.LinuxPodSandbox{CgroupParent: parent}}
	ctr := &api.Container{Id: "ctr-" + id, PodSandboxId: pod.Id, Name: "app", State: api.ContainerState_CONTAINER_RUNNING,
		Linux: &api.LinuxContainer{Resources: &api.LinuxResources{Cpu: &api.LinuxCPU{Quota: api.Int64(quota)}}}}
	return pod, ctr
}

func TestReassertClearsWhatKubeletRestored(t *testing.T) {
	cg := memCgroups{"/kubepods/burstable/poda": 200000, "/kubepods/burstable/podb": 300000}
	d := New(Keep, false, cg, quiet(), nil)
	podA, ctrA := podAndContainer("a", "/kubepods/burstable/poda", 200000)
	podB, ctrB := podAndContainer("b", "/kubepods/burstable/podb", 300000)
	adj := &api.ContainerAdjustment{}
	d.Create(podA, ctrA, true, adj) // pinned: cleared even under keep
	d.Create(podB, ctrB, false, &api.ContainerAdjustment{})
	if adj.GetLinux().GetResources().GetCpu().GetQuota().GetValue() != -1 || cg["/kubepods/burstable/poda"] != -1 {
		t.Fatalf("pinned container not cleared: %v %v", adj, cg)
	}
	if cg["/kubepods/burstable/podb"] != 300000 {
		t.Fatalf("keep mode cleared an unpinned pod: %v", cg)
	}
	cg["/kubepods/burstable/poda"] = 200000 // kubelet's pod resync
	if n := d.Reassert(); n != 1 || cg["/kubepods/burstable/poda"] != -1 || cg["/kubepods/burstable/podb"] != 300000 {
		t.Fatalf("Reassert = %d, cgroups %v", n, cg)
	}
	if n := d.Reassert(); n != 0 {
		t.Fatalf("second Reassert cleared %d", n)
	}
	d.ForgetPod(podA)
	cg["/kubepods/burstable/poda"] = 200000
	if n := d.Reassert(); n != 0 {
		t.Fatalf("Reassert touched a removed pod")
	}
}

func TestSyncLiftsQuotaOfRunningContainers(t *testing.T) {
	cg := memCgroups{"/kubepods/burstable/poda": 200000}
	d := New(Clear, false, cg, quiet(), nil)
	pod, ctr := podAndContainer("a", "/kubepods/burstable/poda", 200000)
	gone := &api.PodSandbox{Id: "pod-gone", Linux: &api.LinuxPodSandbox{CgroupParent: "/kubepods/podgone"}}
	_, gctr := podAndContainer("gone", "/kubepods/podgone", 100000)
	gctr.PodSandboxId = gone.Id
	updates := d.Sync([]*api.PodSandbox{pod, gone}, []*api.Container{ctr, gctr}, func(string) bool { return false })
	if len(updates) != 2 || updates[0].GetLinux().GetResources().GetCpu().GetQuota().GetValue() != -1 {
		t.Fatalf("updates %v", updates)
	}
	if cg["/kubepods/burstable/poda"] != -1 {
		t.Fatalf("pod quota %v", cg)
	}
	if u := d.Update(pod, ctr); len(u) != 1 || u[0].GetLinux().GetResources().GetCpu().GetQuota().GetValue() != -1 {
		t.Fatalf("Update = %v", u)
	}
}

// TestReportSaysWhy: every container is reported lifted or kept with the
// setting or fact that decided; a node-wide reason wins over pinned; a pod
// is reported lifted as soon as one of its containers is; stopped
// containers and removed pods leave the report.
func TestReportSaysWhy(t *testing.T) {
	tests := []struct {
		mode   Mode
		buggy  bool
		pinned bool
		lifted bool
		reason string
	}{
		{Clear, false, false, true, LiftedClear},
		{Clear, false, true, true, LiftedClear},
		{Auto, true, false, true, LiftedBug},
		{Auto, true, true, true, LiftedBug},
		{Auto, false, true, true, LiftedPinned},
		{Keep, true, true, true, LiftedPinned},
		{Auto, false, false, false, KeptNoBug},
		{Keep, true, false, false, KeptKeep},
	}
	for _, tt := range tests {
		cg := memCgroups{"/kubepods/poda": 100000}
		d := New(tt.mode, tt.buggy, cg, quiet(), nil)
		pod, ctr := podAndContainer("a", "/kubepods/poda", 100000)
		d.Create(pod, ctr, tt.pinned, &api.ContainerAdjustment{})
		want := []Container{{Namespace: "default", Pod: "a", Container: "app", Lifted: tt.lifted, Reason: tt.reason}}
		if got := d.Containers(); !slices.Equal(got, want) {
			t.Errorf("%s buggy=%v pinned=%v: Containers() = %+v, want %+v", tt.mode, tt.buggy, tt.pinned, got, want)
		}
		var wantPods []Pod
		if tt.lifted {
			wantPods = []Pod{{Namespace: "default", Pod: "a", Reason: tt.reason}}
		}
		if got := d.LiftedPods(); !slices.Equal(got, wantPods) {
			t.Errorf("%s buggy=%v pinned=%v: LiftedPods() = %+v, want %+v", tt.mode, tt.buggy, tt.pinned, got, wantPods)
		}
		d.Forget(ctr.Id)
		d.ForgetPod(pod)
		if c, p := d.Containers(), d.LiftedPods(); len(c) != 0 || len(p) != 0 {
			t.Errorf("after stop and removal: %+v %+v", c, p)
		}
	}
}

type countStats struct{ errors, reasserted int }

func (c *countStats) PodQuotaError()      { c.errors++ }
func (c *countStats) PodQuotaReasserted() { c.reasserted++ }

func TestReassertIsCounted(t *testing.T) {
	cg := memCgroups{"/kubepods/poda": 100000}
	stats := &countStats{}
	d := New(Clear, false, cg, quiet(), stats)
	pod, ctr := podAndContainer("a", "/kubepods/poda", 100000)
	d.Create(pod, ctr, false, &api.ContainerAdjustment{})
	cg["/kubepods/poda"] = 100000 // kubelet's pod resync
	d.Reassert()
	d.Reassert()
	if stats.reasserted != 1 || stats.errors != 0 {
		t.Fatalf("stats %+v, want one re-assertion", stats)
	}
}

// TestReportOneEntryPerSeries: containers sharing a pod and a name
// (kubelet's retries of one that failed to start) and a pod recreated
// under its name while the old sandbox ends give one entry each, so no
// metric series repeats (a repeated one fails the whole scrape).
func TestReportOneEntryPerSeries(t *testing.T) {
	cg := memCgroups{"/kubepods/poda": 100000, "/kubepods/poda2": 100000}
	d := New(Clear, false, cg, quiet(), nil)
	pod, ctr := podAndContainer("a", "/kubepods/poda", 100000)
	d.Create(pod, ctr, false, &api.ContainerAdjustment{})
	_, retry := podAndContainer("a", "/kubepods/poda", 100000)
	retry.Id = "ctr-a-retry"
	d.Create(pod, retry, false, &api.ContainerAdjustment{})
	again, ctr2 := podAndContainer("a", "/kubepods/poda2", 100000)
	again.Id, ctr2.Id, ctr2.PodSandboxId = "pod-a-again", "ctr-a-again", "pod-a-again"
	d.Create(again, ctr2, false, &api.ContainerAdjustment{})
	want := []Container{{Namespace: "default", Pod: "a", Container: "app", Lifted: true, Reason: LiftedClear}}
	if got := d.Containers(); !slices.Equal(got, want) {
		t.Errorf("Containers() = %+v, want %+v", got, want)
	}
	wantPods := []Pod{{Namespace: "default", Pod: "a", Reason: LiftedClear}}
	if got := d.LiftedPods(); !slices.Equal(got, wantPods) {
		t.Errorf("LiftedPods() = %+v, want %+v", got, wantPods)
	}
}
