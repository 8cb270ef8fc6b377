package quota

import (
	"io"
	"io/fs"
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

func (m memCgroups) ReadCPUStat(string) (cgroups.Stat, error) { return cgroups.Stat{}, nil }

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
