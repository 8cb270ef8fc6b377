// Command coreguard protects Kubernetes nodes at container creation: whole-
// core CPU pinning, CFS quota relief and runtime-level admission, as an NRI
// plugin for containerd and CRI-O. This file only maps subcommands and flags
// to calls into the project's packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/coreguard/coreguard/plugin"
)

// Exit statuses shared by every subcommand.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and the answer is "no" (or it failed)
	exitUsage  = 2 // bad flags or arguments
)

// command is one subcommand: its flags are declared by setup, which returns
// the function that runs it with the remaining arguments.
type command struct {
	name    string
	args    string // argument synopsis after the flags
	short   string // one line for 'coreguard help'
	summary string // the whole description for 'coreguard CMD -h'

	setup func(fs *flag.FlagSet) runFunc

	// completeArgs says what shell completion offers for the positional
	// arguments (nothing when it is zero).
	completeArgs completions
	// internal commands are run by other programs (the OCI runtime), not
	// people: help lists them, completion does not offer them.
	internal bool
}

// runFunc runs a command with its positional arguments. Its answer goes to
// stdout and warnings to stderr, so that stdout stays parseable.
type runFunc func(args []string, stdout, stderr io.Writer) error

func commands() []command {
	return []command{
		runCommand(),
		topologyCommand(),
		planCommand(),
		kernelCommand(),
		configCommand(),
		throttleCommand(),
		versionCommand(),
		completionCommand(),
		enableNRICommand(),
		hookCommand(),
	}
}

// usageError marks errors that should exit with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errFailed marks a command whose answer is "no" after it printed it
// (e.g. a plan with an unmet request): exit 1 without another message.
var errFailed = errors.New("failed")

// printWarnings writes each warning on a line of its own to w, the command's
// stderr: stdout holds only the answer, for scripts to parse.
func printWarnings(w io.Writer, warnings ...string) {
	for _, warning := range warnings {
		if warning != "" {
			fmt.Fprintf(w, "warning: %s\n", warning)
		}
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 && plugin.Preinstalled() {
		// The runtime starts a pre-installed plugin with no arguments, only
		// NRI_PLUGIN_* in its environment: that is the plugin.
		args = []string{"run"}
	}
	if len(args) == 0 {
		printHelp(stderr)
		return exitUsage
	}
	if isVersionFlag(args[0]) {
		args = append([]string{"version"}, args[1:]...)
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := lookup(args[1]); ok {
				fs, _ := newFlagSet(c, stdout)
				fs.Usage()
				return exitOK
			}
			fmt.Fprintf(stderr, "coreguard: unknown command %q\n\n", args[1])
			printHelp(stderr)
			return exitUsage
		}
		printHelp(stdout)
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "coreguard: unknown command %q\n\n", name)
		printHelp(stderr)
		return exitUsage
	}
	fs, runFn := newFlagSet(c, stderr)
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	err = runFn(positional, stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "coreguard %s: %v\n", c.name, err)
		fmt.Fprintf(stderr, "usage: coreguard %s [flags] %s (see 'coreguard %s -h')\n", c.name, c.args, c.name)
		return exitUsage
	case errors.Is(err, errFailed):
		return exitFailed
	default:
		fmt.Fprintf(stderr, "coreguard %s: %v\n", c.name, err)
		return exitFailed
	}
}

// isVersionFlag: 'coreguard --version' is 'coreguard version', as people
// expect of a command; -version too, since every flag of coreguard's takes
// one dash or two. Not -v, which many tools read as verbose.
func isVersionFlag(arg string) bool {
	return arg == "--version" || arg == "-version"
}

// parseInterspersed parses flags anywhere among the arguments, as people
// type them ("plan 5 4 --odd-cpus isolate"); "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlagSet makes the flag set of a command with a usage text that lists
// every flag with its default.
func newFlagSet(c command, out io.Writer) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet("coreguard "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	runFn := c.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: coreguard %s [flags] %s\n\n%s\n", c.name, c.args, c.summary)
		if hasFlags(fs) {
			fmt.Fprintf(out, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs, runFn
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func printHelp(w io.Writer) {
	fmt.Fprintf(w, "coreguard: whole-core CPU pinning, CFS quota relief and runtime admission for Kubernetes nodes (NRI plugin)\n\n")
	fmt.Fprintf(w, "usage: coreguard COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "help", "show this text, or 'coreguard help COMMAND' for a command's flags")
	fmt.Fprintf(w, "\nEvery command explains its flags with 'coreguard COMMAND -h'.\n")
	fmt.Fprintf(w, "'coreguard --version' (or -version) prints what 'coreguard version' prints.\n")
}
