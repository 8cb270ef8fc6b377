package runtimeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// nriOf decodes the file's NRI table.
func nriOf(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s does not decode: %v\n%s", path, err, data)
	}
	plugins, _ := cfg["plugins"].(map[string]any)
	nri, _ := plugins[nriPlugin].(map[string]any)
	return nri
}

// containerd 1.7's `containerd config default` turns NRI off this way.
const v2Off = `version = 2
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
    disable_connections = false
    plugin_registration_timeout = "5s"
    socket_path = "/var/run/nri/nri.sock"
`

func TestPatchContainerd(t *testing.T) {
	for name, tc := range map[string]struct {
		config  string // "" for no file
		changed bool
		why     string
	}{
		"no file":                   {changed: true, why: "no config file"},
		"1.7 default, NRI off":      {config: v2Off, changed: true, why: "disable = true"},
		"version 2, no NRI section": {config: "version = 2\nroot = \"/x\"\n", changed: true, why: "version 2 config"},
		"version 3, no NRI section": {config: "version = 3\n"},
		"version 3, NRI off":        {config: "version = 3\n[plugins.'io.containerd.nri.v1.nri']\ndisable = true\n", changed: true, why: "disable = true"},
		"version 3, no connections": {config: "version = 3\n[plugins.'io.containerd.nri.v1.nri']\ndisable_connections = true\n", changed: true, why: "disable_connections = true"},
		"version 2, NRI on":         {config: "version = 2\n[plugins.\"io.containerd.nri.v1.nri\"]\ndisable = false\n"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "etc", "config.toml")
			if tc.config != "" {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ch, err := PatchContainerd(path)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Changed != tc.changed || !strings.Contains(strings.Join(ch.Why, "; "), tc.why) {
				t.Fatalf("changed %v, why %q; want %v, %q", ch.Changed, ch.Why, tc.changed, tc.why)
			}
			if !tc.changed {
				if b, _ := os.ReadFile(path); string(b) != tc.config {
					t.Errorf("file rewritten though nothing was wrong:\n%s", b)
				}
				return
			}
			if nri := nriOf(t, path); nri["disable"] != false || nri["disable_connections"] != false {
				t.Errorf("patched NRI table %v", nri)
			}
			if tc.config != "" {
				if b, _ := os.ReadFile(ch.Backup); string(b) != tc.config {
					t.Errorf("backup %s holds %q", ch.Backup, b)
				}
				if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
					t.Errorf("mode %v, want the original 0600", info.Mode().Perm())
				}
			}
			// A second run finds nothing to do.
			again, err := PatchContainerd(path)
			if err != nil || again.Changed {
				t.Errorf("second run: %+v, %v", again, err)
			}
		})
	}
}

// The patch keeps every other setting.
func TestPatchContainerdKeepsSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(v2Off), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PatchContainerd(path); err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	b, _ := os.ReadFile(path)
	if err := toml.Unmarshal([]byte(v2Off), &before); err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(b, &after); err != nil {
		t.Fatal(err)
	}
	before["plugins"].(map[string]any)[nriPlugin].(map[string]any)["disable"] = false
	bb, _ := toml.Marshal(before)
	ab, _ := toml.Marshal(after)
	if string(bb) != string(ab) {
		t.Errorf("settings changed beyond NRI's:\nwant\n%s\ngot\n%s", bb, ab)
	}
}

func TestPatchContainerdRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		config  string
		imports map[string]string
		want    string
	}{
		"bad TOML":         {config: "version = 2\n[plugins\n", want: "config.toml:2:"},
		"version 1":        {config: "root = \"/x\"\n", want: "config version 1"},
		"version a string": {config: "version = \"2\"\n", want: "want an integer"},
		"NRI not a table":  {config: "version = 2\nplugins = 3\n", want: `"plugins" is int64, not a table`},
		"import turns NRI off": {
			config:  "version = 2\nimports = [\"conf.d/*.toml\"]\n",
			imports: map[string]string{"conf.d/50-nri.toml": "version = 2\n[plugins.\"io.containerd.nri.v1.nri\"]\ndisable = true\n"},
			want:    "50-nri.toml, imported by",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			for f, text := range tc.imports {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := PatchContainerd(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.config {
				t.Errorf("refused config was changed:\n%s", b)
			}
			if _, err := os.Stat(path + BackupSuffix); err == nil {
				t.Error("a refused config left a backup")
			}
		})
	}
}

func TestWriteCRIODropIn(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "crio.conf.d")
	path, changed, err := WriteCRIODropIn(dir)
	if err != nil || !changed {
		t.Fatalf("first write: %v, %v", changed, err)
	}
	var c struct {
		Crio struct {
			NRI struct {
				EnableNRI *bool `toml:"enable_nri"`
			} `toml:"nri"`
		} `toml:"crio"`
	}
	b, _ := os.ReadFile(path)
	d := toml.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil || c.Crio.NRI.EnableNRI == nil || !*c.Crio.NRI.EnableNRI {
		t.Fatalf("drop-in %s: %v\n%s", path, err, b)
	}
	if _, changed, err := WriteCRIODropIn(dir); err != nil || changed {
		t.Errorf("second write: changed %v, %v", changed, err)
	}
}
