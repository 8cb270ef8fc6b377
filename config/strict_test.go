package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/kernel"
)

// everyField is a configuration with every field set to a valid value that
// is not its default.
const everyField = `
reservedSystemCPUs: "0,40"
oddCPUs: isolate
isolatedCPUs: exclude
onExhaustion: shared
sharedPoolUpdates: after-response
exemptNamespaces: [batch, monitoring]
cfsQuota: clear
kernel:
  add:
  - name: el8-4.18
    branch: "4.18"
    distro: el8
    flavour: generic
    from: 4.18-rc1
    below: "4.19"
    verdict: buggy
    fixedIn: 4.18.0-147.el8
    source: https://access.redhat.com/errata (example)
    note: a rule with every field set
  remove: [distro-unverified]
  unknown: buggy
admission:
  mode: audit
  privileged: [kube-system, "calico-*"]
  hostPID: [monitoring]
  hostIPC: []
  hostNetwork: [kube-system]
  failClosed: true
metricsAddress: "127.0.0.1:9110"
healthAddress: "127.0.0.1:9109"
log:
  level: debug
  format: json
  file: /var/log/coreguard.log
sysfsRoot: /host/sys
cgroupRoot: /host/sys/fs/cgroup
kubeletRootDir: /data/kubelet
startTimeout: 2m
`

func TestParseEveryField(t *testing.T) {
	c, err := Parse([]byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	// Every field is set, so none was read under a misspelt key.
	nonZero(t, reflect.ValueOf(*c), "")
	if c.Reserved().String() != "0,40" || c.OddCPUs != alloc.Isolate || c.IsolatedCPUs != alloc.IsolatedExclude ||
		c.OnExhaustion != ExhaustionShared || c.SharedPoolUpdates != "after-response" || c.CFSQuota != "clear" ||
		!c.Exempt("batch") || c.MetricsAddress != "127.0.0.1:9110" {
		t.Errorf("parsed %+v", c)
	}
	a := c.Admission
	if a.Mode != AdmissionAudit || !a.FailClosed || !a.Allows("privileged", "calico-system") ||
		!a.Allows("hostPID", "monitoring") || a.Allows("hostIPC", "kube-system") || !a.Allows("hostNetwork", "kube-system") {
		t.Errorf("admission %+v", a)
	}
	want := kernel.Rule{
		Name: "el8-4.18", Branch: "4.18", Distro: "el8", Flavour: "generic", From: "4.18-rc1", Below: "4.19",
		Verdict: "buggy", FixedIn: "4.18.0-147.el8", Source: "https://access.redhat.com/errata (example)",
		Note: "a rule with every field set",
	}
	k := c.Kernel
	if len(k.Add) != 1 || k.Add[0] != want || !slices.Equal(k.Remove, []string{"distro-unverified"}) || k.Unknown != "buggy" {
		t.Errorf("kernel %+v", k)
	}
	if err := k.Validate(); err != nil {
		t.Error(err)
	}
}

// nonZero fails for every exported field under v that is its zero value
// (an empty list written as [] counts as set).
func nonZero(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if name := jsonName(f); name != "" {
				nonZero(t, v.Field(i), join(path, name))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			t.Errorf("%s is not set", path)
		}
		for i := range v.Len() {
			nonZero(t, v.Index(i), path)
		}
	default:
		if v.IsZero() {
			t.Errorf("%s is not set", path)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fieldPaths lists every field a configuration can have, nested ones as
// dotted paths (list elements without an index: kernel.add.name).
func fieldPaths(typ reflect.Type, path string) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		p := join(path, name)
		out = append(out, p)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, fieldPaths(ft, p)...)
		}
	}
	return out
}

// TestEveryFieldBadValue has a bad value for every field, and checks that
// the error names the field. A field added without a row here fails.
func TestEveryFieldBadValue(t *testing.T) {
	rule := func(fields string) string {
		return "kernel:\n  add:\n  - {name: r, verdict: buggy, source: s, " + fields + "}"
	}
	tests := []struct {
		field, in, want string
	}{
		{"reservedSystemCPUs", `reservedSystemCPUs: "0-"`, `reservedSystemCPUs: "0-" is not a CPU list`},
		{"oddCPUs", "oddCPUs: odd", `oddCPUs: "odd" is not one of`},
		{"isolatedCPUs", "isolatedCPUs: include", `isolatedCPUs: "include" is not one of`},
		{"onExhaustion", "onExhaustion: wait", `onExhaustion: "wait" is not one of`},
		{"sharedPoolUpdates", "sharedPoolUpdates: later", `sharedPoolUpdates: "later" is not one of`},
		{"exemptNamespaces", "exemptNamespaces: [batch, Batch]", `exemptNamespaces[1]: "Batch" is not a Kubernetes namespace name`},
		{"cfsQuota", "cfsQuota: off", `cfsQuota: "false" is not one of auto, clear, keep (unquoted yes, no, on, off`},
		{"kernel", "kernel: [x]", "kernel: cannot unmarshal a list into a mapping"},
		{"kernel.add", rule("") + "\n  - {name: r, verdict: fixed, source: s}", `kernel: add[1]: name "r" is already used by add[0]`},
		{"kernel.add.name", "kernel:\n  add:\n  - {name: \" \", verdict: buggy, source: s}", `kernel: add[0] (rule " "): name: empty`},
		{"kernel.add.branch", rule("branch: 4"), `kernel: add[0] (rule "r"): branch: "4" is not MAJOR.MINOR`},
		{"kernel.add.distro", rule("distro: Debian"), `kernel: add[0] (rule "r"): distro: "Debian" is not a distribution name`},
		{"kernel.add.flavour", rule("flavour: cloud_amd64"), `kernel: add[0] (rule "r"): flavour: "cloud_amd64" is not a flavour name`},
		{"kernel.add.from", rule("from: x"), `kernel: add[0] (rule "r"): from: `},
		{"kernel.add.below", rule("below: x"), `kernel: add[0] (rule "r"): below: `},
		{"kernel.add.verdict", rule("verdict: maybe"), `kernel: add[0] (rule "r"): verdict: "maybe" is not one of`},
		{"kernel.add.fixedIn", "kernel:\n  add:\n  - {name: r, verdict: fixed, fixedIn: \"5.4\", source: s}", `kernel: add[0] (rule "r"): fixedIn: only meaningful with verdict buggy`},
		{"kernel.add.source", "kernel:\n  add:\n  - {name: r, verdict: buggy}", `kernel: add[0] (rule "r"): source: empty`},
		// note is free text: only a value that is not text is wrong.
		{"kernel.add.note", rule("note: [a, b]"), "kernel.add.note: cannot unmarshal a list into a string"},
		{"kernel.remove", "kernel:\n  remove: [stable-4.20]", `kernel: remove[0]: no default rule is named "stable-4.20"`},
		{"kernel.unknown", "kernel:\n  unknown: maybe", `kernel: unknown: "maybe" is not one of not-buggy, buggy`},
		{"admission", "admission: enforce", "admission: cannot unmarshal a string into a mapping"},
		{"admission.mode", "admission:\n  mode: strict", `admission.mode: "strict" is not one of enforce, audit, off`},
		{"admission.privileged", "admission:\n  privileged: [\"kube-*-\u00e9\"]", `admission.privileged[0]: "kube-*-é" has characters`},
		{"admission.hostPID", "admission:\n  hostPID: [Monitoring]", `admission.hostPID[0]: "Monitoring" has upper-case letters`},
		{"admission.hostIPC", "admission:\n  hostIPC: [\"\"]", `admission.hostIPC[0]: "" is empty`},
		{"admission.hostNetwork", "admission:\n  hostNetwork: [\"calico-[\"]", `admission.hostNetwork[0]: "calico-[" is not a valid glob pattern`},
		// failClosed is a boolean: only a value that is not one is wrong.
		{"admission.failClosed", `admission: {failClosed: "yes"}`, "admission.failClosed: cannot unmarshal a string into a boolean"},
		{"metricsAddress", "metricsAddress: 9110", `metricsAddress: "9110" is not host:port`},
		{"healthAddress", "healthAddress: localhost", `healthAddress: "localhost" is not host:port`},
		{"log", "log: debug", "log: cannot unmarshal a string into a mapping"},
		{"log.level", "log:\n  level: trace", `log.level: "trace" is not one of info, debug, warn, error`},
		{"log.format", "log:\n  format: logfmt", `log.format: "logfmt" is not one of text, json`},
		{"log.file", "log:\n  file: coreguard.log", `log.file: "coreguard.log" is not an absolute path`},
		{"sysfsRoot", "sysfsRoot: sys", `sysfsRoot: "sys" is not an absolute path`},
		{"cgroupRoot", "cgroupRoot: ./cgroup", `cgroupRoot: "./cgroup" is not an absolute path`},
		{"kubeletRootDir", "kubeletRootDir: var/lib/kubelet", `kubeletRootDir: "var/lib/kubelet" is not an absolute path`},
		{"startTimeout", "startTimeout: 500ms", `startTimeout: "500ms" is not a duration of a second or more`},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.field] = true
		t.Run(tt.field, func(t *testing.T) { wantParseError(t, tt.in, []string{tt.want}, nil) })
	}
	for _, f := range fieldPaths(reflect.TypeFor[Config](), "") {
		if !covered[f] {
			t.Errorf("no bad-value row for field %s", f)
		}
	}
	// A rule whose from is not below its below covers nothing.
	if _, err := Parse([]byte(rule(`from: "5.0", below: "4.19"`))); err == nil || !strings.Contains(err.Error(), `from "5.0" is not below below "4.19"`) {
		t.Errorf("from above below: %v", err)
	}
}

// TestParseStrict: keys are case-sensitive, a key appears once, a field
// holds its kind of value and the configuration is one document; every
// error names the field by its dotted path.
func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		not      []string // must not appear
	}{
		// Keys in the wrong case: encoding/json would take them.
		{"wrong case", `reservedSystemCpus: "0"`,
			[]string{`unknown field "reservedSystemCpus" (did you mean "reservedSystemCPUs"? keys are case-sensitive)`}, nil},
		{"upper case", "ADMISSION: {}", []string{`unknown field "ADMISSION" (did you mean "admission"?`}, nil},
		{"capitalised", "Admission:\n  mode: audit", []string{`unknown field "Admission" (did you mean "admission"?`}, nil},
		{"capitalised enum", "OddCPUs: reject", []string{`unknown field "OddCPUs" (did you mean "oddCPUs"?`}, nil},
		{"nested wrong case", "admission:\n  Mode: audit", []string{`unknown field "admission.Mode" (did you mean "mode"?`}, nil},
		{"nested wrong case list", "admission:\n  hostPid: []", []string{`unknown field "admission.hostPid" (did you mean "hostPID"?`}, nil},
		{"kernel wrong case", "kernel:\n  Remove: []", []string{`unknown field "kernel.Remove" (did you mean "remove"?`}, nil},
		{"rule wrong case", "kernel:\n  add:\n  - {name: r, verdict: buggy, source: s, fixedin: 4.19.84}",
			[]string{`unknown field "kernel.add[0].fixedin" (did you mean "fixedIn"?`}, nil},
		{"second rule wrong case", "kernel:\n  add:\n  - {name: r, verdict: buggy, source: s}\n  - {Name: q, verdict: fixed, source: s}",
			[]string{`unknown field "kernel.add[1].Name" (did you mean "name"?`}, nil},
		{"same key in two cases", "oddCPUs: reject\noddcpus: reject",
			[]string{`unknown field "oddcpus" (did you mean "oddCPUs"?`}, nil},

		// Unknown fields, top level and nested: no case hint.
		{"unknown", "oddCPU: reject", []string{`unknown field "oddCPU"`}, []string{"did you mean"}},
		{"unknown nested", "admission:\n  privilegd: [x]", []string{`unknown field "admission.privilegd"`}, []string{"did you mean"}},
		{"unknown kernel", "kernel:\n  unknwn: buggy", []string{`unknown field "kernel.unknwn"`}, []string{"did you mean"}},
		{"unknown rule", "kernel:\n  add:\n  - {name: r, verdict: buggy, source: s, comment: x}",
			[]string{`unknown field "kernel.add[0].comment"`}, []string{"did you mean"}},
		{"several unknown", "a: 1\nadmission:\n  b: 2\n",
			[]string{`unknown field "a"`, `unknown field "admission.b"`}, nil},

		// Duplicate keys.
		{"duplicate", "oddCPUs: reject\noddCPUs: isolate", []string{`duplicate field "oddCPUs" (line 2)`}, nil},
		{"duplicate nested", "admission:\n  mode: audit\n  mode: off", []string{`duplicate field "admission.mode" (line 3)`}, nil},
		{"duplicate in rule", "kernel:\n  add:\n  - name: r\n    verdict: buggy\n    source: s\n    name: q",
			[]string{`duplicate field "kernel.add[0].name" (line 6)`}, nil},
		{"duplicate json", `{"cfsQuota": "keep", "cfsQuota": "clear"}`, []string{`duplicate field "cfsQuota"`}, nil},
		{"duplicate and unknown", "x: 1\noddCPUs: reject\noddCPUs: reject",
			[]string{`duplicate field "oddCPUs"`, `unknown field "x"`}, nil},

		// Values of the wrong kind.
		{"string for list", "exemptNamespaces: kube-system", []string{"exemptNamespaces: cannot unmarshal a string into a list of strings"}, nil},
		{"list for string", "reservedSystemCPUs: [0, 1]", []string{"reservedSystemCPUs: cannot unmarshal a list into a string"}, nil},
		{"mapping for string", "oddCPUs: {round: up}", []string{"oddCPUs: cannot unmarshal a mapping into a string"}, nil},
		{"string for mapping", "admission: audit", []string{"admission: cannot unmarshal a string into a mapping"}, nil},
		{"string for nested list", "admission:\n  privileged: kube-system", []string{"admission.privileged: cannot unmarshal a string into a list of strings"}, nil},
		{"string for bool", "admission:\n  failClosed: \"true\"", []string{"admission.failClosed: cannot unmarshal a string into a boolean"}, nil},
		{"mapping for rule list", "kernel:\n  add: {name: r}", []string{"kernel.add: cannot unmarshal a mapping into a list of mappings"}, nil},
		{"list for rule field", "kernel:\n  add:\n  - {name: r, verdict: [buggy], source: s}", []string{"kernel.add.verdict: cannot unmarshal a list into a string"}, nil},
		{"list document", "- oddCPUs: reject", []string{"the document: cannot unmarshal a list into a mapping"}, nil},

		// More than one document.
		{"two documents", "oddCPUs: reject\n---\noddCPUs: isolate\n",
			[]string{"config: more than one YAML document: another starts at line 2"}, nil},
		{"two documents, first empty", "---\n---\noddCPUs: isolate\n", []string{"config: more than one YAML document"}, nil},
		{"second document null", "oddCPUs: reject\n---\n~\n", []string{"config: more than one YAML document"}, nil},
		{"third document", "oddCPUs: reject\n---\n---\ncfsQuota: keep\n", []string{"config: more than one YAML document: another starts at line 3"}, nil},

		// Decoding problems come with the value checks' errors.
		{"unknown and bad value", "oddCPUs: odd\nreservedSystemCpus: \"0\"",
			[]string{`unknown field "reservedSystemCpus"`, `oddCPUs: "odd" is not one of`}, nil},
		{"not yaml", "admission: {mode: audit", []string{"config: yaml: line 1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantParseError(t, tt.in, tt.want, tt.not) })
	}
}

// wantParseError checks that Parse refuses in with an error containing
// every string of want and none of not.
func wantParseError(t *testing.T, in string, want, not []string) {
	t.Helper()
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatalf("Parse(%q) succeeded", in)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Parse(%q) error:\n%v\nwant it to contain %q", in, err, w)
		}
	}
	for _, n := range not {
		if strings.Contains(err.Error(), n) {
			t.Errorf("Parse(%q) error:\n%v\nshould not contain %q", in, err, n)
		}
	}
}

// TestParseDocumentMarkers: --- before the document, or after it with
// nothing following, is one document.
func TestParseDocumentMarkers(t *testing.T) {
	for _, in := range []string{
		"---\noddCPUs: reject\n",
		"oddCPUs: reject\n---\n",
		"---\noddCPUs: reject\n---\n",
		"oddCPUs: reject\n---\n# only a comment\n",
		"# header\n---\noddCPUs: reject\n...\n",
		`{"oddCPUs": "reject"}`,
	} {
		c, err := Parse([]byte(in))
		if err != nil || c.OddCPUs != alloc.Reject {
			t.Errorf("Parse(%q) = %+v, %v", in, c, err)
		}
	}
	for _, in := range []string{"---\n", "---\n---\n", "# nothing\n", "~\n"} {
		if c, err := Parse([]byte(in)); err != nil || c.OddCPUs != alloc.RoundUp {
			t.Errorf("Parse(%q) = %+v, %v; want the defaults", in, c, err)
		}
	}
}

// TestParseScalarsAsStrings: an unquoted scalar in a string field is read
// as text, as before strict reading (kubelet would refuse these).
func TestParseScalarsAsStrings(t *testing.T) {
	c, err := Parse([]byte("reservedSystemCPUs: 0\nadmission:\n  mode: off\nkernel:\n  add:\n  - {name: 7, branch: 4.19, verdict: buggy, source: s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Reserved().String() != "0" || c.Admission.Mode != AdmissionOff || c.Kernel.Add[0].Name != "7" || c.Kernel.Add[0].Branch != "4.19" {
		t.Errorf("parsed %+v", c)
	}
}

// TestMarshalRoundTrip: the configuration in force, written out (coreguard
// keeps it as its last good one), reads back the same.
func TestMarshalRoundTrip(t *testing.T) {
	c, err := Parse([]byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("written out, it no longer reads: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(c, back) {
		t.Errorf("round trip changed it:\n%+v\n%+v", c, back)
	}
}
