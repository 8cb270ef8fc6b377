package cgroups_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/cgroups/cgtest"
)

// These tests write real cgroups in the host's v1 cpu controller (root on
// cgroup v1, as on CI), all below a private /cgtest-<rand> removed after.

const ctrID = "4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee00"

func TestV1ClearPodQuotaCgroupfs(t *testing.T) {
	h := cgtest.V1(t)
	parent := "/" + cgtest.Name("cgtest-")
	cgtest.Private(t, h, parent)
	pod := parent + "/kubepods/burstable/pod6c1d2e3f-0000-4000-8000-000000000001"
	podDir := cgtest.Mkdir(t, filepath.Join(h.CPUDir, pod))
	ctrDir := cgtest.Mkdir(t, filepath.Join(podDir, ctrID))
	cgtest.Write(t, podDir, "cpu.cfs_quota_us", "200000") // kubelet: pod limit 2 CPUs
	cgtest.Write(t, ctrDir, "cpu.cfs_quota_us", "100000")

	// Kernel rule (v1): a parent's quota may not drop below a child's;
	// -1 (unlimited) is always allowed, so clearing cannot fail on it.
	err := os.WriteFile(filepath.Join(podDir, "cpu.cfs_quota_us"), []byte("50000"), 0o644)
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("pod quota below its container's: %v, want EINVAL", err)
	}

	if q, p, err := h.PodQuota(pod); err != nil || q != 200000 || p != 100000 {
		t.Fatalf("PodQuota before = %d, %d, %v; want 200000, 100000", q, p, err)
	}
	for range 2 { // idempotent
		if err := h.ClearPodQuota(pod); err != nil {
			t.Fatal(err)
		}
		if q, p, err := h.PodQuota(pod); err != nil || q != cgroups.Unlimited || p != 100000 {
			t.Fatalf("PodQuota after = %d, %d, %v; want -1, 100000", q, p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ctrDir, "cpu.cfs_quota_us")); strings.TrimSpace(string(b)) != "100000" {
		t.Errorf("container quota = %q, want untouched 100000 (NRI owns it)", b)
	}
	// kubelet may write the pod quota back; clearing again wins.
	cgtest.Write(t, podDir, "cpu.cfs_quota_us", "300000")
	if err := h.ClearPodQuota(pod); err != nil {
		t.Fatal(err)
	}
	if q, _, _ := h.PodQuota(pod); q != cgroups.Unlimited {
		t.Errorf("quota after re-clear = %d, want -1", q)
	}

	gone := parent + "/kubepods/burstable/pod-gone"
	err = h.ClearPodQuota(gone)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), gone) {
		t.Errorf("ClearPodQuota(missing) = %v, want fs.ErrNotExist naming the path", err)
	}
	if _, _, err := h.PodQuota(gone); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PodQuota(missing) = %v, want fs.ErrNotExist", err)
	}
}

// The systemd driver's names, laid out on disk as systemd expands them,
// under a private top slice "cgtest<rand>.slice".
func TestV1SystemdForms(t *testing.T) {
	h := cgtest.V1(t)
	top := cgtest.Name("cgtest")
	cgtest.Private(t, h, "/"+top+".slice")
	uid := "pod6c1d2e3f_0000_4000_8000_000000000002"
	podParent := top + "-kubepods-burstable-" + uid + ".slice"
	podDir := filepath.Join(h.CPUDir, top+".slice", top+"-kubepods.slice", top+"-kubepods-burstable.slice", podParent)
	for _, prefix := range []string{"cri-containerd", "crio"} {
		cgtest.Mkdir(t, filepath.Join(podDir, prefix+"-"+ctrID+".scope"))
	}
	cgtest.Write(t, podDir, "cpu.cfs_quota_us", "150000")

	if err := h.ClearPodQuota(podParent); err != nil {
		t.Fatal(err)
	}
	if q, _, err := h.PodQuota(podParent); err != nil || q != cgroups.Unlimited {
		t.Fatalf("PodQuota = %d, %v; want -1", q, err)
	}
	for _, prefix := range []string{"cri-containerd", "crio"} {
		cgroupsPath := podParent + ":" + prefix + ":" + ctrID
		c, err := h.Resolve(cgroupsPath)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(podDir, prefix+"-"+ctrID+".scope"); c.Dir != want {
			t.Errorf("%s: Dir = %s, want %s", prefix, c.Dir, want)
		}
		if _, err := h.ReadCPUStat(cgroupsPath); err != nil {
			t.Error(err)
		}
	}
	// The package-level functions use the same host hierarchy.
	if q, _, err := cgroups.PodQuota(podParent); err != nil || q != cgroups.Unlimited {
		t.Errorf("cgroups.PodQuota = %d, %v", q, err)
	}
	if _, err := cgroups.ReadCPUStat(podParent + ":crio:" + ctrID); err != nil {
		t.Error(err)
	}
	if _, err := h.ReadCPUStat(podParent + ":crio:nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCPUStat(missing) = %v, want fs.ErrNotExist", err)
	}
}

// A busy process in a cgroup allowed 1 ms per 100 ms gets throttled within
// a few periods; we poll (bounded) rather than assert a timing.
func TestV1CPUStatThrottled(t *testing.T) {
	h := cgtest.V1(t)
	parent := "/" + cgtest.Name("cgtest-")
	cgtest.Private(t, h, parent)
	pod := parent + "/kubepods/burstable/pod6c1d2e3f-0000-4000-8000-000000000003"
	busy := cgtest.Mkdir(t, filepath.Join(h.CPUDir, pod, ctrID))
	cgtest.Mkdir(t, filepath.Join(h.CPUDir, pod, "1d1e"+ctrID[4:])) // an idle container
	cgtest.Write(t, busy, "cpu.cfs_period_us", "100000")
	cgtest.Write(t, busy, "cpu.cfs_quota_us", "1000")
	cgtest.Busy(t, busy)

	s := waitThrottled(t, h, pod+"/"+ctrID)
	if s.Periods < s.Throttled {
		t.Errorf("stat %+v: want periods >= throttled", s)
	}

	all, err := h.Containers(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ContainerID != ctrID || all[0].PodUID != "6c1d2e3f-0000-4000-8000-000000000003" ||
		all[0].Throttled == 0 || all[1].Throttled != 0 {
		t.Errorf("Containers(%s) = %+v; want the busy container first, then the idle one", parent, all)
	}
	if _, err := h.Containers(parent + "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Containers(missing) = %v, want fs.ErrNotExist", err)
	}
}

func waitThrottled(t *testing.T, h *cgroups.Hierarchy, group string) cgroups.Stat {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := h.ReadCPUStat(group)
		if err != nil {
			t.Fatal(err)
		}
		// throttled_time grows when a throttled period ends, so wait for both.
		if s.Throttled > 0 && s.ThrottledTime > 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no throttling (count and time) after 10 s of a busy loop at quota 1000/100000: %+v", group, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
