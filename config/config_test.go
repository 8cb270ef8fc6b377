package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/cpuset/alloc"
)

func TestDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "{}"} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if c.OddCPUs != alloc.RoundUp || c.IsolatedCPUs != alloc.IsolatedExclusiveOnly ||
			c.OnExhaustion != ExhaustionReject || !c.Reserved().IsEmpty() || c.MetricsAddress != "" {
			t.Errorf("Parse(%q) defaults = %+v", in, c)
		}
	}
	if d := Default(); d.OddCPUs != alloc.RoundUp {
		t.Errorf("Default() = %+v", d)
	}
}

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(`
reservedSystemCPUs: "0,40"
oddCPUs: isolate
isolatedCPUs: exclude
onExhaustion: shared
exemptNamespaces: [kube-system, monitoring]
metricsAddress: "127.0.0.1:9110"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Reserved().String() != "0,40" || c.OddCPUs != alloc.Isolate || c.IsolatedCPUs != alloc.IsolatedExclude ||
		c.OnExhaustion != ExhaustionShared || !c.Exempt("monitoring") || c.Exempt("default") {
		t.Errorf("parsed %+v", c)
	}
	if o := c.AllocOptions(); o.OddCPUs != alloc.Isolate || o.Reserved.String() != "0,40" {
		t.Errorf("AllocOptions = %+v", o)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"unknown field", "oddCPU: round-up", []string{`unknown field "oddCPU"`}},
		{"bad reserved", `reservedSystemCPUs: "3-1"`, []string{`reservedSystemCPUs: "3-1" is not a CPU list`}},
		{"bad odd", "oddCPUs: round-down", []string{`oddCPUs: "round-down" is not one of round-up, isolate, reject`}},
		{"bad isolated", "isolatedCPUs: maybe", []string{`isolatedCPUs: "maybe" is not one of`}},
		{"yaml boolean", "isolatedCPUs: yes", []string{`isolatedCPUs: "true" is not one of`, "quote the value"}},
		{"bad exhaustion", "onExhaustion: wait", []string{`onExhaustion: "wait" is not one of reject, shared`}},
		{"bad namespace", "exemptNamespaces: [ok, Kube-System]", []string{`exemptNamespaces[1]: "Kube-System" is not a Kubernetes namespace name`}},
		{"bad metrics", "metricsAddress: localhost", []string{`metricsAddress: "localhost" is not host:port`}},
		{"wrong type", "exemptNamespaces: kube-system", []string{"cannot unmarshal"}},
		{"not yaml", "oddCPUs: [", []string{"config:"}},
		{"every error at once", "oddCPUs: x\nonExhaustion: z", []string{`oddCPUs: "x"`, `onExhaustion: "z"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantParseError(t, tt.in, tt.want, nil) })
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("oddCPUs: reject\n"), 0o644)
	os.WriteFile(bad, []byte("oddCPUs: nope\n"), 0o644)
	if c, err := Load(good); err != nil || c.OddCPUs != alloc.Reject {
		t.Errorf("Load(good) = %+v, %v", c, err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) error %v should name the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func TestAdmissionConfig(t *testing.T) {
	c, err := Parse([]byte("admission:\n  hostNetwork: [kube-system, \"calico-*\"]\n  privileged: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admission.Mode != AdmissionEnforce || len(c.Admission.Privileged) != 0 ||
		!c.Admission.Allows("hostNetwork", "calico-system") || c.Admission.Allows("hostNetwork", "calico") ||
		!c.Admission.Allows("hostPID", "kube-system") || c.Admission.Allows("privileged", "kube-system") ||
		c.Admission.Allows("hostPID", "") {
		t.Errorf("admission = %+v", c.Admission)
	}
	if c, err := Parse([]byte("admission:\n  mode: off\n")); err != nil || c.Admission.Mode != AdmissionOff {
		t.Errorf("unquoted off: %+v, %v", c, err)
	}
	bad := []struct{ in, want string }{
		{"admission:\n  mode: strict", `admission.mode: "strict" is not one of enforce, audit, off`},
		{"admission:\n  mode: on", "write enforce"},
		{"admission:\n  privileged: [\"kube-system \"]", `admission.privileged[0]: "kube-system " has spaces around it`},
		{"admission:\n  hostPID: [Kube-System]", `admission.hostPID[0]: "Kube-System" has upper-case letters`},
		{"admission:\n  hostIPC: [\"kube-[system\"]", `admission.hostIPC[0]: "kube-[system" is not a valid glob pattern`},
		{"admission:\n  hostNetwork: [\"\"]", `admission.hostNetwork[0]: "" is empty`},
		{"admission:\n  privileged: [kube_system]", "has characters namespace names never have"},
		{"admission:\n  privilegd: [x]", `unknown field "admission.privilegd"`},
	}
	for _, b := range bad {
		if _, err := Parse([]byte(b.in)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Parse(%q) error %v, want %q", b.in, err, b.want)
		}
	}
}

func TestCFSQuota(t *testing.T) {
	for in, want := range map[string]string{"": "auto", "cfsQuota: clear": "clear", "cfsQuota: keep": "keep"} {
		c, err := Parse([]byte(in))
		if err != nil || c.CFSQuota != want {
			t.Errorf("Parse(%q) = %v, %v; want cfsQuota %s", in, c, err, want)
		}
	}
	if _, err := Parse([]byte("cfsQuota: never")); err == nil || !strings.Contains(err.Error(), `cfsQuota: "never" is not one of auto, clear, keep`) {
		t.Errorf("bad cfsQuota: %v", err)
	}
}

func TestKernelPolicy(t *testing.T) {
	c, err := Parse([]byte("kernel:\n  unknown: buggy\n  add:\n    - {name: mine, distro: el8, branch: \"4.18\", verdict: buggy, fixedIn: 4.18.0-147.el8, source: advisory}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Kernel.Decide("4.18.0-80.el8.x86_64"); !v.Buggy || v.Rule == nil || v.Rule.Name != "mine" {
		t.Errorf("verdict %+v", v)
	}
	if _, err := Parse([]byte("kernel:\n  remove: [no-such-rule]\n")); err == nil || !strings.Contains(err.Error(), "kernel:") {
		t.Errorf("bad kernel policy: %v", err)
	}
}

func TestSharedPoolUpdates(t *testing.T) {
	if c, err := Parse(nil); err != nil || c.SharedPoolUpdates != SharedPoolCgroupFirst {
		t.Errorf("default %v %v", c, err)
	}
	if _, err := Parse([]byte("sharedPoolUpdates: later")); err == nil || !strings.Contains(err.Error(), `sharedPoolUpdates: "later" is not one of cgroup-first, in-response, after-response`) {
		t.Errorf("bad value: %v", err)
	}
}

func TestAdmissionWarnsOfPrefixPatterns(t *testing.T) {
	c, err := Parse([]byte("admission:\n  privileged: [kube-system, \"calico-*\", \"cilium-[ab]*\", \"tigera-operato?\"]\n  hostNetwork: [\"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Admission.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], `admission.privileged[1]: "calico-*" allows every namespace whose name starts with "calico-"`) ||
		!strings.Contains(w[1], `admission.hostNetwork[0]: "*"`) {
		t.Errorf("warnings %q", w)
	}
	if w := Default().Admission.Warnings(); len(w) != 0 {
		t.Errorf("the defaults warn: %q", w)
	}
}
