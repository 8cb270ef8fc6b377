package cgroups

import (
	"strings"
	"testing"
)

// Pure path tests: the forms kubelet, containerd and CRI-O write.
func TestGroup(t *testing.T) {
	const uid = "pod0f1e2d3c_aaaa_bbbb_cccc_123456789abc"
	tests := []struct{ in, want string }{
		// cgroupfs driver: pod parents and container paths are groups already.
		{"/kubepods/burstable/pod0f1e", "/kubepods/burstable/pod0f1e"},
		{"/kubepods/pod0f1e/abc123", "/kubepods/pod0f1e/abc123"},
		{"/kubepods/besteffort/pod0f1e/crio-abc123", "/kubepods/besteffort/pod0f1e/crio-abc123"},
		{"/kubepods//burstable/../burstable/pod1/", "/kubepods/burstable/pod1"},
		{"/../../etc", "/etc"}, // cannot climb out of the hierarchy
		// systemd driver: a pod's CgroupParent.
		{"kubepods-burstable-" + uid + ".slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + uid + ".slice"},
		{"kubepods-" + uid + ".slice", "/kubepods.slice/kubepods-" + uid + ".slice"},
		{"kubepods.slice", "/kubepods.slice"},
		{"-.slice", "/"},
		// systemd driver: containers, containerd then CRI-O.
		{"kubepods-burstable-" + uid + ".slice:cri-containerd:abc123",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + uid + ".slice/cri-containerd-abc123.scope"},
		{"kubepods-besteffort-" + uid + ".slice:crio:abc123",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" + uid + ".slice/crio-abc123.scope"},
		{"kubepods-" + uid + ".slice:docker:abc", "/kubepods.slice/kubepods-" + uid + ".slice/docker-abc.scope"},
		{":cri-containerd:abc", "/system.slice/cri-containerd-abc.scope"}, // runc's default slice
		{"kubepods.slice:x:kubepods-pod1.slice", "/kubepods.slice/kubepods-pod1.slice"},
		{"kubepods.slice::abc", "/kubepods.slice/abc.scope"},
	}
	for _, tt := range tests {
		got, err := Group(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Group(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestGroupErrors(t *testing.T) {
	for _, in := range []string{
		"", "kubepods/burstable", "kubepods", "a:b", "a.slice:b:c:d", "a.slice:b:",
		"-kubepods.slice", "kubepods-.slice", "kube--pods.slice", ".slice", "a/b.slice:x:y",
		"nota:cri-containerd:abc", "a.slice:x:../../etc",
	} {
		if got, err := Group(in); err == nil {
			t.Errorf("Group(%q) = %q, want an error", in, got)
		} else if in != "" && !strings.Contains(err.Error(), in) && !strings.Contains(err.Error(), "slice") {
			t.Errorf("Group(%q): error %q names neither the path nor the rule", in, err)
		}
	}
}

func TestPodUIDAndContainerID(t *testing.T) {
	uids := map[string]string{
		"pod0f1e2d3c-aaaa":                          "0f1e2d3c-aaaa",
		"kubepods-burstable-pod0f1e2d3c_aaaa.slice": "0f1e2d3c-aaaa",
		"kubepods-pod12_34.slice":                   "12-34",
	}
	for name, want := range uids {
		if got, ok := podUID(name); !ok || got != want {
			t.Errorf("podUID(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"burstable", "kubepods-burstable.slice", "pod", "kubepods-pod.slice", "pods.slice"} {
		if got, ok := podUID(name); ok {
			t.Errorf("podUID(%q) = %q, want not a pod", name, got)
		}
	}
	ids := map[string]string{
		"abc123":                      "abc123",
		"crio-abc123":                 "abc123",
		"cri-containerd-abc123.scope": "abc123",
		"crio-abc123.scope":           "abc123",
		"docker-abc123.scope":         "abc123",
	}
	for name, want := range ids {
		if got, ok := containerID(name); !ok || got != want {
			t.Errorf("containerID(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if got, ok := containerID("crio-conmon-abc123.scope"); ok {
		t.Errorf("containerID(conmon scope) = %q, want skipped", got)
	}
}
