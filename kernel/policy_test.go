package kernel

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestDefaultVerdicts checks the default table on the examples and
// on both sides of every row's edges (one before and at each fix or bound).
func TestDefaultVerdicts(t *testing.T) {
	tests := []struct {
		release, verdict, rule string
	}{
		// The examples.
		{"5.4.0-1045-aws", "not-buggy", "mainline-5.4"},
		{"4.14.154-128.181.amzn2.x86_64", "not-buggy", "amzn2-4.14"},
		{"3.10.0-1062.8.1.el7.x86_64", "not-buggy", "rhel-7"},
		{"4.15.0-69-generic", "not-buggy", "ubuntu-4.15"},
		{"6.8.0-rc3", "not-buggy", "mainline-5.4"},
		{"5.4", "not-buggy", "mainline-5.4"},
		{"4.19.0-6-amd64", "unknown", "distro-unverified"},
		{"5.10.0-28-cloud-amd64", "not-buggy", "mainline-5.4"},

		// mainline-5.4: from 5.4-rc1.
		{"5.4.0-rc1", "not-buggy", "mainline-5.4"},
		{"5.4.0-rc1+", "not-buggy", "mainline-5.4"},
		{"5.3.18-57-default", "unknown", "distro-unverified"}, // SUSE: below 5.4, no row
		{"6.1.0-18-amd64", "not-buggy", "mainline-5.4"},
		{"5.15.142-flatcar", "not-buggy", "mainline-5.4"},
		{"5.14.0-362.8.1.el9_3.x86_64", "not-buggy", "mainline-5.4"},
		{"5.4.16", "not-buggy", "mainline-5.4"},                       // Bottlerocket v0.3.0's kernel, its first public release
		{"5.14.21-150400.24.46-default", "not-buggy", "mainline-5.4"}, // SLES 15 SP4

		// ubuntu-4.4: the tracker marks Ubuntu's 4.4 kernels not affected.
		{"4.4.0-170-generic", "not-buggy", "ubuntu-4.4"},
		{"4.4.0-1001-aws", "not-buggy", "ubuntu-4.4"},

		// ubuntu-4.15: fixed in 4.15.0-69 (the tracker: 4.15.0-69.78),
		// main-kernel ABIs below 1000. Flavours: TestUbuntuFlavourRules.
		{"4.15.0-66-generic", "buggy", "ubuntu-4.15"},
		{"4.15.0-68-generic", "buggy", "ubuntu-4.15"},
		{"4.15.0-20-lowlatency", "buggy", "ubuntu-4.15"},
		{"4.15.0-999-generic", "not-buggy", "ubuntu-4.15"},
		{"4.15.0-1050-aws", "buggy", "ubuntu-4.15-aws"},
		{"4.15.0-1050-ibm", "unknown", "distro-unverified"}, // a flavour the tracker does not list

		// ubuntu-5.0: fixed in 5.0.0-38 (USN-4226-1).
		{"5.0.0-37-generic", "buggy", "ubuntu-5.0"},
		{"5.0.0-38-generic", "not-buggy", "ubuntu-5.0"},
		{"5.0.0-43-lowlatency", "not-buggy", "ubuntu-5.0"},

		// ubuntu-5.3: fixed in 5.3.0-24.
		{"5.3.0-23-generic", "buggy", "ubuntu-5.3"},
		{"5.3.0-24-generic", "not-buggy", "ubuntu-5.3"},
		{"5.3.0-1008-azure", "not-buggy", "ubuntu-5.3-azure"},
		{"5.3.0-1011-gke", "not-buggy", "ubuntu-5.3-gke"},
		{"4.18.0-1025-azure", "unknown", "distro-unverified"}, // bionic's 4.18 azure kernels: no tracker entry

		// rhel-8: fixed in 4.18.0-193.el8 (RHSA-2020:1769).
		{"4.18.0-80.el8.x86_64", "buggy", "rhel-8"},
		{"4.18.0-147.el8.x86_64", "buggy", "rhel-8"},
		{"4.18.0-147.2.1.el8_1.x86_64", "buggy", "rhel-8"},
		{"4.18.0-193.el8.x86_64", "not-buggy", "rhel-8"},
		{"4.18.0-372.9.1.el8_6.x86_64", "not-buggy", "rhel-8"},

		// rhel-7: fixed in 3.10.0-1062.8.1.el7.
		{"3.10.0-1062.7.1.el7.x86_64", "buggy", "rhel-7"},
		{"3.10.0-1062.el7.x86_64", "buggy", "rhel-7"},
		{"3.10.0-957.27.2.el7.x86_64", "buggy", "rhel-7"},
		{"3.10.0-1062.8.2.el7.x86_64", "not-buggy", "rhel-7"},
		{"3.10.0-1160.el7.x86_64", "not-buggy", "rhel-7"},

		// amzn2-4.14: fixed in 4.14.154-128.181.amzn2.
		{"4.14.152-127.182.amzn2.x86_64", "buggy", "amzn2-4.14"},
		{"4.14.154-127.181.amzn2.x86_64", "buggy", "amzn2-4.14"},
		{"4.14.154-128.180.amzn2.x86_64", "buggy", "amzn2-4.14"},
		{"4.14.262-200.489.amzn2.x86_64", "not-buggy", "amzn2-4.14"},
		{"5.10.199-190.747.amzn2.x86_64", "not-buggy", "mainline-5.4"},

		// coreos-4.19: fixed in 4.19.81.
		{"4.19.80-coreos", "buggy", "coreos-4.19"},
		{"4.19.81-coreos", "not-buggy", "coreos-4.19"},
		{"4.19.81-coreos-r1", "not-buggy", "coreos-4.19"},
		{"4.14.96-coreos-r1", "buggy", "stable-4.14"},

		// stable-4.14: fixed in 4.14.154.
		{"4.14.153", "buggy", "stable-4.14"},
		{"4.14.0", "buggy", "stable-4.14"},
		{"4.14.154", "not-buggy", "stable-4.14"},
		{"4.14.154+", "not-buggy", "stable-4.14"},

		// stable-4.19: fixed in 4.19.84.
		{"4.19.83", "buggy", "stable-4.19"},
		{"4.19.84", "not-buggy", "stable-4.19"},
		{"4.19.84-041984-generic", "not-buggy", "stable-4.19"}, // Ubuntu mainline PPA build
		{"4.19.83-flatcar", "buggy", "stable-4.19"},

		// stable-5.3: fixed in 5.3.9.
		{"5.3.8", "buggy", "stable-5.3"},
		{"5.3.9", "not-buggy", "stable-5.3"},

		// upstream-4.18-5.2: from 4.18-rc1, below 5.4-rc1.
		{"4.18-rc1", "buggy", "upstream-4.18-5.2"},
		{"4.18.20", "buggy", "upstream-4.18-5.2"},
		{"5.2.21", "buggy", "upstream-4.18-5.2"},
		{"5.0.0-custom", "buggy", "upstream-4.18-5.2"},

		// upstream-before-4.18.
		{"4.17.19", "not-buggy", "upstream-before-4.18"},
		{"4.17.0-rc1", "not-buggy", "upstream-before-4.18"},
		{"4.9.200", "not-buggy", "upstream-before-4.18"},
		{"3.16.60", "not-buggy", "upstream-before-4.18"},
		{"3.16.81", "not-buggy", "upstream-before-4.18"},

		// stable-3.16: 512ac999d275 from 3.16.61, reverted in 3.16.81.
		{"3.16.61", "buggy", "stable-3.16"},
		{"3.16.80", "buggy", "stable-3.16"},
		{"2.6.32.27", "not-buggy", "upstream-before-4.18"},

		// distro-unverified: distribution kernels below 5.4 without a row.
		{"4.14.35-1902.10.2.el7uek.x86_64", "unknown", "distro-unverified"},
		{"3.16.0-10-amd64", "unknown", "distro-unverified"},
		{"4.19.0-8-amd64", "unknown", "distro-unverified"},
		{"4.19.84-1-custom", "unknown", "distro-unverified"},
		{"4.12.14-122.37-default", "unknown", "distro-unverified"},
		{"2.6.32-754.el6.x86_64", "unknown", "distro-unverified"},

		// Ubuntu flavours, a few by hand (all of them below).
		{"4.15.0-1053-aws", "buggy", "ubuntu-4.15-aws"},
		{"4.15.0-1054-aws", "not-buggy", "ubuntu-4.15-aws"},
		{"5.0.0-1027-azure", "not-buggy", "ubuntu-5.0-azure"},
		{"5.3.0-1007-azure", "buggy", "ubuntu-5.3-azure"},
		{"5.0.0-1032-oem-osp1", "buggy", "ubuntu-5.0-oem-osp1"},
	}
	// Every Ubuntu flavour row: its last flagged ABI and its first fixed one.
	for _, f := range ubuntuFlavourFixes {
		fixed, _ := strconv.Atoi(f.fixedIn)
		name := "ubuntu-" + f.branch + "-" + f.flavour
		tests = append(tests,
			struct{ release, verdict, rule string }{fmt.Sprintf("%s.0-%d-%s", f.branch, fixed-1, f.flavour), "buggy", name},
			struct{ release, verdict, rule string }{fmt.Sprintf("%s.0-%d-%s", f.branch, fixed, f.flavour), "not-buggy", name})
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			v := Policy{}.Decide(tt.release)
			if v.String() != tt.verdict || v.Rule == nil || v.Rule.Name != tt.rule {
				name := "<nil>"
				if v.Rule != nil {
					name = v.Rule.Name
				}
				t.Errorf("Decide(%q) = %s by %s (%s), want %s by %s", tt.release, v, name, v.Reason, tt.verdict, tt.rule)
			}
			if v.Reason == "" || v.Rule != nil && v.Rule.Source == "" {
				t.Errorf("Decide(%q): reason %q, rule %+v", tt.release, v.Reason, v.Rule)
			}
			if v.Known && v.Buggy != (tt.verdict == "buggy") {
				t.Errorf("Decide(%q): Buggy %v for %s", tt.release, v.Buggy, tt.verdict)
			}
		})
		seen[tt.rule] = true
	}
	for _, r := range DefaultRules() {
		if !seen[r.Name] {
			t.Errorf("default rule %q has no test", r.Name)
		}
	}
}

func TestDefaultRulesHaveSources(t *testing.T) {
	names := map[string]bool{}
	for _, r := range DefaultRules() {
		if _, err := compile(r); err != nil {
			t.Errorf("rule %q: %v", r.Name, err)
		}
		if r.Source == "" || r.Note == "" {
			t.Errorf("rule %q has no source or note", r.Name)
		}
		for _, src := range strings.Split(r.Source, "; ") {
			if u, err := url.Parse(src); err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(src, " ()") {
				t.Errorf("rule %q: source %q is not a URL", r.Name, src)
			}
		}
		if names[r.Name] {
			t.Errorf("rule %q twice", r.Name)
		}
		names[r.Name] = true
	}
	last := DefaultRules()[len(DefaultRules())-1]
	if last.Verdict != VerdictUnknown || last.Branch != "" || last.Distro != "" || last.From != "" || last.Below != "" {
		t.Errorf("the last default rule should cover everything with unknown: %+v", last)
	}
}

func TestUnknown(t *testing.T) {
	for _, tt := range []struct {
		policy Policy
		buggy  bool
	}{{Policy{}, false}, {Policy{Unknown: UnknownNotBuggy}, false}, {Policy{Unknown: UnknownBuggy}, true}} {
		for _, rel := range []string{"garbage", "4.19.0-6-amd64", ""} {
			v := tt.policy.Decide(rel)
			if v.Known || v.Buggy != tt.buggy || v.String() != "unknown" {
				t.Errorf("%+v Decide(%q) = %+v, want unknown with Buggy %v", tt.policy, rel, v, tt.buggy)
			}
		}
		if v := tt.policy.Decide("garbage"); v.Rule != nil || !strings.Contains(v.Reason, `cannot parse the release: kernel release "garbage"`) {
			t.Errorf("Decide(garbage) = %+v", v)
		}
		if v := tt.policy.Decide("4.15.0-66-generic"); !v.Known || !v.Buggy {
			t.Errorf("policy.Unknown changed a known verdict: %+v", v)
		}
	}
}

func TestPolicyAddRemove(t *testing.T) {
	debian := Rule{
		Name: "debian-10", Distro: "debian", Branch: "4.19.", Verdict: VerdictBuggy, FixedIn: "4.19.0-8",
		Source: "https://security-tracker.debian.org/tracker/CVE-2019-19922",
	}
	p := Policy{Add: []Rule{debian}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"4.19.0-6-amd64": "buggy", "4.19.0-8-amd64": "not-buggy", "4.19.0-27-cloud-amd64": "not-buggy",
		"4.9.0-11-amd64": "unknown", "4.15.0-66-generic": "buggy",
	} {
		if v := p.Decide(rel); v.String() != want {
			t.Errorf("Decide(%q) = %s (%s), want %s", rel, v, v.Reason, want)
		}
	}
	if v := p.Decide("4.19.0-6-amd64"); v.Rule.Name != "debian-10" || v.Rule.FixedIn != "4.19.0-8" || !strings.Contains(v.Reason, "throttles far below the limit") {
		t.Errorf("verdict %+v", v)
	}

	// Added rules go first and override the defaults.
	p = Policy{Add: []Rule{{Name: "trust-my-4.14", Branch: "4.14", Distro: "upstream", Verdict: VerdictFixed, Source: "our build has de53fd7aedb1"}}}
	if v := p.Decide("4.14.100"); v.String() != "not-buggy" || v.Rule.Name != "trust-my-4.14" {
		t.Errorf("override: %+v", v)
	}

	// Removing the catch-all leaves releases no rule covers: unknown, no rule.
	p = Policy{Remove: []string{"distro-unverified"}}
	if v := p.Decide("4.12.14-122.37-default"); v.Known || v.Rule != nil || !strings.Contains(v.Reason, "no rule covers other kernel") {
		t.Errorf("no rule: %+v", v)
	}
	// Removing a row lets the next one decide.
	p = Policy{Remove: []string{"coreos-4.19"}}
	if v := p.Decide("4.19.81-coreos"); v.String() != "buggy" || v.Rule.Name != "stable-4.19" {
		t.Errorf("removed coreos-4.19: %+v", v)
	}
	// Replace a default: remove and add under its name.
	p = Policy{Remove: []string{"rhel-7"}, Add: []Rule{{Name: "rhel-7", Distro: "el7", Verdict: VerdictBuggy, FixedIn: "3.10.0-1062.4.1.el7", Source: "x"}}}
	if v := p.Decide("3.10.0-1062.4.1.el7.x86_64"); v.String() != "not-buggy" {
		t.Errorf("replaced rhel-7: %+v", v)
	}
	rules, err := p.Rules()
	if err != nil || rules[0].Name != "rhel-7" || rules[0].FixedIn != "3.10.0-1062.4.1.el7" || len(rules) != len(DefaultRules()) {
		t.Errorf("Rules() = %v, %v", rules, err)
	}
	// Flavour matching and unknown verdict rules.
	p = Policy{Add: []Rule{{Name: "aws-4.15", Distro: "ubuntu", Flavour: "aws,gcp", Branch: "4.15", Verdict: VerdictUnknown, Source: "x"}}}
	if v := p.Decide("4.15.0-1050-aws"); v.String() != "unknown" || v.Rule.Name != "aws-4.15" {
		t.Errorf("flavour: %+v", v)
	}
	if v := p.Decide("4.15.0-50-generic"); v.Rule.Name != "ubuntu-4.15" {
		t.Errorf("flavour: %+v", v)
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := Rule{Name: "x", Verdict: VerdictBuggy, Source: "s"}
	with := func(f func(*Rule)) Rule { r := ok; f(&r); return r }
	tests := []struct {
		policy Policy
		want   string
	}{
		{Policy{Unknown: "maybe"}, `unknown: "maybe" is not one of not-buggy, buggy`},
		{Policy{Remove: []string{"rhel-7", "rhel7"}}, `remove[1]: no default rule is named "rhel7"`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Name = "" })}}, "add[0]: name: empty"},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Source = " " })}}, `add[0] (rule "x"): source: empty`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.FixedIn = "4.x" })}}, `add[0] (rule "x"): fixedIn: kernel release "4.x": needs at least MAJOR.MINOR`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.From = "garbage" })}}, `from: kernel release "garbage"`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Below = "5.4 " + "x" })}}, `below: kernel release "5.4 x"`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.From, r.Below = "5.4", "5.3" })}}, `from "5.4" is not below below "5.3"`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Branch = "4" })}}, `branch: "4" is not MAJOR.MINOR`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Distro = "Ubuntu" })}}, `distro: "Ubuntu" is not a distribution name`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Flavour = "gen eric" })}}, `flavour: "gen eric"`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Verdict = "" })}}, "verdict: empty"},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Verdict = "patched" })}}, `verdict: "patched" is not one of`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Verdict, r.FixedIn = VerdictFixed, "5.4" })}}, `fixedIn: only meaningful with verdict buggy`},
		{Policy{Add: []Rule{ok, ok}}, `add[1]: name "x" is already used by add[0]`},
		{Policy{Add: []Rule{with(func(r *Rule) { r.Name = "rhel-7" })}}, `add[0]: name "rhel-7" is a default rule's`},
	}
	for _, tt := range tests {
		err := tt.policy.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.policy, err, tt.want)
		}
		if v := tt.policy.Decide("4.15.0-66-generic"); v.Known || !strings.Contains(v.Reason, "invalid kernel policy") {
			t.Errorf("invalid policy decided: %+v", v)
		}
	}
	// Every error at once.
	err := Policy{Unknown: "x", Remove: []string{"nope"}, Add: []Rule{{Name: "a"}}}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three errors, got %v", err)
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Errorf("zero policy: %v", err)
	}
	for _, b := range []string{"4.19", "4.19.", "4.19.x", "4.14, 4.19"} {
		if err := (Policy{Add: []Rule{with(func(r *Rule) { r.Branch = b })}}).Validate(); err != nil {
			t.Errorf("branch %q: %v", b, err)
		}
	}
}

// TestPolicyYAML reads a policy the way the configuration will: YAML with
// the JSON field names, strictly.
func TestPolicyYAML(t *testing.T) {
	doc := `
unknown: buggy
remove: [distro-unverified]
add:
- name: debian-10
  distro: debian
  branch: "4.19"
  fixedIn: 4.19.0-8
  verdict: buggy
  source: https://security-tracker.debian.org/tracker/CVE-2019-19922
`
	var p Policy
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if v := p.Decide("4.19.0-6-amd64"); v.String() != "buggy" {
		t.Errorf("%+v", v)
	}
	if v := p.Decide("4.12.14-122.37-default"); v.Known || !v.Buggy {
		t.Errorf("unknown: buggy not applied: %+v", v)
	}
	out, err := json.Marshal(ruleNamed(t, "ubuntu-4.15"))
	if err != nil || !strings.Contains(string(out), `"fixedIn":"4.15.0-69"`) || !strings.Contains(string(out), `"source":`) {
		t.Errorf("%s %v", out, err)
	}
}

// ruleNamed returns the default rule of that name.
func ruleNamed(t *testing.T, name string) Rule {
	t.Helper()
	for _, r := range DefaultRules() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no default rule %q", name)
	return Rule{}
}
