package main

import (
	"encoding/json"
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
			`(rule "ubuntu-4.15": fixed in 4.15.0-67, source: https://ubuntu.com/security/CVE-2019-19922`,
		}, nil},
		{[]string{"kernel", "4.15.0-67-generic"}, 0, []string{`4.15.0-67-generic: NOT BUGGY — `, `rule "ubuntu-4.15"`}, nil},
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
		{[]string{"kernel", "-h"}, 0, nil, []string{"Exit status: 0 for any verdict", "-unknown", "-json", "-rules"}},
		{[]string{"help", "kernel"}, 0, []string{"usage: coreguard kernel [flags] [RELEASE]"}, nil},
		{[]string{"help"}, 0, []string{"kernel     Tell whether a kernel has the CFS quota throttling bug."}, nil},
		{[]string{"kernel", "a", "b"}, 2, nil, []string{`coreguard kernel: one release at most, got 2: ["a" "b"]`, "usage: coreguard kernel [flags] [RELEASE]"}},
		{[]string{"kernel", "--unknown", "maybe", "5.4"}, 2, nil, []string{`--unknown: "maybe" is not one of not-buggy, buggy`}},
		{[]string{"kernel", "--rules", "5.4"}, 2, nil, []string{"--rules takes no release"}},
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
	Release string          `json:"release"`
	Parsed  *kernel.Release `json:"parsed"`
	Verdict string          `json:"verdict"`
	Buggy   bool            `json:"buggy"`
	Known   bool            `json:"known"`
	Rule    *kernel.Rule    `json:"rule"`
	Reason  string          `json:"reason"`
	Warning string          `json:"warning"`
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
		{[]string{"4.18.0-147.el8.x86_64"}, "unknown", "distro-unverified", "treated as not buggy", false, false, true},
		{[]string{"--unknown", "buggy", "4.18.0-147.el8.x86_64"}, "unknown", "distro-unverified", "treated as buggy", true, false, true},
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
