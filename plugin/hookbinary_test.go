package plugin_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/plugin"
)

// TestSpecCheckHook: with a state dir (the DaemonSet's), coreguard copies
// itself there for the runtime to run, and CreateContainer gives that hook
// to a container NRI cannot clear of being privileged, outside the
// namespaces allowed privileged containers, and to no other.
func TestSpecCheckHook(t *testing.T) {
	state := t.TempDir()
	p, err := newBarePlugin(t, "", plugin.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(state, "coreguard-hook")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, exe), readFile(t, copied); !bytes.Equal(a, b) {
		t.Fatalf("%s is not a copy of %s", copied, exe)
	}
	if fi, err := os.Stat(copied); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("%s: %v, mode %v", copied, err, fi.Mode())
	}
	sysfs := func(opts ...string) []*api.Mount {
		return []*api.Mount{{Destination: "/sys", Type: "sysfs", Options: opts}}
	}
	volume := []*api.Mount{{Destination: "/sys", Type: "bind", Source: "/tmp/sys", Options: []string{"rbind", "rw"}}}
	for i, tc := range []struct {
		name, ns string
		mounts   []*api.Mount
		hook     bool
	}{
		{"/sys volume in default", "default", volume, true},
		{"no /sys at all in default", "default", nil, true},
		{"the runtime's ro sysfs in default", "default", sysfs("nosuid", "ro"), false},
		{"/sys volume in kube-system", "kube-system", volume, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &api.PodSandbox{Id: "pod", Name: "p", Namespace: tc.ns, Linux: &api.LinuxPodSandbox{
				Namespaces: []*api.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "network"}, {Type: "mount"}}}}
			ctr := &api.Container{Id: "c" + string(rune('0'+i)), PodSandboxId: "pod", Name: "app", Mounts: tc.mounts,
				Linux: &api.LinuxContainer{Resources: &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(2)}}}}
			adj, _, err := p.CreateContainer(context.Background(), pod, ctr)
			if err != nil {
				t.Fatal(err)
			}
			hooks := adj.GetHooks().GetCreateRuntime()
			if (len(hooks) == 1) != tc.hook || len(hooks) > 1 {
				t.Fatalf("createRuntime hooks %v, want one: %v", hooks, tc.hook)
			}
			if tc.hook && (hooks[0].Path != copied || hooks[0].Args[1] != "hook") {
				t.Fatalf("hook %s %q, want %s hook ...", hooks[0].Path, hooks[0].Args, copied)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
