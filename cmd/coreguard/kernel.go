package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kernel"
)

func kernelCommand() command {
	return command{
		name:  "kernel",
		short: "Tell whether a kernel has the CFS quota throttling bug.",
		args:  "[RELEASE]",
		summary: "Tell whether a kernel release (uname -r; default: the running kernel) has the CFS bandwidth\n" +
			"throttling bug (512ac999d275, mainline 4.18, fixed by de53fd7aedb1 in 5.4, CVE-2019-19922), and\n" +
			"the table rule that decided. A release no rule can decide, or that does not parse, is unknown;\n" +
			"--unknown says what that means (default: not buggy, with a warning).\n" +
			"--rules prints the table with every rule's source. --config applies the config file's kernel:\n" +
			"section (rules added and removed), as coreguard run does.\n" +
			"Exit status: 0 for any verdict (buggy, not buggy or unknown: it is information), 1 when the\n" +
			"running kernel's release cannot be read, 2 for bad usage.",
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, `print JSON: {"release","parsed":{...},"verdict":"buggy|not-buggy|unknown","buggy","known","rule":{...},"reason"}`)
			unknown := choiceFlag(fs, "unknown", "", "what an unknown kernel means: not-buggy (with a warning) or buggy (default: the config's kernel.unknown, else not-buggy)", kernel.UnknownValues)
			cfgPath := fs.String("config", "", "coreguard's YAML configuration, to apply its kernel section (rules added and removed)")
			listRules := fs.Bool("rules", false, "print the rule table (in the order it is consulted) instead of a verdict")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) > 1 {
					return usageError{fmt.Sprintf("one release at most, got %d: %q", len(args), args)}
				}
				var policy kernel.Policy
				if *cfgPath != "" {
					cfg, err := config.Load(*cfgPath)
					if err != nil {
						return err
					}
					policy = cfg.Kernel
				}
				if *unknown != "" {
					policy.Unknown = *unknown
				}
				if err := policy.Validate(); err != nil {
					return usageError{fmt.Sprintf("--unknown: %q is not one of %s", *unknown, strings.Join(kernel.UnknownValues, ", "))}
				}
				if *listRules {
					if len(args) > 0 {
						return usageError{"--rules takes no release"}
					}
					rules, err := policy.Rules()
					if err != nil {
						return err
					}
					if *asJSON {
						return writeJSON(stdout, rules)
					}
					return printRules(stdout, rules)
				}
				release := ""
				if len(args) == 1 {
					release = args[0]
				} else {
					var err error
					if release, err = kernel.Running(); err != nil {
						return err
					}
				}
				v := policy.Decide(release)
				if *asJSON {
					return writeJSON(stdout, kernelReport(release, v))
				}
				if err := printVerdict(stdout, release, v); err != nil {
					return err
				}
				printWarnings(stderr, unknownWarning(v))
				return nil
			}
		},
	}
}

// kernelJSON is what `coreguard kernel --json` prints.
type kernelJSON struct {
	Release string          `json:"release"`
	Parsed  *kernel.Release `json:"parsed"` // null when the release does not parse
	Verdict string          `json:"verdict"`
	Buggy   bool            `json:"buggy"`
	Known   bool            `json:"known"`
	Rule    *kernel.Rule    `json:"rule"` // null when no rule decided
	Reason  string          `json:"reason"`
	Warning string          `json:"warning,omitempty"`
}

func kernelReport(release string, v kernel.Verdict) kernelJSON {
	out := kernelJSON{
		Release: release, Verdict: v.String(), Buggy: v.Buggy, Known: v.Known,
		Rule: v.Rule, Reason: v.Reason, Warning: unknownWarning(v),
	}
	if r, err := kernel.Parse(release); err == nil {
		out.Parsed = &r
	}
	return out
}

// unknownWarning explains what an unknown verdict was taken to mean.
func unknownWarning(v kernel.Verdict) string {
	if v.Known {
		return ""
	}
	means := "not buggy"
	if v.Buggy {
		means = "buggy"
	}
	return fmt.Sprintf("kernel unknown to the table, treated as %s (--unknown, or the configuration's kernel policy, decides; add a rule for it)", means)
}

// printVerdict prints one line, e.g.
//
//	4.15.0-66-generic: BUGGY — CFS quota throttles ... (rule "ubuntu-4.15": fixed in 4.15.0-67, source: ...)
func printVerdict(w io.Writer, release string, v kernel.Verdict) error {
	head := strings.ToUpper(strings.ReplaceAll(v.String(), "-", " "))
	if !v.Known {
		if v.Buggy {
			head += " (treated as buggy)"
		} else {
			head += " (treated as not buggy)"
		}
	}
	line := fmt.Sprintf("%s: %s — %s", release, head, v.Reason)
	if r := v.Rule; r != nil {
		details := []string{}
		if r.FixedIn != "" {
			details = append(details, "fixed in "+r.FixedIn)
		}
		details = append(details, "source: "+r.Source)
		line += fmt.Sprintf(" (rule %q: %s)", r.Name, strings.Join(details, ", "))
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// printRules prints the table, one rule a paragraph.
func printRules(w io.Writer, rules []kernel.Rule) error {
	for i, r := range rules {
		var match []string
		for _, f := range []struct{ k, v string }{
			{"distro", r.Distro}, {"branch", r.Branch}, {"flavour", r.Flavour}, {"from", r.From}, {"below", r.Below},
		} {
			if f.v != "" {
				match = append(match, f.k+" "+f.v)
			}
		}
		if len(match) == 0 {
			match = append(match, "any kernel")
		}
		verdict := r.Verdict
		if r.FixedIn != "" {
			verdict += ", fixed from " + r.FixedIn
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%d. %s: %s → %s\n   source: %s\n", i+1, r.Name, strings.Join(match, ", "), verdict, r.Source)
		if r.Note != "" {
			if _, err := fmt.Fprintf(w, "   why: %s\n", r.Note); err != nil {
				return err
			}
		}
	}
	return nil
}
