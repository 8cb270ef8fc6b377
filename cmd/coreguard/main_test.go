package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

// runCLI runs coreguard with args and returns its exit status and output.
func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func generated(t *testing.T, shape string) string {
	t.Helper()
	dir := sysfstest.TempDir(t)
	if err := sysfsgen.Write(dir, sysfsgen.Shapes()[shape]); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVersionFlag: --version and -version print what the version command
// prints, and nothing else.
func TestVersionFlag(t *testing.T) {
	_, want, _ := runCLI("version")
	tests := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"--version"}, exitOK, want, ""},
		{[]string{"-version"}, exitOK, want, ""},
		{[]string{"--version", "extra"}, exitUsage, "", `unexpected arguments ["extra"]`},
		{[]string{"-v"}, exitUsage, "", `unknown command "-v"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code || out != tt.out || !strings.Contains(errOut, tt.err) || (tt.err == "" && errOut != "") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q", code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
	if !strings.HasPrefix(want, "coreguard ") {
		t.Errorf("coreguard version printed %q", want)
	}
}

func TestHelpAndUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"help"}, 0, "commands:", ""},
		{[]string{"--help"}, 0, "'coreguard --version' (or -version)", ""},
		{[]string{"help", "plan"}, 0, "-odd-cpus", ""},
		{[]string{"plan", "-h"}, 0, "", "-reserved"},
		{[]string{"run", "-h"}, 0, "", "-socket"},
		{[]string{}, 2, "", "usage: coreguard COMMAND"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"plan"}, 2, "", "no requests"},
		{[]string{"plan", "x"}, 2, "", `request "x" is not a positive whole number`},
		{[]string{"plan", "--bogus", "1"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"topology", "extra"}, 2, "", "unexpected arguments"},
		{[]string{"version"}, 0, "coreguard ", ""},
		{[]string{"run", "--log-level", "loud"}, 2, "", `--log-level: "loud"`},
		{[]string{"run", "--log-format", "xml"}, 2, "", `--log-format: "xml" is not one of text, json`},
		{[]string{"run", "--metrics-address", "9110"}, 2, "", `--metrics-address: "9110" is not host:port`},
		{[]string{"run", "--config", "/nonexistent/coreguard.yaml"}, 1, "", "/nonexistent/coreguard.yaml"},
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

// topologyJSON is what other tools read from `coreguard topology --json`.
type topologyJSON struct {
	Sockets   int      `json:"sockets"`
	NUMANodes int      `json:"numaNodes"`
	LLCGroups int      `json:"llcGroups"`
	Cores     int      `json:"cores"`
	Threads   int      `json:"threads"`
	Online    string   `json:"online"`
	CoreList  []string `json:"coreList"`
	Isolated  string   `json:"isolated"`
}

func TestTopologyJSON(t *testing.T) {
	tests := []struct {
		shape     string
		want      topologyJSON
		someCores []string
	}{
		{sysfsgen.HybridAlderLake, topologyJSON{1, 1, 1, 16, 24, "0-23", nil, ""}, []string{"0-1", "14-15", "16", "23"}},
		{sysfsgen.SMT4, topologyJSON{1, 1, 1, 16, 64, "0-63", nil, ""}, []string{"0-3", "60-63"}},
		{sysfsgen.Interleaved2S, topologyJSON{2, 4, 2, 16, 32, "0-31", nil, ""}, nil},
		{sysfsgen.OfflineCPUs, topologyJSON{1, 1, 1, 7, 13, "0-2,4-13", nil, ""}, []string{"2", "12-13"}},
		{sysfsgen.IsolCPUs, topologyJSON{1, 1, 1, 8, 16, "0-15", nil, "2-3,10-11"}, []string{"0,8"}},
		{sysfsgen.IntelHT2S, topologyJSON{2, 2, 2, 40, 80, "0-79", nil, ""}, []string{"0,40", "39,79"}},
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			code, out, errOut := runCLI("topology", "--json", "--sysfs-root", generated(t, tt.shape))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got topologyJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.CoreList) != got.Cores {
				t.Errorf("coreList has %d entries for %d cores", len(got.CoreList), got.Cores)
			}
			for _, c := range tt.someCores {
				if !contains(got.CoreList, c) {
					t.Errorf("coreList %v lacks core %s", got.CoreList, c)
				}
			}
			got.CoreList = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestTopologyRealMachines checks the JSON and the drawing on every real
// machine's tree against the facts of the fixtures' README.
func TestTopologyRealMachines(t *testing.T) {
	facts := map[string]topologyJSON{
		"amd-ryzen-1600-2ccx-12t": {1, 1, 2, 6, 12, "0-11", nil, ""},
		"desktop-10c-20t":         {1, 1, 1, 10, 20, "0-19", nil, ""},
		"offline-cpus-4t":         {2, 1, 2, 2, 2, "0-1", nil, ""},
		"server-8numa-112t":       {2, 4, 2, 56, 112, "0-111", nil, "4-7,60-63"},
		"xeon-2s-4numa-80t":       {2, 4, 2, 40, 80, "0-79", nil, ""},
		"xeon-2s-6numa-112t":      {2, 4, 2, 56, 112, "0-111", nil, "4-7,60-63"},
		"xeon-4s-144t":            {4, 4, 4, 72, 144, "0-143", nil, ""},
	}
	_, names := sysfstest.Fixtures(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			root := sysfstest.ExtractFixture(t, name)
			code, out, errOut := runCLI("topology", "--json", "--sysfs-root", root)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got topologyJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			got.CoreList = nil
			if want, ok := facts[name]; !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			code, out, _ = runCLI("topology", "--sysfs-root", root)
			if code != 0 || !strings.Contains(out, "socket 0") {
				t.Errorf("drawing: exit %d\n%s", code, out)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	root := generated(t, sysfsgen.IntelHT2S)
	code, out, errOut := runCLI("plan", "--sysfs-root", root, "--json", "--reserved", "0", "5", "4", "200", "--odd-cpus", "round-up")
	if code != 1 {
		t.Fatalf("exit %d (want 1: one request unmet): %s", code, errOut)
	}
	var res struct {
		Allocations []struct {
			Request int    `json:"request"`
			CPUs    string `json:"cpus"`
			Error   string `json:"error"`
		} `json:"allocations"`
		Shared string `json:"shared"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Allocations) != 3 || res.Allocations[0].CPUs != "1-3,41-43" || res.Allocations[1].CPUs != "4-5,44-45" ||
		!strings.Contains(res.Allocations[2].Error, "not enough free whole cores for 200") || res.Shared != "0,6-40,46-79" {
		t.Errorf("plan = %s", out)
	}
	code, out, _ = runCLI("plan", "--sysfs-root", root, "--reserved", "0,40", "2")
	if code != 0 || !strings.Contains(out, "[1 41]#1") || !strings.Contains(out, "[0 40]R") {
		t.Errorf("human plan: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI("plan", "--sysfs-root", root, "--reserved", "0", "2")
	if code != 0 || !strings.HasPrefix(out, "#1 ") || !strings.HasPrefix(errOut, "warning: reservedSystemCPUs 0 splits cores") {
		t.Errorf("a reserved list that splits a core: exit %d, the warning belongs on stderr alone\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI("plan", "--sysfs-root", root, "--reserved", "3-1", "2")
	if code != 2 || !strings.Contains(errOut, "--reserved") {
		t.Errorf("bad --reserved: exit %d %s", code, errOut)
	}
	code, _, errOut = runCLI("plan", "--sysfs-root", root, "--odd-cpus", "sometimes", "2")
	if code != 2 || !strings.Contains(errOut, `oddCPUs: "sometimes"`) {
		t.Errorf("bad --odd-cpus: exit %d %s", code, errOut)
	}
	code, _, errOut = runCLI("plan", "--sysfs-root", t.TempDir(), "2")
	if code != 1 || errOut == "" {
		t.Errorf("empty sysfs root: exit %d %s", code, errOut)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestKubeletStaticWarning: on a node where kubelet's CPU manager runs the
// static policy, topology and plan say that coreguard does not pin there:
// on stderr beside the drawing (stdout is the answer alone), in "warnings"
// in the JSON.
func TestKubeletStaticWarning(t *testing.T) {
	static := t.TempDir()
	if err := os.WriteFile(filepath.Join(static, "cpu_manager_state"),
		[]byte(`{"policyName":"static","defaultCpuSet":"0-79","checksum":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	none := t.TempDir() // no checkpoint: nothing to say
	tree := generated(t, sysfsgen.IntelHT2S)
	const want = "kubelet's CPU manager runs the static policy on this node"
	tests := []struct {
		args   []string
		asJSON bool
	}{
		{[]string{"topology", "--sysfs-root", tree}, false},
		{[]string{"topology", "--json", "--sysfs-root", tree}, true},
		{[]string{"plan", "--sysfs-root", tree, "2"}, false},
		{[]string{"plan", "--json", "--sysfs-root", tree, "2"}, true},
	}
	for _, tt := range tests {
		for _, dir := range []string{static, none} {
			code, out, errOut := runCLI(append(tt.args, "--kubelet-root-dir", dir)...)
			if code != exitOK {
				t.Fatalf("%v: exit %d: %s", tt.args, code, errOut)
			}
			warned := errOut
			if tt.asJSON {
				warned = strings.Join(jsonWarnings(t, out), "\n")
			}
			if got := strings.Contains(warned, want); got != (dir == static) {
				t.Errorf("%v --kubelet-root-dir %s: warning shown %v, want %v: stdout\n%s\nstderr\n%s", tt.args, dir, got, dir == static, out, errOut)
			}
			if !tt.asJSON && strings.Contains(out, "warning:") {
				t.Errorf("%v: a warning on stdout (it belongs on stderr):\n%s", tt.args, out)
			}
			if tt.asJSON && errOut != "" {
				t.Errorf("%v: stderr %q, want the warnings in the JSON only", tt.args, errOut)
			}
		}
	}
}

// jsonWarnings is the "warnings" field of a JSON answer.
func jsonWarnings(t *testing.T, out string) []string {
	t.Helper()
	var v struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	return v.Warnings
}

// TestConfigCheck: `coreguard config FILE` says whether coreguard would run
// with a file, on this node or a given topology, before anyone rolls it out.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	tree := generated(t, sysfsgen.TwoCPUsTwoCores)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, text string
		code       int
		out, err   string
	}{
		{"good", "reservedSystemCPUs: \"0\"\n", exitOK, "coreguard would run with it", ""},
		{"defaults filled in", "", exitOK, "startTimeout: 60s", ""},
		{"prefix pattern warned", "admission:\n  hostNetwork: [\"calico-*\"]\n", exitOK,
			"hostNetwork:\n  - calico-*", `warning: admission.hostNetwork[0]: "calico-*" allows every namespace`},
		{"wrong-case key", "reservedSystemCpus: \"0\"\n", exitFailed, "", `unknown field "reservedSystemCpus"`},
		{"bad value", "oddCPUs: sometimes\n", exitFailed, "", `oddCPUs: "sometimes" is not one of`},
		{"does not fit this machine", "reservedSystemCPUs: \"0-1\"\n", exitFailed, "", "config does not fit this machine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI("config", "--sysfs-root", tree, write(tt.name+".yaml", tt.text))
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errOut, tt.code, tt.out, tt.err)
			}
			var parsed map[string]any
			if err := yaml.Unmarshal([]byte(out), &parsed); code == exitOK && (err != nil || parsed["oddCPUs"] == nil) {
				t.Errorf("stdout is not the configuration as YAML (%v):\n%s", err, out)
			}
		})
	}
	if code, _, errOut := runCLI("config"); code != exitUsage || !strings.Contains(errOut, "give one configuration file") {
		t.Errorf("no file: exit %d, %q", code, errOut)
	}
}
