package admission

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// sysVolume is a container whose /sys is a pod volume (a bind mount), and
// whose runtime handler gave no allow-all device rule: NRI shows no mark.
func sysVolume() *api.Container {
	c := ordinary()
	c.Mounts[1] = &api.Mount{Destination: "/sys", Type: "bind", Source: "/var/lib/kubelet/pods/x/volumes/sys", Options: []string{"rbind", "rw"}}
	return c
}

func TestHookIsAddedWhereNRICannotClear(t *testing.T) {
	const enforce = "admission:\n  privileged: [kube-system, 'team-[ab]']\n"
	for _, tc := range []struct {
		name, cfg, ns string
		ctr           *api.Container
		binary        string
		want          bool
	}{
		{"ordinary: its ro sysfs clears it", enforce, "default", ordinary(), "/opt/nri/plugins/10-coreguard", false},
		{"/sys volume in default", enforce, "default", sysVolume(), "/opt/nri/plugins/10-coreguard", true},
		{"no /sys mount at all", enforce, "default", &api.Container{Name: "app"}, "/opt/nri/plugins/10-coreguard", true},
		{"/sys volume where privileged is allowed", enforce, "kube-system", sysVolume(), "/opt/nri/plugins/10-coreguard", false},
		{"/sys volume, allowed by a pattern", enforce, "team-a", sysVolume(), "/opt/nri/plugins/10-coreguard", false},
		{"no binary for the runtime to run", enforce, "default", sysVolume(), "", false},
		{"audit mode: a hook can only refuse", "admission:\n  mode: audit\n", "default", sysVolume(), "/x", false},
		{"off", "admission:\n  mode: \"off\"\n", "default", sysVolume(), "/x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := checker(t, tc.cfg)
			c.SetHookBinary(tc.binary)
			h := c.Hook(pod(tc.ns), tc.ctr)
			if (h != nil) != tc.want {
				t.Fatalf("hook %v, want one: %v", h, tc.want)
			}
			if h == nil {
				return
			}
			want := []string{"10-coreguard", "hook", "--namespace", tc.ns, "--pod", "debug", "--container", tc.ctr.Name,
				"--allowed", "kube-system", "--allowed", "team-[ab]"}
			if h.Path != tc.binary || !slices.Equal(h.Args, want) || h.Timeout.GetValue() != hookTimeout {
				t.Fatalf("hook %s %q timeout %v, want %s %q", h.Path, h.Args, h.Timeout, tc.binary, want)
			}
		})
	}
}

// specOf is a spec as the runtimes write it for CRI's privileged (all
// capabilities, no masked or read-only paths) or for an ordinary container.
func specOf(privileged bool) *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	linux := &specs.Linux{MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/bus", "/proc/sys"}}
	if privileged {
		caps = append(caps, "CAP_SYS_ADMIN", "CAP_SYS_MODULE")
		linux = &specs.Linux{}
	}
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}, Linux: linux}
}

func TestSpecSignals(t *testing.T) {
	addedSysAdmin := specOf(false)
	addedSysAdmin.Process.Capabilities.Bounding = append(addedSysAdmin.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
	unmasked := specOf(false)
	unmasked.Linux = &specs.Linux{}
	unmaskedSysAdmin := specOf(true)
	unmaskedSysAdmin.Linux.MaskedPaths = []string{"/proc/kcore"}
	for _, tc := range []struct {
		name string
		spec *specs.Spec
		want []string
	}{
		{"privileged", specOf(true), []string{"CAP_SYS_ADMIN", "/proc/sys writable", "no masked paths", "5 capabilities"}},
		{"ordinary", specOf(false), nil},
		{"CAP_SYS_ADMIN added, masks kept", addedSysAdmin, nil},
		{"unmasked /proc without CAP_SYS_ADMIN", unmasked, nil},
		{"CAP_SYS_ADMIN with /proc/sys writable", unmaskedSysAdmin, []string{"CAP_SYS_ADMIN", "/proc/sys writable", "5 capabilities"}},
		{"no process", &specs.Spec{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SpecSignals(tc.spec); !slices.Equal(got, tc.want) {
				t.Fatalf("signals %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunHook(t *testing.T) {
	req := HookRequest{Namespace: "default", Pod: "debug", Container: "agent", Allowed: []string{"kube-system", "calico-system"}}
	for _, tc := range []struct {
		name    string
		spec    any // written as config.json; nil writes none
		state   string
		wantErr string
	}{
		{"privileged is refused", specOf(true), "",
			`privileged container "agent" in pod default/debug rejected: namespace "default" may not run privileged containers ` +
				`(CAP_SYS_ADMIN, /proc/sys writable, no masked paths, 5 capabilities); allowed: kube-system, calico-system`},
		{"ordinary passes", specOf(false), "", ""},
		{"no config.json", nil, "", "config.json: no such file"},
		{"config.json not JSON", "{", "", "config.json: unexpected end of JSON input"},
		{"state not JSON", specOf(true), "nonsense", "reading the container state on stdin"},
		{"state without bundle", specOf(true), `{"id":"x"}`, "names no bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			switch s := tc.spec.(type) {
			case nil:
			case string:
				write(t, filepath.Join(bundle, "config.json"), []byte(s))
			default:
				data, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(bundle, "config.json"), data)
			}
			state := tc.state
			if state == "" {
				data, _ := json.Marshal(specs.State{Version: specs.Version, ID: "x", Status: specs.StateCreating, Bundle: bundle})
				state = string(data)
			}
			err := RunHook(req, strings.NewReader(state))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
