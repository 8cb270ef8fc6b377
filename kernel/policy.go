package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy is the configuration's say over the table: rules to add (consulted
// before the defaults, so they override them), default rules to remove by
// name, and what an unknown kernel means. The zero Policy is the default
// table with unknown meaning not buggy.
type Policy struct {
	// Add: rules consulted first, in order, before the remaining defaults.
	Add []Rule `json:"add,omitempty"`
	// Remove: names of default rules to drop (see DefaultRules).
	Remove []string `json:"remove,omitempty"`
	// Unknown: how to treat a kernel the table cannot decide or that does
	// not parse: "not-buggy" (default; with a warning) or "buggy".
	Unknown string `json:"unknown,omitempty"`
}

// What an unknown kernel means (Policy.Unknown).
const (
	UnknownNotBuggy = "not-buggy"
	UnknownBuggy    = "buggy"
)

// UnknownValues are Policy.Unknown's values, the default first.
var UnknownValues = []string{UnknownNotBuggy, UnknownBuggy}

// Verdict is the policy's answer for one release.
type Verdict struct {
	// Buggy: the kernel has the throttling bug, or is unknown and the
	// policy treats unknown as buggy.
	Buggy bool `json:"buggy"`
	// Known is false when no rule could decide (or the release did not
	// parse): the verdict is "unknown" and Buggy comes from Policy.Unknown.
	Known bool `json:"known"`
	// Rule is the row that decided; nil when the release did not parse.
	Rule *Rule `json:"rule,omitempty"`
	// Reason explains the verdict in one sentence.
	Reason string `json:"reason"`
	// Basis says what the rule was matched against: BasisRelease, or an
	// upstream version read from procfs ("upstream 4.19.67 from
	// /proc/version").
	Basis string `json:"basis"`
}

// BasisRelease is the Basis of a verdict decided by the release itself.
const BasisRelease = "release"

// String is "buggy", "not-buggy" or "unknown".
func (v Verdict) String() string {
	switch {
	case !v.Known:
		return "unknown"
	case v.Buggy:
		return "buggy"
	}
	return "not-buggy"
}

// Validate checks the policy and names every bad field and value:
// add[i].field for added rules, remove[i] for names no default rule has,
// unknown for anything but not-buggy and buggy.
func (p Policy) Validate() error {
	_, err := p.rules()
	return err
}

// Rules returns the table the policy consults, in order: the added rules,
// then the default rules not removed.
func (p Policy) Rules() ([]Rule, error) {
	cs, err := p.rules()
	if err != nil {
		return nil, err
	}
	out := make([]Rule, len(cs))
	for i, c := range cs {
		out[i] = c.Rule
	}
	return out, nil
}

func (p Policy) rules() ([]compiledRule, error) {
	var errs []error
	if p.Unknown != "" && !slices.Contains(UnknownValues, p.Unknown) {
		errs = append(errs, fmt.Errorf("unknown: %q is not one of %s", p.Unknown, strings.Join(UnknownValues, ", ")))
	}
	defaults := DefaultRules()
	var names []string
	for _, r := range defaults {
		names = append(names, r.Name)
	}
	removed := map[string]bool{}
	for i, name := range p.Remove {
		if !slices.Contains(names, name) {
			errs = append(errs, fmt.Errorf("remove[%d]: no default rule is named %q (they are %s)", i, name, strings.Join(names, ", ")))
		}
		removed[name] = true
	}
	var out []compiledRule
	seen := map[string]int{}
	for i, r := range p.Add {
		c, err := compile(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("add[%d]%s: %w", i, nameTag(r.Name), err))
			continue
		}
		if j, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("add[%d]: name %q is already used by add[%d]", i, r.Name, j))
			continue
		}
		if slices.Contains(names, r.Name) && !removed[r.Name] {
			errs = append(errs, fmt.Errorf("add[%d]: name %q is a default rule's: remove it too to replace it, or choose another name", i, r.Name))
			continue
		}
		seen[r.Name] = i
		out = append(out, c)
	}
	for _, r := range defaults {
		if removed[r.Name] {
			continue
		}
		c, err := compile(r)
		if err != nil {
			panic(fmt.Sprintf("kernel: default rule %q: %v", r.Name, err)) // a bug in the table
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func nameTag(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (rule %q)", name)
}

// Decide parses the release and returns the verdict of the first rule that
// covers it. A release that does not parse, one no rule covers, and one
// whose rule says unknown are unknown: Known is false and Buggy follows
// p.Unknown. An invalid policy decides nothing (unknown, with the error as
// the reason); call Validate first.
func (p Policy) Decide(release string) Verdict {
	return p.DecideKernel(Kernel{Release: release})
}

// DecideRelease is Decide for a parsed release.
func (p Policy) DecideRelease(r Release) Verdict {
	rules, err := p.rules()
	if err != nil {
		return p.unknown(nil, fmt.Sprintf("invalid kernel policy: %v", err))
	}
	v, _ := p.decide(rules, r, false)
	return v
}

// DecideKernel decides for a kernel read from procfs (ReadProc). The rules
// are matched against its release first. When they cannot decide it and
// the distribution prints the upstream version the kernel is built from,
// that version decides through the rule for its stable branch (see
// decidesUpstream); the verdict's Basis then names it. When the release
// decides, the upstream version is only compared with it in the reason.
func (p Policy) DecideKernel(k Kernel) Verdict {
	r, err := Parse(k.Release)
	if err != nil {
		return p.unknown(nil, fmt.Sprintf("cannot parse the release: %v", err))
	}
	rules, err := p.rules()
	if err != nil {
		return p.unknown(nil, fmt.Sprintf("invalid kernel policy: %v", err))
	}
	v, _ := p.decide(rules, r, k.Upstream != nil)
	if k.Upstream == nil {
		return v
	}
	return p.weighUpstream(rules, v, *k.Upstream)
}

// weighUpstream lets the upstream version procfs names decide a verdict
// the release left unknown, or compares it with one the release decided.
func (p Policy) weighUpstream(rules []compiledRule, v Verdict, u Upstream) Verdict {
	up, err := Parse(u.Version)
	if err != nil || !up.kernelOrg() {
		v.Reason += fmt.Sprintf("; %s is not a kernel.org version", u)
		return v
	}
	uv, c := p.decide(rules, up, false)
	switch {
	case !v.Known && decidesUpstream(c):
		uv.Basis = u.String()
		uv.Reason = fmt.Sprintf("%s: %s", u, uv.Reason)
		return uv
	case !v.Known:
		v.Reason += fmt.Sprintf("; %s does not decide either: %s", u, whyNotUpstream(c))
	case decidesUpstream(c) && uv.Buggy == v.Buggy:
		v.Reason += fmt.Sprintf("; %s agrees (rule %q)", u, c.Name)
	case decidesUpstream(c):
		v.Reason += fmt.Sprintf("; %s would say %s (rule %q), but the distribution's own rule decides", u, uv, c.Name)
	}
	return v
}

// decidesUpstream reports whether a rule that covers an upstream version a
// distribution prints may decide the distribution's kernel: one that says
// fixed (everything from 5.4 has de53fd7aedb1), or one about a single
// stable branch, whose own history (when 512ac999d275 came, when the fix
// did) the version places the kernel in. Rules over ranges of branches do
// not: distributions backported 512ac999d275 into branches that predate it
// (Ubuntu 4.15, RHEL 7) and the fix into branches whose stable series
// ended without it (Ubuntu 5.0, USN-4226-1).
func decidesUpstream(c *compiledRule) bool {
	return c != nil && (c.Verdict == VerdictFixed || c.Verdict == VerdictBuggy && len(c.branches) > 0)
}

// whyNotUpstream explains why an upstream version did not decide.
func whyNotUpstream(c *compiledRule) string {
	if c == nil {
		return "no rule covers it"
	}
	if c.Verdict == VerdictUnknown {
		return fmt.Sprintf("its rule %q says unknown", c.Name)
	}
	return fmt.Sprintf("its rule %q covers a range of branches (%s), and distributions backported 512ac999d275 "+
		"and its fix across such branches, so the range does not tell a distribution kernel's state", c.Name, c.Verdict)
}

// decide returns the verdict of the first rule that covers r, and that
// rule (nil when none does). upstreamRead: procfs named the upstream
// version, so an unknown verdict need not say where to find it.
func (p Policy) decide(rules []compiledRule, r Release, upstreamRead bool) (Verdict, *compiledRule) {
	for i := range rules {
		c := &rules[i]
		if c.matches(r) {
			return p.verdictOf(c, r, upstreamRead), c
		}
	}
	return p.unknown(nil, fmt.Sprintf("no rule covers %s%s", describe(r), unknownHint(r, upstreamRead))), nil
}

// verdictOf is the verdict rule c gives the release it covers.
func (p Policy) verdictOf(c *compiledRule, r Release, upstreamRead bool) Verdict {
	rule := c.Rule
	v := Verdict{Known: true, Rule: &rule, Basis: BasisRelease}
	switch {
	case c.Verdict == VerdictBuggy && c.fixedIn != nil && Compare(r, *c.fixedIn) >= 0:
		v.Reason = fmt.Sprintf("%s is at or above %s, where this branch got the fix for CFS quota throttling far below the limit", r, c.FixedIn)
	case c.Verdict == VerdictBuggy:
		v.Buggy = true
		v.Reason = "CFS quota throttles far below the limit: per-CPU slice expiry (512ac999d275) without its fix (de53fd7aedb1)"
	case c.Verdict == VerdictFixed:
		v.Reason = "has the fix for CFS quota throttling far below the limit (de53fd7aedb1)"
	case c.Verdict == VerdictNotAffected:
		v.Reason = "predates the per-CPU slice expiry of 512ac999d275, so CFS quota does not throttle far below the limit (a milder, older form is not flagged)"
	default:
		return p.unknown(&rule, fmt.Sprintf("no verified rule for %s: whether it has the CFS throttling bug is unknown%s", describe(r), unknownHint(r, upstreamRead)))
	}
	return v
}

func (p Policy) unknown(rule *Rule, reason string) Verdict {
	return Verdict{Known: false, Buggy: p.Unknown == UnknownBuggy, Rule: rule, Reason: reason, Basis: BasisRelease}
}

// describe names a release for reasons: "debian 4.19.0 kernel 4.19.0-6-amd64".
func describe(r Release) string {
	if r.Distro == "" {
		return fmt.Sprintf("upstream kernel %s", r)
	}
	return fmt.Sprintf("%s kernel %s (based on %s)", r.Distro, r, r.Mainline())
}

// unknownHint says, for a release no rule decides, why its distribution's
// kernels are not decided and where the answer would come from.
func unknownHint(r Release, upstreamRead bool) string {
	switch {
	case r.Distro == "debian" && upstreamRead:
		return ""
	case r.Distro == "debian":
		return fmt.Sprintf("; Debian's release names its ABI (%s), not the stable patch level it is built from; "+
			"/proc/version names that (e.g. \"Debian 4.19.67-2+deb10u2\"), which coreguard reads on the node "+
			"or from --proc-root", strings.TrimSuffix(r.String(), "-"+r.Flavour))
	case r.Distro == "ubuntu":
		return "; the Ubuntu CVE tracker gives no fixed version for this branch and flavour " +
			"(https://ubuntu.com/security/CVE-2019-19922)"
	case r.Distro == "other" && suseFlavour(r.Flavour):
		return "; SUSE kernels have no rule: SUSE's status for CVE-2019-19922 " +
			"(https://www.suse.com/security/cve/CVE-2019-19922/) is not recorded here"
	case r.Distro == "amzn2":
		return "; only Amazon Linux 2's 4.14 kernel has a rule"
	case strings.HasPrefix(r.Distro, "el"):
		return "; only the RHEL 7 (3.10) and RHEL 8 (4.18) kernels have rules"
	case r.Distro != "":
		return "; vendors backport 512ac999d275 and its fix across branches, so the base version does not decide"
	}
	return ""
}

// suseFlavour: the flavours of SUSE's kernel packages (kernel-default,
// kernel-azure, ...), which name releases like 4.12.14-122.37-default.
func suseFlavour(f string) bool {
	switch f {
	case "default", "azure", "kvmsmall", "rt", "preempt", "64kb", "zfcpdump", "vanilla", "debug":
		return true
	}
	return false
}
