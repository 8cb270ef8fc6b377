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
		summary: "Tell whether a kernel has the CFS bandwidth throttling bug (512ac999d275, mainline 4.18, fixed by\n" +
			"de53fd7aedb1 in 5.4 and stable backports, CVE-2019-19922), and the table rule that decided.\n" +
			"The kernel is RELEASE (uname -r), or the one a procfs tree shows: --proc-root DIR (a saved /proc:\n" +
			"DIR/sys/kernel/osrelease, and DIR/version and DIR/version_signature where present), by default the\n" +
			"running kernel's /proc, read as coreguard run reads it. Where the distribution prints the upstream\n" +
			"version its kernel is built from (Debian's /proc/version, Ubuntu's /proc/version_signature), that\n" +
			"version decides through its stable branch's rule when the release cannot; the verdict names it.\n" +
			"A kernel no rule can decide, or whose release does not parse, is unknown; --unknown says what\n" +
			"that means (default: not buggy, with a warning).\n" +
			"--rules prints the table with every rule's source. --config applies the config file's kernel:\n" +
			"section (rules added and removed), as coreguard run does.\n" +
			"Exit status: 0 for any verdict (buggy, not buggy or unknown: it is information), 1 when the\n" +
			"kernel's release cannot be read from procfs, 2 for bad usage.",
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, `print JSON: {"release","parsed":{...},"upstream":{"version","from"},"basis","verdict":"buggy|not-buggy|unknown","buggy","known","rule":{...},"reason"}`)
			unknown := choiceFlag(fs, "unknown", "", "what an unknown kernel means: not-buggy (with a warning) or buggy (default: the config's kernel.unknown, else not-buggy)", kernel.UnknownValues)
			cfgPath := fs.String("config", "", "coreguard's YAML configuration, whose kernel: section adds and removes rules")
			listRules := fs.Bool("rules", false, "print the rule table (in the order it is consulted) instead of a verdict")
			procRoot := fs.String("proc-root", "", "judge the kernel a saved procfs tree shows (DIR/sys/kernel/osrelease, DIR/version, DIR/version_signature) instead of the running one's /proc")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) > 1 {
					return usageError{fmt.Sprintf("one release at most, got %d: %q", len(args), args)}
				}
				policy, err := kernelPolicy(*cfgPath, *unknown)
				if err != nil {
					return err
				}
				if *listRules {
					if len(args) > 0 || *procRoot != "" {
						return usageError{"--rules takes no release and no --proc-root"}
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
				k, err := kernelToJudge(args, *procRoot)
				if err != nil {
					return err
				}
				v := policy.DecideKernel(k)
				if *asJSON {
					return writeJSON(stdout, kernelReport(k, v))
				}
				if err := printVerdict(stdout, k, v); err != nil {
					return err
				}
				printWarnings(stderr, unknownWarning(v))
				return nil
			}
		},
	}
}

// kernelPolicy is the configuration's kernel policy, with --unknown.
func kernelPolicy(cfgPath, unknown string) (kernel.Policy, error) {
	var policy kernel.Policy
	if cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return policy, err
		}
		policy = cfg.Kernel
	}
	if unknown != "" {
		policy.Unknown = unknown
	}
	if err := policy.Validate(); err != nil {
		return policy, usageError{fmt.Sprintf("--unknown: %q is not one of %s", unknown, strings.Join(kernel.UnknownValues, ", "))}
	}
	return policy, nil
}

// kernelToJudge is the release given, else the kernel procfs shows: the
// tree --proc-root names, by default the running kernel's /proc.
func kernelToJudge(args []string, procRoot string) (kernel.Kernel, error) {
	if len(args) == 1 {
		if procRoot != "" {
			return kernel.Kernel{}, usageError{"give a RELEASE or --proc-root, not both"}
		}
		return kernel.Kernel{Release: args[0]}, nil
	}
	if procRoot == "" {
		procRoot = kernel.DefaultProcRoot
	}
	return kernel.ReadProc(procRoot)
}

// kernelJSON is what `coreguard kernel --json` prints.
type kernelJSON struct {
	Release  string           `json:"release"`
	Parsed   *kernel.Release  `json:"parsed"`             // null when the release does not parse
	Upstream *kernel.Upstream `json:"upstream,omitempty"` // the upstream version procfs names
	Ignored  []string         `json:"ignored,omitempty"`  // procfs readings set aside, and why
	Basis    string           `json:"basis"`              // "release", or the upstream version that decided
	Verdict  string           `json:"verdict"`
	Buggy    bool             `json:"buggy"`
	Known    bool             `json:"known"`
	Rule     *kernel.Rule     `json:"rule"` // null when no rule decided
	Reason   string           `json:"reason"`
	Warning  string           `json:"warning,omitempty"`
}

func kernelReport(k kernel.Kernel, v kernel.Verdict) kernelJSON {
	out := kernelJSON{
		Release: k.Release, Upstream: k.Upstream, Ignored: k.Ignored, Basis: v.Basis,
		Verdict: v.String(), Buggy: v.Buggy, Known: v.Known,
		Rule: v.Rule, Reason: v.Reason, Warning: unknownWarning(v),
	}
	if r, err := kernel.Parse(k.Release); err == nil {
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
//	4.15.0-66-generic: BUGGY — CFS quota throttles ... (rule "ubuntu-4.15": fixed in 4.15.0-69, source: ...)
//	4.19.0-6-amd64: BUGGY — upstream 4.19.67 from /proc/version: CFS quota throttles ... (rule "stable-4.19": ...)
//
// then a note for each procfs reading set aside, and the warning of an
// unknown verdict.
func printVerdict(w io.Writer, k kernel.Kernel, v kernel.Verdict) error {
	release := k.Release
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
	if _, err := fmt.Fprintln(w, line); err != nil {
		return err
	}
	for _, note := range k.Ignored {
		if _, err := fmt.Fprintf(w, "note: %s: set aside\n", note); err != nil {
			return err
		}
	}
	return nil
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
