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

// Where the facts come from, shared by the default rows. Every Source is a
// list of URLs separated by "; ".
const (
	srcFix     = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=de53fd7aedb100f03e5d2231cfce0e4993282425"
	srcBug     = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=512ac999d2755d2b7109e996a76b6fb8b888631d"
	srcK8s     = "https://github.com/kubernetes/kubernetes/issues/67577"
	srcIndeed  = "https://engineering.indeedblog.com/blog/2019/12/cpu-throttling-regression-fix/"
	srcUbuntu  = "https://ubuntu.com/security/CVE-2019-19922"
	srcUCT     = "https://git.launchpad.net/ubuntu-cve-tracker/tree/retired/CVE-2019-19922"
	srcUSN5_0  = "https://ubuntu.com/security/notices/USN-4226-1"
	srcRHSA8   = "https://access.redhat.com/errata/RHSA-2020:1769"
	srcRedHat  = "https://access.redhat.com/security/cve/CVE-2019-19922"
	srcAL2     = "https://github.com/awslabs/amazon-eks-ami/issues/372"
	srcAL2Bug  = "https://github.com/aws/containers-roadmap/issues/175"
	srcCoreOS  = "https://github.com/coreos/bugs/issues/2623"
	srcCoreFix = "https://github.com/coreos/coreos-overlay/pull/3796"
	srcDLA2068 = "https://lists.debian.org/debian-lts-announce/2020/01/msg00013.html"
	src316Rev  = "https://lore.kernel.org/stable/lsq.1578512578.981696343@decadent.org.uk/"
	src414     = "https://cdn.kernel.org/pub/linux/kernel/v4.x/ChangeLog-4.14.154"
	src414Fix  = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git/commit/?id=3dec71e388f95382d83ebb5589f0016eac4a6d2b"
	src419     = "https://cdn.kernel.org/pub/linux/kernel/v4.x/ChangeLog-4.19.84"
	src419Fix  = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git/commit/?id=502bd151448c2c76a927b26783e5538875c534ff"
	src53      = "https://cdn.kernel.org/pub/linux/kernel/v5.x/ChangeLog-5.3.9"
	src53Fix   = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git/commit/?id=2bd11026299bdcb6d4b751d584913433b6d9b0b6"
	srcBz      = "https://bugzilla.kernel.org/show_bug.cgi?id=198197"
	srcCVE     = "https://www.cve.org/CVERecord?id=CVE-2019-19922"
	srcDebian  = "https://www.debian.org/doc/manuals/debian-kernel-handbook/ch-versions.html"
	srcSUSE    = "https://www.suse.com/security/cve/CVE-2019-19922/"
	// Kernels that show their real stable patch level and follow kernel.org.
	upstreamish = "upstream,coreos,flatcar"
)

// sources joins URLs into a Source.
func sources(urls ...string) string { return strings.Join(urls, "; ") }

// ubuntuFix is the first fixed ABI of one Ubuntu kernel flavour on one
// branch, from the Ubuntu CVE tracker's entry for CVE-2019-19922 (the
// "released" version of each linux-FLAVOUR package; uname -r shows its ABI,
// the number before the upload: 4.15.0-1054.56 is 4.15.0-1054-aws).
type ubuntuFix struct{ branch, flavour, fixedIn, packages string }

// ubuntuFlavourFixes are the derivative kernels (ABIs from 1000) the
// tracker lists as fixed. Main kernels (generic, lowlatency, ABIs below
// 1000) have their own rows.
var ubuntuFlavourFixes = []ubuntuFix{
	{"4.15", "aws", "1054", "linux-aws 4.15.0-1054.56 (bionic; linux-aws-hwe on xenial)"},
	{"4.15", "azure", "1063", "linux-azure 4.15.0-1063.68 (xenial, trusty ESM)"},
	{"4.15", "gcp", "1049", "linux-gcp 4.15.0-1049.52 (xenial)"},
	{"4.15", "gke", "1048", "linux-gke-4.15 4.15.0-1048.51 (bionic)"},
	{"4.15", "kvm", "1050", "linux-kvm 4.15.0-1050.50 (bionic)"},
	{"4.15", "oracle", "1029", "linux-oracle 4.15.0-1029.32 (bionic, xenial)"},
	{"4.15", "oem", "1063", "linux-oem 4.15.0-1063.72 (bionic)"},
	{"4.15", "raspi2", "1050", "linux-raspi2 4.15.0-1050.54 (bionic)"},
	{"4.15", "snapdragon", "1067", "linux-snapdragon 4.15.0-1067.74 (bionic)"},
	{"5.0", "aws", "1023", "linux-aws 5.0.0-1023.26 (disco; linux-aws-5.0 on bionic)"},
	{"5.0", "azure", "1027", "linux-azure 5.0.0-1027.29 (disco, bionic)"},
	{"5.0", "gcp", "1028", "linux-gcp 5.0.0-1028.29 (disco, bionic)"},
	{"5.0", "gke", "1027", "linux-gke-5.0 5.0.0-1027.28 (bionic)"},
	{"5.0", "kvm", "1024", "linux-kvm 5.0.0-1024.26 (disco)"},
	{"5.0", "oracle", "1009", "linux-oracle 5.0.0-1009.14 (disco; linux-oracle-5.0 on bionic)"},
	{"5.0", "oem-osp1", "1033", "linux-oem-osp1 5.0.0-1033.38 (bionic)"},
	{"5.0", "raspi2", "1024", "linux-raspi2 5.0.0-1024.25 (disco)"},
	{"5.3", "aws", "1008", "linux-aws 5.3.0-1008.9 (eoan)"},
	{"5.3", "azure", "1008", "linux-azure 5.3.0-1008.9 (eoan; linux-azure-5.3 on bionic)"},
	{"5.3", "gcp", "1009", "linux-gcp 5.3.0-1009.10 (eoan; linux-gcp-5.3 on bionic)"},
	{"5.3", "kvm", "1008", "linux-kvm 5.3.0-1008.9 (eoan)"},
	{"5.3", "oracle", "1007", "linux-oracle 5.3.0-1007.8 (eoan; linux-oracle-5.3 on bionic from 1011, already fixed)"},
	{"5.3", "raspi2", "1014", "linux-raspi2 5.3.0-1014.16 (eoan; linux-raspi2-5.3 on bionic from 1017, already fixed)"},
}

// ubuntuFlavourRules turns ubuntuFlavourFixes into rules named
// ubuntu-BRANCH-FLAVOUR.
func ubuntuFlavourRules(branch string) []Rule {
	var out []Rule
	for _, f := range ubuntuFlavourFixes {
		if f.branch != branch {
			continue
		}
		out = append(out, Rule{
			Name: "ubuntu-" + f.branch + "-" + f.flavour, Distro: "ubuntu", Branch: f.branch, Flavour: f.flavour,
			Verdict: VerdictBuggy, FixedIn: f.branch + ".0-" + f.fixedIn,
			Source: sources(srcUbuntu, srcUCT),
			Note: "the Ubuntu CVE tracker marks " + f.packages + " released with the fix; earlier ABIs of the " +
				"flavour on this branch are flagged",
		})
	}
	return out
}

// DefaultRules returns the built-in table, in the order it is consulted.
// Every row names its source (URLs); Note gives the reasoning.
func DefaultRules() []Rule {
	var rules []Rule
	rules = append(rules,
		Rule{
			Name: "mainline-5.4", From: "5.4-rc1", Verdict: VerdictFixed,
			Source: sources(srcFix, srcCVE),
			Note: "de53fd7aedb1 was merged for 5.4 (in 5.4-rc1); every kernel based on 5.4 or later has it, " +
				"whatever its distribution",
		},
		Rule{
			Name: "ubuntu-4.4", Distro: "ubuntu", Branch: "4.4", Verdict: VerdictNotAffected,
			Source: sources(srcUbuntu, srcUCT),
			Note: "the Ubuntu CVE tracker marks every 4.4 kernel not affected: xenial's linux, linux-aws, linux-kvm, " +
				"linux-snapdragon and trusty's linux-lts-xenial",
		},
		Rule{
			Name: "ubuntu-4.15", Distro: "ubuntu", Branch: "4.15", Below: "4.15.0-1000",
			Verdict: VerdictBuggy, FixedIn: "4.15.0-69",
			Source: sources(srcUbuntu, srcUCT, srcK8s),
			Note: "Ubuntu 18.04 (bionic) and the 16.04 HWE kernel carry 512ac999d275 although 4.15 < 4.18: the tracker " +
				"names it as the breaking commit and marks linux 4.15.0-69.78 (linux-hwe 4.15.0-69.78~16.04.1) " +
				"released with the fix. Main kernel ABIs only (below 1000: generic, lowlatency, ...); the cloud and " +
				"OEM derivatives number theirs from 1000 and have rows of their own",
		},
	)
	rules = append(rules, ubuntuFlavourRules("4.15")...)
	rules = append(rules,
		Rule{
			Name: "ubuntu-5.0", Distro: "ubuntu", Branch: "5.0", Below: "5.0.0-1000",
			Verdict: VerdictBuggy, FixedIn: "5.0.0-38",
			Source: sources(srcUbuntu, srcUCT, srcUSN5_0),
			Note: "Ubuntu 19.04 (disco) and the 18.04 HWE 5.0 kernel: 5.0.y ended upstream without the fix, Ubuntu " +
				"backported it; the tracker marks linux 5.0.0-38.41 released with it (USN-4226-1). Main kernel ABIs only",
		},
	)
	rules = append(rules, ubuntuFlavourRules("5.0")...)
	rules = append(rules,
		Rule{
			Name: "ubuntu-5.3", Distro: "ubuntu", Branch: "5.3", Below: "5.3.0-1000",
			Verdict: VerdictBuggy, FixedIn: "5.3.0-24",
			Source: sources(srcUbuntu, srcUCT),
			Note: "Ubuntu 19.10 (eoan) and the 18.04 HWE kernel: the tracker marks linux 5.3.0-24.26 released with " +
				"the fix (linux-hwe from its first 5.3 upload, 5.3.0-26.28~18.04.1). Main kernel ABIs only",
		},
	)
	rules = append(rules, ubuntuFlavourRules("5.3")...)
	rules = append(rules,
		Rule{
			Name: "ubuntu-5.3-gke", Distro: "ubuntu", Branch: "5.3", Flavour: "gke", Verdict: VerdictFixed,
			Source: sources(srcUbuntu, srcUCT),
			Note:   "the tracker marks linux-gke-5.3 not affected from its first upload (5.3.0-1011.12~18.04.1): it has the fix",
		},
		Rule{
			Name: "rhel-7", Distro: "el7", Branch: "3.10",
			Verdict: VerdictBuggy, FixedIn: "3.10.0-1062.8.1.el7",
			Source: sources(srcK8s, srcIndeed),
			Note: "RHEL/CentOS 7 backported 512ac999d275 into 3.10 and the fix in 3.10.0-1062.8.1.el7. The first " +
				"affected 7.x build is not in the sources, so every el7 build below the fix is flagged (conservative)",
		},
		Rule{
			Name: "rhel-8", Distro: "el8", Branch: "4.18",
			Verdict: VerdictBuggy, FixedIn: "4.18.0-193.el8",
			Source: sources(srcRHSA8, srcRedHat),
			Note: "RHEL 8 is based on 4.18, which has 512ac999d275; RHSA-2020:1769 (RHEL 8.2, kernel-4.18.0-193.el8) " +
				"fixes CVE-2019-19922. CentOS 8 rebuilt it as CESA-2020:1769; Rocky and Alma Linux 8 start later " +
				"(from 4.18.0-240). Builds below 193 are flagged, including 8.1 z-stream builds (4.18.0-147.N.el8_1) " +
				"whose own backport, if any, is not documented here",
		},
		Rule{
			Name: "amzn2-4.14", Distro: "amzn2", Branch: "4.14",
			Verdict: VerdictBuggy, FixedIn: "4.14.154-128.181.amzn2",
			Source: sources(srcAL2, srcAL2Bug, src414),
			Note: "Amazon Linux 2's 4.14 kernel follows 4.14.y stable: it took 512ac999d275 with 4.14.95 and the fix " +
				"with 4.14.154, released as 4.14.154-128.181.amzn2; builds below it are flagged",
		},
		Rule{
			Name: "coreos-4.19", Distro: "coreos", Branch: "4.19",
			Verdict: VerdictBuggy, FixedIn: "4.19.81",
			Source: sources(srcCoreOS, srcCoreFix),
			Note:   "CoreOS Container Linux backported the fix into its 4.19.81 kernel, ahead of stable 4.19.84",
		},
		Rule{
			Name: "stable-3.16", Distro: "upstream", Branch: "3.16", From: "3.16.61", Below: "3.16.81",
			Verdict: VerdictBuggy,
			Source:  sources(srcDLA2068, src316Rev),
			Note: "3.16.y took 512ac999d275 in 3.16.61 and reverted it in 3.16.81 (the fix itself was unsuitable " +
				"for that branch); Debian 8 shipped the revert in DLA-2068-1",
		},
		Rule{
			Name: "stable-4.14", Distro: upstreamish, Branch: "4.14",
			Verdict: VerdictBuggy, FixedIn: "4.14.154",
			Source: sources(src414, src414Fix, srcAL2Bug),
			Note: "4.14 < 4.18, but 4.14.y stable took 512ac999d275 (with 4.14.95, says AWS support in the issue cited) " +
				"and de53fd7aedb1 in 4.14.154. All 4.14.y below 4.14.154 are flagged (conservative)",
		},
		Rule{
			Name: "stable-4.19", Distro: upstreamish, Branch: "4.19",
			Verdict: VerdictBuggy, FixedIn: "4.19.84",
			Source: sources(src419, src419Fix),
			Note: "4.19 has 512ac999d275 from the start; the fix was backported to 4.19.84. Flatcar follows 4.19.y; " +
				"whether it carried CoreOS's earlier backport is not documented, so its builds below 4.19.84 are flagged",
		},
		Rule{
			Name: "stable-5.3", Distro: upstreamish, Branch: "5.3",
			Verdict: VerdictBuggy, FixedIn: "5.3.9",
			Source: sources(src53, src53Fix),
			Note:   "the fix was backported to 5.3.9",
		},
		Rule{
			Name: "upstream-4.18-5.2", Distro: upstreamish, From: "4.18-rc1", Below: "5.4-rc1",
			Verdict: VerdictBuggy,
			Source:  sources(srcBug, srcFix),
			Note: "branches from 4.18 below 5.4 that never got the fix (4.18.y, 5.0.y, 5.1.y, 5.2.y ended before " +
				"it reached stable); 4.19.y and 5.3.y are decided by their own rows above. 4.18 release candidates " +
				"are included conservatively",
		},
		Rule{
			Name: "upstream-before-4.18", Distro: upstreamish, Below: "4.18-rc1",
			Verdict: VerdictNotAffected,
			Source:  sources(srcBug, srcBz, srcUCT),
			Note: "512ac999d275 came with 4.18; of the older stable series the rows above cover those that took it " +
				"(3.16.61 to 3.16.80, 4.14.y); Ubuntu's 4.4 kernels, built on 4.4.y, are not affected. The 3.16 to " +
				"4.17 lines have a milder form (bugzilla 198197) that coreguard notes but does not flag",
		},
		Rule{
			Name: "distro-unverified", Verdict: VerdictUnknown,
			Source: sources(srcCVE, srcDebian, srcUbuntu, srcSUSE),
			Note: "a distribution kernel below 5.4 that no row covers (Debian without its /proc/version, SUSE, " +
				"Ubuntu flavours the tracker does not list, ...): vendors backported 512ac999d275 into kernels older " +
				"than 4.18 (RHEL 7, Amazon Linux 2, Ubuntu 4.15) and the fix into others, and Debian's release names " +
				"its ABI, not its stable patch level (4.19.0-6-amd64), so the base version does not decide. Add a " +
				"rule for your distribution",
		},
	)
	return rules
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
