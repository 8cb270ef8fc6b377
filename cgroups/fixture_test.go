package cgroups_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/cgroups/cgtest"
)

// cgroup v2 cannot be tested on real cgroups on this v1 host (every
// controller is bound to v1, so a cgroup2 mount has no cpu controller):
// these tests drive the same code on FIXTURE trees of plain files.

const (
	v2Stat = "usage_usec 9000000\nuser_usec 8000000\nsystem_usec 1000000\nnr_periods 400\nnr_throttled 100\nthrottled_usec 2500000\nnr_bursts 0\nburst_usec 0\n"
	v1Stat = "nr_periods 50\nnr_throttled 5\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n"
)

func read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV2FixtureClearPodQuota(t *testing.T) {
	root := cgtest.FixtureV2(t)
	h, err := cgroups.Open(root)
	if err != nil || h.Version != cgroups.V2 || h.CPUDir != root {
		t.Fatalf("Open(fixture) = %+v, %v; want v2 at the root", h, err)
	}
	tests := []struct{ parent, dir, before, after string }{
		{"/kubepods/burstable/pod1", "kubepods/burstable/pod1", "200000 100000", "max 100000"},
		{"/kubepods/pod2", "kubepods/pod2", "150000 50000", "max 50000"}, // the period is kept
		{"kubepods-burstable-pod3.slice", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3.slice", "100000 100000", "max 100000"},
		{"/kubepods/pod4", "kubepods/pod4", "max 100000", "max 100000"}, // nothing to clear
	}
	for _, tt := range tests {
		dir := filepath.Join(root, tt.dir)
		cgtest.File(t, dir, "cpu.max", tt.before+"\n")
		for range 2 {
			if err := h.ClearPodQuota(tt.parent); err != nil {
				t.Fatal(err)
			}
		}
		if got := read(t, filepath.Join(dir, "cpu.max")); got != tt.after {
			t.Errorf("%s: cpu.max = %q, want %q", tt.parent, got, tt.after)
		}
		if q, p, err := h.PodQuota(tt.parent); err != nil || q != cgroups.Unlimited || p <= 0 {
			t.Errorf("%s: PodQuota = %d, %d, %v", tt.parent, q, p, err)
		}
	}
	if err := h.ClearPodQuota("/kubepods/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ClearPodQuota(missing) = %v, want fs.ErrNotExist", err)
	}
	cgtest.File(t, filepath.Join(root, "kubepods/bad"), "cpu.max", "lots\n")
	if err := h.ClearPodQuota("/kubepods/bad"); err == nil || !strings.Contains(err.Error(), "cpu.max") {
		t.Errorf("ClearPodQuota(bad cpu.max) = %v, want an error naming the file", err)
	}
}

func TestV2FixtureCPUStatAndContainers(t *testing.T) {
	root := cgtest.FixtureV2(t)
	h, err := cgroups.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	sysd := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podaa_bb.slice"
	cgtest.File(t, filepath.Join(root, sysd, "cri-containerd-c1.scope"), "cpu.stat", v2Stat)
	cgtest.File(t, filepath.Join(root, sysd, "crio-conmon-c9.scope"), "cpu.stat", v2Stat) // not a container
	cgtest.File(t, filepath.Join(root, "kubepods/burstable/podcc-dd/c2"), "cpu.stat", "nr_periods 10\nnr_throttled 5\nthrottled_usec 100\n")
	cgtest.File(t, filepath.Join(root, "kubepods/burstable/podcc-dd/c3"), "cpu.stat", "usage_usec 5\n") // no bandwidth counters

	s, err := h.ReadCPUStat("kubepods-besteffort-podaa_bb.slice:cri-containerd:c1")
	want := cgroups.Stat{Periods: 400, Throttled: 100, ThrottledTime: 2500 * time.Millisecond}
	if err != nil || s != want {
		t.Errorf("ReadCPUStat = %+v, %v; want %+v", s, err, want)
	}
	all, err := h.Containers("")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range all {
		got = append(got, c.PodUID+"/"+c.ContainerID)
	}
	if strings.Join(got, " ") != "cc-dd/c2 aa-bb/c1 cc-dd/c3" {
		t.Errorf("Containers = %v; want by ratio: cc-dd/c2 (50%%), aa-bb/c1 (25%%), cc-dd/c3 (0)", got)
	}
	if only, err := h.Containers("kubepods-besteffort.slice"); err != nil || len(only) != 1 || only[0].ContainerID != "c1" {
		t.Errorf("Containers(besteffort slice) = %+v, %v", only, err)
	}
}

// v1 layouts without a real controller: cpu alone (through containerd's
// cgroup1) and co-mounted "cpu,cpuacct" without the usual "cpu" symlink
// (a direct write of the same file).
func TestV1FixtureLayouts(t *testing.T) {
	for _, ctl := range []string{"cpu", "cpu,cpuacct"} {
		t.Run(ctl, func(t *testing.T) {
			root := t.TempDir()
			pod := filepath.Join(root, ctl, "kubepods/pod1")
			cgtest.File(t, pod, "cpu.cfs_quota_us", "200000\n")
			cgtest.File(t, pod, "cpu.cfs_period_us", "100000\n")
			cgtest.File(t, filepath.Join(pod, "c1"), "cpu.stat", v1Stat)
			h, err := cgroups.Open(root)
			if err != nil || h.Version != cgroups.V1 || h.CPUDir != filepath.Join(root, ctl) {
				t.Fatalf("Open = %+v, %v", h, err)
			}
			if err := h.ClearPodQuota("/kubepods/pod1"); err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(pod, "cpu.cfs_quota_us")); got != "-1" {
				t.Errorf("cpu.cfs_quota_us = %q, want -1", got)
			}
			s, err := h.ReadCPUStat("/kubepods/pod1/c1")
			if want := (cgroups.Stat{Periods: 50, Throttled: 5, ThrottledTime: 1500 * time.Millisecond}); err != nil || s != want {
				t.Errorf("ReadCPUStat = %+v, %v; want %+v", s, err, want)
			}
		})
	}
}

func TestOpenNothing(t *testing.T) {
	if _, err := cgroups.Open(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(empty dir) = %v, want fs.ErrNotExist", err)
	}
}
