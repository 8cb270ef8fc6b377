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
}

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
	r, err := Parse(release)
	if err != nil {
		return p.unknown(nil, fmt.Sprintf("cannot parse the release: %v", err))
	}
	return p.DecideRelease(r)
}

// DecideRelease is Decide for a parsed release.
func (p Policy) DecideRelease(r Release) Verdict {
	rules, err := p.rules()
	if err != nil {
		return p.unknown(nil, fmt.Sprintf("invalid kernel policy: %v", err))
	}
	for _, c := range rules {
		if !c.matches(r) {
			continue
		}
		rule := c.Rule
		v := Verdict{Known: true, Rule: &rule}
		switch {
		case c.Verdict == VerdictBuggy && c.fixedIn != nil && Compare(r, *c.fixedIn) >= 0:
			v.Reason = fmt.Sprintf("%s is at or above %s, where this branch got the fix for CFS quota throttling far below the limit (de53fd7aedb1)", r, c.FixedIn)
		case c.Verdict == VerdictBuggy:
			v.Buggy = true
			v.Reason = "CFS quota throttles far below the limit: per-CPU slice expiry (512ac999d275) without its fix (de53fd7aedb1)"
		case c.Verdict == VerdictFixed:
			v.Reason = "has the fix for CFS quota throttling far below the limit (de53fd7aedb1)"
		case c.Verdict == VerdictNotAffected:
			v.Reason = "predates the per-CPU slice expiry of 512ac999d275, so CFS quota does not throttle far below the limit (a milder, older form is not flagged)"
		default:
			u := p.unknown(&rule, fmt.Sprintf("no verified rule for %s: whether it has the CFS throttling bug is unknown", describe(r)))
			return u
		}
		return v
	}
	return p.unknown(nil, fmt.Sprintf("no rule covers %s", describe(r)))
}

func (p Policy) unknown(rule *Rule, reason string) Verdict {
	return Verdict{Known: false, Buggy: p.Unknown == UnknownBuggy, Rule: rule, Reason: reason}
}

// describe names a release for reasons: "debian 4.19.0 kernel 4.19.0-6-amd64".
func describe(r Release) string {
	if r.Distro == "" {
		return fmt.Sprintf("upstream kernel %s", r)
	}
	return fmt.Sprintf("%s kernel %s (based on %s)", r.Distro, r, r.Mainline())
}
