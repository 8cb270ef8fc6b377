package cgroups_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/cgroups/cgtest"
)

// On the host's v1 cpuset controller: a container cgroup below a private
// pod cgroup gets the cpuset written, and the kernel shows it.
func TestSetCPUsV1(t *testing.T) {
	h := cgtest.V1(t)
	root := h.CPUSetDir()
	cpus, err := os.ReadFile(filepath.Join(root, "cpuset.cpus"))
	if err != nil {
		t.Skipf("no v1 cpuset controller: %v", err)
	}
	mems, _ := os.ReadFile(filepath.Join(root, "cpuset.mems"))
	group := "/" + cgtest.Name("cgtest-")
	pod := filepath.Join(root, group)
	if err := os.Mkdir(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cgtest.RemoveTree(pod) })
	// v1 cpusets start empty: fill them as runc does, from the parent.
	for _, dir := range []string{pod, cgtest.Mkdir(t, filepath.Join(pod, "ctr"))} {
		cgtest.Write(t, dir, "cpuset.cpus", strings.TrimSpace(string(cpus)))
		cgtest.Write(t, dir, "cpuset.mems", strings.TrimSpace(string(mems)))
	}
	if err := h.SetCPUs(group+"/ctr", "0"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(pod, "ctr", "cpuset.cpus")); strings.TrimSpace(string(got)) != "0" {
		t.Errorf("cpuset.cpus %q, want 0", got)
	}
	if err := h.SetCPUs(group+"/gone", "0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cgroup: %v, want fs.ErrNotExist", err)
	}
}

// On a v2 tree (a fixture of plain files), in both drivers' forms.
func TestSetCPUsV2(t *testing.T) {
	root := cgtest.FixtureV2(t)
	h, err := cgroups.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, dir := range map[string]string{
		"/kubepods/besteffort/pod1/abc":                     "kubepods/besteffort/pod1/abc",
		"kubepods-besteffort-pod1.slice:cri-containerd:abc": "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope",
	} {
		cgtest.File(t, filepath.Join(root, dir), "cpuset.cpus", "0-3\n")
		if err := h.SetCPUs(path, "0,2"); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got, _ := os.ReadFile(filepath.Join(root, dir, "cpuset.cpus")); string(got) != "0,2" {
			t.Errorf("%s: cpuset.cpus %q", path, got)
		}
		if got, err := h.CPUs(path); got != "0,2" || err != nil {
			t.Errorf("%s: CPUs() = %q, %v", path, got, err)
		}
	}
	if err := h.SetCPUs("not a path", "0"); err == nil {
		t.Error("a bad cgroups path was accepted")
	}
	if !h.HasCPUSet() {
		t.Error("a v2 tree with cpuset among its controllers: no cpuset")
	}
	// A cgroup without the cpuset controller enabled is not a missing one.
	cgtest.File(t, filepath.Join(root, "kubepods/nocpuset/abc"), "cpu.max", "max 100000\n")
	if err := h.SetCPUs("/kubepods/nocpuset/abc", "0"); err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cpuset controller is not enabled") {
		t.Errorf("cgroup without cpuset.cpus: %v", err)
	}
	if err := h.SetCPUs("/kubepods/gone/abc", "0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cgroup: %v, want fs.ErrNotExist", err)
	}
}
