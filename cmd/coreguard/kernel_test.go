package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreguard/coreguard/kernel"
)

func TestKernelCommand(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err []string
	}{
		{[]string{"kernel", "4.15.0-66-generic"}, 0, []string{
			`4.15.0-66-generic: BUGGY — CFS quota throttles far below the limit`,
			`(rule "ubuntu-4.15": fixed in 4.15.0-69, source: https://ubuntu.com/security/CVE-2019-19922`,
		}, nil},
		{[]string{"kernel", "4.15.0-69-generic"}, 0, []string{`4.15.0-69-generic: NOT BUGGY — `, `rule "ubuntu-4.15"`}, nil},
		{[]string{"kernel", "5.4.0-1045-aws"}, 0, []string{`NOT BUGGY`, `rule "mainline-5.4"`}, nil},
		{[]string{"kernel", "4.17.19"}, 0, []string{`NOT BUGGY — predates`, `rule "upstream-before-4.18"`}, nil},
		{[]string{"kernel", "4.19.0-6-amd64"}, 0, []string{
			`4.19.0-6-amd64: UNKNOWN (treated as not buggy) — no verified rule for debian kernel`,
			`rule "distro-unverified"`,
		}, []string{"warning: kernel unknown to the table, treated as not buggy"}},
		{[]string{"kernel", "--unknown", "buggy", "garbage"}, 0, []string{
			`garbage: UNKNOWN (treated as buggy) — cannot parse the release: kernel release "garbage": does not start with a version number`,
		}, []string{"warning: kernel unknown to the table, treated as buggy"}},
		{[]string{"kernel", "3.10.0-1062.4.1.el7.x86_64", "--unknown", "not-buggy"}, 0, []string{`BUGGY`, `rule "rhel-7"`}, nil},
		{[]string{"kernel", "--rules"}, 0, []string{"1. mainline-5.4: from 5.4-rc1 → fixed", "source: ", "why: ", "stable-4.19: distro upstream,coreos,flatcar, branch 4.19 → buggy, fixed from 4.19.84", "distro-unverified: any kernel → unknown"}, nil},
		{[]string{"kernel", "-h"}, 0, nil, []string{"Exit status: 0 for any verdict", "-unknown", "-json", "-rules", "-proc-root"}},
		{[]string{"help", "kernel"}, 0, []string{"usage: coreguard kernel [flags] [RELEASE]"}, nil},
		{[]string{"help"}, 0, []string{"kernel     Tell whether a kernel has the CFS quota throttling bug."}, nil},
		{[]string{"kernel", "a", "b"}, 2, nil, []string{`coreguard kernel: one release at most, got 2: ["a" "b"]`, "usage: coreguard kernel [flags] [RELEASE]"}},
		{[]string{"kernel", "--unknown", "maybe", "5.4"}, 2, nil, []string{`--unknown: "maybe" is not one of not-buggy, buggy`}},
		{[]string{"kernel", "--rules", "5.4"}, 2, nil, []string{"--rules takes no release and no --proc-root"}},
		{[]string{"kernel", "--rules", "--proc-root", procTree("debian-10.2")}, 2, nil, []string{"--rules takes no release and no --proc-root"}},
		{[]string{"kernel", "--bogus"}, 2, nil, []string{"flag provided but not defined: -bogus"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tt.code, out, errOut)
			}
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tt.err {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(out, "warning:") {
				t.Errorf("a warning on stdout (it belongs on stderr):\n%s", out)
			}
			if tt.code == 0 && len(tt.err) == 0 && errOut != "" {
				t.Errorf("unexpected stderr %q", errOut)
			}
		})
	}
}

func TestKernelRunning(t *testing.T) {
	rel, err := kernel.Running()
	if err != nil {
		t.Skipf("cannot read the running kernel: %v", err)
	}
	code, out, errOut := runCLI("kernel")
	if code != 0 || !strings.HasPrefix(out, rel+": ") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a verdict for %s", code, out, errOut, rel)
	}
}

// kernelOut is what other tools read from `coreguard kernel --json`.
type kernelOut struct {
	Release  string           `json:"release"`
	Parsed   *kernel.Release  `json:"parsed"`
	Upstream *kernel.Upstream `json:"upstream"`
	Ignored  []string         `json:"ignored"`
	Basis    string           `json:"basis"`
	Verdict  string           `json:"verdict"`
	Buggy    bool             `json:"buggy"`
	Known    bool             `json:"known"`
	Rule     *kernel.Rule     `json:"rule"`
	Reason   string           `json:"reason"`
	Warning  string           `json:"warning"`
}

func TestKernelJSON(t *testing.T) {
	tests := []struct {
		args                []string
		verdict, rule, warn string
		buggy, known        bool
		parsed              bool
	}{
		{[]string{"4.14.153"}, "buggy", "stable-4.14", "", true, true, true},
		{[]string{"4.14.154-128.181.amzn2.x86_64"}, "not-buggy", "amzn2-4.14", "", false, true, true},
		{[]string{"6.8.0-rc3"}, "not-buggy", "mainline-5.4", "", false, true, true},
		{[]string{"4.12.14-122.37-default"}, "unknown", "distro-unverified", "treated as not buggy", false, false, true},
		{[]string{"--unknown", "buggy", "4.12.14-122.37-default"}, "unknown", "distro-unverified", "treated as buggy", true, false, true},
		{[]string{"--unknown=buggy", "x.y"}, "unknown", "", "treated as buggy", true, false, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"kernel", "--json"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got kernelOut
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			rule := ""
			if got.Rule != nil {
				rule = got.Rule.Name
				if got.Rule.Source == "" {
					t.Errorf("rule without source: %+v", got.Rule)
				}
			}
			if got.Release != tt.args[len(tt.args)-1] || got.Verdict != tt.verdict || rule != tt.rule ||
				got.Buggy != tt.buggy || got.Known != tt.known || (got.Parsed != nil) != tt.parsed || got.Reason == "" ||
				!strings.Contains(got.Warning, tt.warn) || tt.warn == "" && got.Warning != "" {
				t.Errorf("got %+v (rule %q)", got, rule)
			}
		})
	}
	// Parsed carries the distro fields.
	_, out, _ := runCLI("kernel", "--json", "3.10.0-1062.8.1.el7.x86_64")
	var got kernelOut
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if p := got.Parsed; p == nil || p.Major != 3 || p.Minor != 10 || p.Distro != "el7" || len(p.Build) != 3 || p.Arch != "x86_64" {
		t.Errorf("parsed %+v", got.Parsed)
	}
	// --rules --json is the table.
	_, out, _ = runCLI("kernel", "--rules", "--json")
	var rules []kernel.Rule
	if err := json.Unmarshal([]byte(out), &rules); err != nil || len(rules) != len(kernel.DefaultRules()) {
		t.Fatalf("%v: %s", err, out)
	}
}

// procTree is a saved procfs tree of kernel/testdata/proc.
func procTree(name string) string {
	return filepath.Join("..", "..", "kernel", "testdata", "proc", name)
}

// TestKernelProcRoot judges saved procfs trees: the verdict line names the
// upstream version that decided, and a tree without a release is an error.
func TestKernelProcRoot(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err []string
	}{
		{[]string{"kernel", "--proc-root", procTree("debian-10.2")}, 0, []string{
			`4.19.0-6-amd64: BUGGY — upstream 4.19.67 from /proc/version: CFS quota throttles far below the limit`,
			`(rule "stable-4.19": fixed in 4.19.84, source: https://cdn.kernel.org/pub/linux/kernel/v4.x/ChangeLog-4.19.84`,
		}, nil},
		{[]string{"kernel", "--proc-root", procTree("debian-10.3")}, 0, []string{
			`4.19.0-8-amd64: NOT BUGGY — upstream 4.19.98 from /proc/version: 4.19.98 is at or above 4.19.84`,
		}, nil},
		{[]string{"kernel", "--proc-root", procTree("debian-9")}, 0, []string{
			`4.9.0-11-amd64: UNKNOWN (treated as not buggy) — no verified rule for debian kernel 4.9.0-11-amd64`,
			`upstream 4.9.189 from /proc/version does not decide either`,
		}, []string{"warning: kernel unknown to the table, treated as not buggy"}},
		{[]string{"kernel", "--proc-root", procTree("ubuntu-19.10-azure")}, 0, []string{
			`5.3.0-1008-azure: NOT BUGGY — 5.3.0-1008-azure is at or above 5.3.0-1008`,
			`upstream 5.3.18 from /proc/version_signature agrees (rule "stable-5.3")`,
			`(rule "ubuntu-5.3-azure": fixed in 5.3.0-1008, source: https://ubuntu.com/security/CVE-2019-19922`,
		}, nil},
		{[]string{"kernel", "--proc-root", procTree("rhel-8.1")}, 0, []string{
			`4.18.0-147.el8.x86_64: BUGGY — `, `(rule "rhel-8": fixed in 4.18.0-193.el8, source: https://access.redhat.com/errata/RHSA-2020:1769`,
		}, nil},
		{[]string{"kernel", "--proc-root", procTree("sles-15-sp1"), "--unknown", "buggy"}, 0, []string{
			`4.12.14-197.29-default: UNKNOWN (treated as buggy) — `, "SUSE kernels have no rule",
		}, nil},
		{[]string{"kernel", "--proc-root", procTree("debian-10.2"), "4.19.0-6-amd64"}, 2, nil,
			[]string{"give a RELEASE or --proc-root, not both"}},
		{[]string{"kernel", "--proc-root", procTree("no-such-tree")}, 1, nil,
			[]string{"cannot read the kernel release from ", "no-such-tree/sys/kernel/osrelease"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tt.code, out, errOut)
			}
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tt.err {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}

// TestKernelProcRootJSON: --json names the upstream version and the basis.
func TestKernelProcRootJSON(t *testing.T) {
	code, out, errOut := runCLI("kernel", "--json", "--proc-root", procTree("debian-10.2"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got kernelOut
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.Release != "4.19.0-6-amd64" || got.Upstream == nil || *got.Upstream != (kernel.Upstream{Version: "4.19.67", From: "/proc/version"}) ||
		got.Basis != "upstream 4.19.67 from /proc/version" || got.Verdict != "buggy" || got.Rule == nil || got.Rule.Name != "stable-4.19" ||
		got.Parsed == nil || got.Parsed.Distro != "debian" {
		t.Errorf("got %+v", got)
	}
	// A release given: the basis is the release, no upstream version.
	_, out, _ = runCLI("kernel", "--json", "4.19.0-6-amd64")
	got = kernelOut{}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Basis != "release" || got.Upstream != nil || got.Known {
		t.Errorf("release only: %+v, %v", got, err)
	}
}
