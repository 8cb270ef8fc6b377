package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cgroups/cgtest"
)

// A cgroup v2 FIXTURE tree (plain files; this host's cpu controller is on
// v1): one systemd-driver pod and one cgroupfs-driver pod.
func throttleFixture(t *testing.T) string {
	root := cgtest.FixtureV2(t)
	sysd := filepath.Join(root, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11_22.slice")
	cgtest.File(t, filepath.Join(sysd, "cri-containerd-aaaaaaaaaaaaaaaaaaaa.scope"), "cpu.stat", "nr_periods 1000\nnr_throttled 100\nthrottled_usec 4000000\n")
	cgtest.File(t, filepath.Join(root, "kubepods/besteffort/pod33-44/bbbb"), "cpu.stat", "nr_periods 10\nnr_throttled 5\nthrottled_usec 20000\n")
	cgtest.File(t, filepath.Join(root, "kubepods/besteffort/pod33-44/cccc"), "cpu.stat", "nr_periods 10\nnr_throttled 0\nthrottled_usec 0\n")
	return root
}

func TestThrottleFixtureV2(t *testing.T) {
	root := throttleFixture(t)
	code, out, errOut := runCLI("throttle", "--cgroup-root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"POD", "UID", "CONTAINER", "PERIODS", "THROTTLED", "RATIO", "THROTTLED_SECONDS"},
		{"33-44", "bbbb", "10", "5", "50.0%", "0.020"},
		{"11-22", "aaaaaaaaaaaaa", "1000", "100", "10.0%", "4.000"},
		{"33-44", "cccc", "10", "0", "0.0%", "0.000"},
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out, len(want))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
		}
	}

	code, out, _ = runCLI("throttle", "--cgroup-root", root, "--json", "--top", "1", "--cgroup-parent", "kubepods-burstable.slice")
	var rows []throttleRow
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	want1 := throttleRow{PodUID: "11-22", ContainerID: "aaaaaaaaaaaaaaaaaaaa",
		Cgroup:  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11_22.slice/cri-containerd-aaaaaaaaaaaaaaaaaaaa.scope",
		Periods: 1000, ThrottledPeriods: 100, ThrottledRatio: 0.1, ThrottledSeconds: 4}
	if len(rows) != 1 || rows[0] != want1 {
		t.Errorf("rows = %+v, want [%+v]", rows, want1)
	}
}

func TestThrottleUsage(t *testing.T) {
	root := throttleFixture(t)
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"help"}, 0, "throttle", ""},
		{[]string{"throttle", "-h"}, 0, "", "pod UID"},
		{[]string{"throttle", "--top", "-1"}, 2, "", "--top -1"},
		{[]string{"throttle", "extra"}, 2, "", "unexpected arguments"},
		{[]string{"throttle", "--cgroup-root", t.TempDir()}, 1, "", "no cpu cgroup controller"},
		{[]string{"throttle", "--cgroup-root", root, "--cgroup-parent", "/nope"}, 1, "", "nope"},
		{[]string{"throttle", "--cgroup-root", root, "--cgroup-parent", "bad-.slice"}, 1, "", "bad-.slice"},
		{[]string{"throttle", "--cgroup-root", root, "--cgroup-parent", "/kubepods/besteffort/pod33-44/cccc"}, 0, "no container cgroups found", ""},
		{[]string{"throttle", "--cgroup-root", root, "--cgroup-parent", "/kubepods/besteffort/pod33-44/cccc", "--json"}, 0, "[]", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
}

// Real cgroup v1: a busy container at quota 1 ms / 100 ms under a private
// parent shows up throttled.
func TestThrottleRealV1(t *testing.T) {
	h := cgtest.V1(t)
	parent := "/" + cgtest.Name("cgtest-")
	cgtest.Private(t, h, parent)
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	ctr := cgtest.Mkdir(t, filepath.Join(h.CPUDir, parent, "kubepods/burstable/pod5a5a5a5a-0000-4000-8000-000000000001", id))
	cgtest.Write(t, ctr, "cpu.cfs_quota_us", "1000")
	cgtest.Busy(t, ctr)

	var rows []throttleRow
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, out, errOut := runCLI("throttle", "--cgroup-parent", parent, "--json")
		if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if len(rows) == 1 && rows[0].ThrottledPeriods > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no throttled container after 10 s: %+v", rows)
		}
	}
	if r := rows[0]; r.ContainerID != id || r.PodUID != "5a5a5a5a-0000-4000-8000-000000000001" || r.ThrottledRatio <= 0 {
		t.Errorf("row = %+v", r)
	}
	if code, out, _ := runCLI("throttle", "--cgroup-parent", parent); code != 0 || !strings.Contains(out, "5a5a5a5a-0000-4000-8000-000000000001  0123456789abc") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}
}
