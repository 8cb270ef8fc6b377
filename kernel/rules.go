package kernel

import (
	"fmt"
	"strconv"
	"strings"
)

// Rule is one row of the table. A rule matches a release when every match
// field that is set matches; the first matching rule decides.
//
// In YAML (the JSON names), as an entry of a Policy's add list:
//
//	add:
//	- name: debian-10
//	  distro: debian
//	  branch: "4.19"
//	  fixedIn: 4.19.0-8
//	  verdict: buggy
//	  source: https://security-tracker.debian.org/tracker/CVE-2019-19922 (example)
type Rule struct {
	// Name identifies the rule in verdicts and in the policy's remove list.
	Name string `json:"name"`

	// Branch: MAJOR.MINOR ("4.19", also written "4.19." or "4.19.x"),
	// or several separated by commas ("4.14,4.19"). Empty: any branch.
	Branch string `json:"branch,omitempty"`
	// Distro: a Release.Distro ("ubuntu", "debian", "el7", "amzn2",
	// "coreos", "flatcar", "other", ...) or "upstream" for kernels with no
	// distribution recognised, or several separated by commas. Empty: any.
	Distro string `json:"distro,omitempty"`
	// Flavour: an Ubuntu/Debian flavour ("generic", "aws") or several
	// separated by commas. Empty: any.
	Flavour string `json:"flavour,omitempty"`
	// From: the rule covers releases at or above this one (Compare order,
	// e.g. "4.18-rc1", "4.15.0-67"). Empty: no lower bound.
	From string `json:"from,omitempty"`
	// Below: the rule covers releases below this one. Empty: no upper bound.
	Below string `json:"below,omitempty"`

	// Verdict for the releases the rule covers: buggy, fixed (has the fix),
	// not-affected (never had the bug) or unknown.
	Verdict string `json:"verdict"`
	// FixedIn (with verdict buggy only): the first fixed release on this
	// branch; covered releases at or above it are fixed instead.
	FixedIn string `json:"fixedIn,omitempty"`

	// Source says where the rule comes from: a URL or commit, and a note.
	// Required.
	Source string `json:"source"`
	// Note explains the rule's reasoning (optional).
	Note string `json:"note,omitempty"`
}

// Rule verdicts.
const (
	VerdictBuggy       = "buggy"
	VerdictFixed       = "fixed"
	VerdictNotAffected = "not-affected"
	VerdictUnknown     = "unknown"
)

// Where the facts come from, shared by the default rows.
const (
	srcNotes  = "coreguard notes ../shared/notes/cpu-and-cfs.md (table \"first fixed\")"
	srcK8s    = "https://github.com/kubernetes/kubernetes/issues/67577"
	srcIndeed = "https://engineering.indeedblog.com/blog/2019/12/cpu-throttling-regression-fix/"
	srcFix    = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=de53fd7aedb1 (de53fd7aedb1, mainline v5.4, CVE-2019-19922)"
	srcBug    = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=512ac999d275 (512ac999d275, mainline v4.18)"
	// Kernels that show their real stable patch level and follow kernel.org.
	upstreamish = "upstream,coreos,flatcar"
)

// DefaultRules returns the built-in table, in the order it is consulted.
// Every row names its source; Note gives the reasoning.
func DefaultRules() []Rule {
	return []Rule{
		{
			Name: "mainline-5.4", From: "5.4-rc1", Verdict: VerdictFixed,
			Source: srcFix + "; " + srcNotes,
			Note: "de53fd7aedb1 was merged for 5.4 (in 5.4-rc1); every kernel based on 5.4 or later has it, " +
				"whatever its distribution",
		},
		{
			Name: "ubuntu-4.15", Distro: "ubuntu", Branch: "4.15", Below: "4.15.0-1000",
			Verdict: VerdictBuggy, FixedIn: "4.15.0-67",
			Source: "https://ubuntu.com/security/CVE-2019-19922; " + srcNotes + "; " + srcK8s,
			Note: "Ubuntu 18.04 (bionic) took 512ac999d275 through stable updates although 4.15 < 4.18, and the fix " +
				"in 4.15.0-67. Only the main kernel's ABIs (below 1000: generic, lowlatency, ...); the cloud and OEM " +
				"derivatives (4.15.0-1045-aws) number their ABIs from 1000 and their fixed ABI is not in the sources",
		},
		{
			Name: "ubuntu-5.3", Distro: "ubuntu", Branch: "5.3", Below: "5.3.0-1000",
			Verdict: VerdictBuggy, FixedIn: "5.3.0-24",
			Source: "https://ubuntu.com/security/CVE-2019-19922; " + srcNotes,
			Note:   "Ubuntu 19.10 (eoan) and the 18.04 HWE kernel; main kernel ABIs only, as ubuntu-4.15",
		},
		{
			Name: "rhel-7", Distro: "el7", Branch: "3.10",
			Verdict: VerdictBuggy, FixedIn: "3.10.0-1062.8.1.el7",
			Source: srcNotes + "; " + srcK8s + "; " + srcIndeed,
			Note: "RHEL/CentOS 7 backported 512ac999d275 into 3.10 and the fix in 3.10.0-1062.8.1.el7. The first " +
				"affected 7.x build is not in the sources, so every el7 build below the fix is flagged (conservative)",
		},
		{
			Name: "amzn2-4.14", Distro: "amzn2", Branch: "4.14",
			Verdict: VerdictBuggy, FixedIn: "4.14.154-128.181.amzn2",
			Source: srcNotes + "; " + srcK8s,
			Note: "Amazon Linux 2's 4.14 kernel carried 512ac999d275 (from 4.14.y stable) and got the fix in " +
				"4.14.154-128.181.amzn2; builds below it are flagged",
		},
		{
			Name: "coreos-4.19", Distro: "coreos", Branch: "4.19",
			Verdict: VerdictBuggy, FixedIn: "4.19.81",
			Source: srcNotes + "; " + srcK8s,
			Note:   "CoreOS Container Linux backported the fix into its 4.19.81 kernel, ahead of stable 4.19.84",
		},
		{
			Name: "stable-4.14", Distro: upstreamish, Branch: "4.14",
			Verdict: VerdictBuggy, FixedIn: "4.14.154",
			Source: srcFix + "; " + srcNotes + "; " + srcK8s,
			Note: "4.14 < 4.18, but 4.14.y stable took 512ac999d275 (it was sent to stable; de53fd7aedb1, which " +
				"says Fixes: 512ac999d275, was backported to 4.14.154). The first 4.14.y with 512ac999d275 is not in " +
				"the sources, so all 4.14.y below 4.14.154 are flagged (conservative)",
		},
		{
			Name: "stable-4.19", Distro: upstreamish, Branch: "4.19",
			Verdict: VerdictBuggy, FixedIn: "4.19.84",
			Source: srcFix + "; " + srcNotes + "; " + srcK8s,
			Note:   "4.19 has 512ac999d275 from the start; the fix was backported to 4.19.84",
		},
		{
			Name: "stable-5.3", Distro: upstreamish, Branch: "5.3",
			Verdict: VerdictBuggy, FixedIn: "5.3.9",
			Source: srcFix + "; " + srcNotes,
			Note:   "the fix was backported to 5.3.9",
		},
		{
			Name: "upstream-4.18-5.2", Distro: upstreamish, From: "4.18-rc1", Below: "5.4-rc1",
			Verdict: VerdictBuggy,
			Source:  srcBug + "; " + srcFix + "; " + srcNotes,
			Note: "branches from 4.18 below 5.4 that never got the fix (4.18.y, 5.0.y, 5.1.y, 5.2.y ended before " +
				"it reached stable); 4.19.y and 5.3.y are decided by their own rows above. 4.18 release candidates " +
				"are included conservatively",
		},
		{
			Name: "upstream-before-4.18", Distro: upstreamish, Below: "4.18-rc1",
			Verdict: VerdictNotAffected,
			Source:  srcBug + "; " + srcNotes + "; https://bugzilla.kernel.org/show_bug.cgi?id=198197",
			Note: "512ac999d275 is not in kernel.org kernels before 4.18 except the 4.14.y row above, so the main " +
				"bug is absent. The 3.16-4.17 lines have a milder form (bugzilla 198197) that coreguard notes but " +
				"does not flag",
		},
		{
			Name: "distro-unverified", Verdict: VerdictUnknown,
			Source: srcNotes,
			Note: "a distribution kernel below 5.4 that no row covers (RHEL 8, Debian, Ubuntu derivatives, SUSE, " +
				"Google COS, ...): vendors backported 512ac999d275 into kernels older than 4.18 (RHEL 7, Amazon " +
				"Linux 2, Ubuntu 4.15) and the fix into others, and Debian/Ubuntu names hide the stable patch level " +
				"(4.19.0-6-amd64), so the base version does not decide. Add a rule for your distribution",
		},
	}
}

// compiledRule is a Rule with its match fields parsed.
type compiledRule struct {
	Rule
	branches [][2]int
	distros  []string
	flavours []string
	from     *Release
	below    *Release
	fixedIn  *Release
}

// compile checks a rule and parses its fields; errors name the field.
func compile(r Rule) (compiledRule, error) {
	c := compiledRule{Rule: r}
	if strings.TrimSpace(r.Name) == "" {
		return c, fmt.Errorf("name: empty: every rule needs a name")
	}
	if strings.TrimSpace(r.Source) == "" {
		return c, fmt.Errorf("source: empty: say where the rule comes from (a URL or commit and a note)")
	}
	for _, b := range splitList(r.Branch) {
		mm, err := parseBranch(b)
		if err != nil {
			return c, fmt.Errorf("branch: %v", err)
		}
		c.branches = append(c.branches, mm)
	}
	for _, d := range splitList(r.Distro) {
		if !flavourName(d) && !distMarker(d) {
			return c, fmt.Errorf("distro: %q is not a distribution name like ubuntu, debian, el7, amzn2 or upstream", d)
		}
		c.distros = append(c.distros, d)
	}
	for _, f := range splitList(r.Flavour) {
		if !flavourName(f) {
			return c, fmt.Errorf("flavour: %q is not a flavour name like generic or cloud-amd64", f)
		}
		c.flavours = append(c.flavours, f)
	}
	for _, b := range []struct {
		field, value string
		dst          **Release
	}{{"from", r.From, &c.from}, {"below", r.Below, &c.below}, {"fixedIn", r.FixedIn, &c.fixedIn}} {
		if b.value == "" {
			continue
		}
		rel, err := Parse(b.value)
		if err != nil {
			return c, fmt.Errorf("%s: %v", b.field, err)
		}
		*b.dst = &rel
	}
	if c.from != nil && c.below != nil && Compare(*c.from, *c.below) >= 0 {
		return c, fmt.Errorf("from %q is not below below %q: the rule covers nothing", r.From, r.Below)
	}
	switch r.Verdict {
	case VerdictBuggy, VerdictFixed, VerdictNotAffected, VerdictUnknown:
	case "":
		return c, fmt.Errorf("verdict: empty: one of buggy, fixed, not-affected, unknown")
	default:
		return c, fmt.Errorf("verdict: %q is not one of buggy, fixed, not-affected, unknown", r.Verdict)
	}
	if r.FixedIn != "" && r.Verdict != VerdictBuggy {
		return c, fmt.Errorf("fixedIn: only meaningful with verdict buggy (releases below it are buggy, the rest fixed), not %q", r.Verdict)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseBranch reads "4.19", "4.19." or "4.19.x".
func parseBranch(b string) ([2]int, error) {
	s := strings.TrimSuffix(strings.TrimSuffix(b, "x"), ".")
	maj, min, ok := strings.Cut(s, ".")
	x, err1 := strconv.Atoi(maj)
	y, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil || x < 0 || y < 0 || len(maj) > maxDigits || len(min) > maxDigits {
		return [2]int{}, fmt.Errorf("%q is not MAJOR.MINOR like 4.19", b)
	}
	return [2]int{x, y}, nil
}

// matches reports whether the rule covers the release.
func (c compiledRule) matches(r Release) bool {
	if len(c.branches) > 0 && !anyOf(c.branches, func(b [2]int) bool { return b == [2]int{r.Major, r.Minor} }) {
		return false
	}
	if len(c.distros) > 0 && !anyOf(c.distros, func(d string) bool {
		return d == r.Distro || d == "upstream" && r.Distro == ""
	}) {
		return false
	}
	if len(c.flavours) > 0 && !anyOf(c.flavours, func(f string) bool { return f == r.Flavour }) {
		return false
	}
	if c.from != nil && Compare(r, *c.from) < 0 {
		return false
	}
	if c.below != nil && Compare(r, *c.below) >= 0 {
		return false
	}
	return true
}

func anyOf[T any](xs []T, f func(T) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}
