package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// completionScripts writes each shell's completion script.
var completionScripts = map[string]func(io.Writer, completionSpec) error{
	"bash": writeBash,
	"zsh":  writeZsh,
	"fish": writeFish,
}

func shellNames() []string { return slices.Sorted(maps.Keys(completionScripts)) }

func completionCommand() command {
	return command{
		name:  "completion",
		short: "Print a shell completion script (bash, zsh or fish).",
		args:  strings.Join(shellNames(), "|"),
		summary: "Print a script that completes coreguard's commands, their flags, and the values of flags that\n" +
			"take one of a fixed list (e.g. --log-level, --odd-cpus). It is made from this binary's commands and\n" +
			"flags: write it again after an upgrade. Install it for your shell, then open a new shell:\n" +
			"\n" +
			"  bash  in ~/.bashrc:  source <(coreguard completion bash)\n" +
			"        or, with the bash-completion package, as a file it loads when coreguard is first completed:\n" +
			"          mkdir -p ~/.local/share/bash-completion/completions\n" +
			"          coreguard completion bash > ~/.local/share/bash-completion/completions/coreguard\n" +
			"        (for every user: /usr/share/bash-completion/completions/coreguard)\n" +
			"  zsh   as the file _coreguard in a directory of $fpath, e.g.:\n" +
			"          mkdir -p ~/.zsh/completions\n" +
			"          coreguard completion zsh > ~/.zsh/completions/_coreguard\n" +
			"        with, in ~/.zshrc before compinit:  fpath=(~/.zsh/completions $fpath)\n" +
			"        (if a dump compinit kept hides it: rm ~/.zcompdump)\n" +
			"        or, in ~/.zshrc after compinit:  source <(coreguard completion zsh)\n" +
			"  fish  mkdir -p ~/.config/fish/completions\n" +
			"        coreguard completion fish > ~/.config/fish/completions/coreguard.fish\n" +
			"        (this shell only:  coreguard completion fish | source)\n" +
			"\n" +
			"Internal commands (hook, which the OCI runtime runs) are not offered.",
		completeArgs: completions{words: shellNames()},
		setup: func(fs *flag.FlagSet) runFunc {
			return func(args []string, stdout, _ io.Writer) error {
				if len(args) != 1 {
					return usageError{"give one shell: " + strings.Join(shellNames(), ", ")}
				}
				write, ok := completionScripts[args[0]]
				if !ok {
					return usageError{fmt.Sprintf("no completion for shell %q: give one of %s", args[0], strings.Join(shellNames(), ", "))}
				}
				return write(stdout, completionModel(commands()))
			}
		},
	}
}

// completions says what completes a flag's value or a positional argument.
type completions struct {
	words []string // one of these words
	files bool     // a file name
}

// completionSpec is what the scripts complete, read from the command table
// and the commands' flag sets.
type completionSpec struct {
	flags    []flagSpec // before a command: --help, --version
	commands []cmdSpec
}

type cmdSpec struct {
	name, about string
	flags       []flagSpec
	takesArgs   bool        // positional arguments are allowed
	args        completions // and what completes them
}

type flagSpec struct {
	name, about string
	takesValue  bool        // not a bool flag
	values      completions // what completes its value
}

// choice is a string flag whose values are a fixed list, which completion
// offers. Set takes any string: the command checks the value where it uses
// it, in the words of the setting it stands for.
type choice struct {
	value   *string
	choices []string
}

func (c choice) String() string {
	if c.value == nil { // flag.PrintDefaults calls it on the zero value
		return ""
	}
	return *c.value
}

func (c choice) Set(s string) error { *c.value = s; return nil }

// Choices are the values completion offers.
func (c choice) Choices() []string { return c.choices }

// choiceVar declares a string flag taking one of choices.
func choiceVar(fs *flag.FlagSet, p *string, name, value, usage string, choices []string) {
	*p = value
	fs.Var(choice{p, choices}, name, usage)
}

// choiceFlag declares a string flag taking one of choices.
func choiceFlag(fs *flag.FlagSet, name, value, usage string, choices []string) *string {
	p := new(string)
	choiceVar(fs, p, name, value, usage, choices)
	return p
}

// completionModel reads the commands people run (not the internal ones)
// and their flags, and adds help, whose argument is a command.
func completionModel(cmds []command) completionSpec {
	spec := completionSpec{flags: []flagSpec{
		{name: "help", about: "show the commands"},
		{name: "version", about: "print the version"},
	}}
	var names []string
	for _, c := range cmds {
		if c.internal {
			continue
		}
		fs, _ := newFlagSet(c, io.Discard)
		spec.commands = append(spec.commands, cmdSpec{
			name: c.name, about: strings.TrimSuffix(c.short, "."), flags: flagSpecs(fs),
			takesArgs: c.args != "", args: c.completeArgs,
		})
		names = append(names, c.name)
	}
	spec.commands = append(spec.commands, cmdSpec{
		name: "help", about: "Show the commands, or a command's flags",
		flags: []flagSpec{}, takesArgs: true, args: completions{words: names},
	})
	return spec
}

// flagSpecs are a command's flags, in name order, and -help, which the flag
// package answers for every command.
func flagSpecs(fs *flag.FlagSet) []flagSpec {
	specs := []flagSpec{{name: "help", about: "show the flags"}}
	fs.VisitAll(func(f *flag.Flag) { specs = append(specs, flagSpecOf(f)) })
	slices.SortFunc(specs, func(a, b flagSpec) int { return strings.Compare(a.name, b.name) })
	return specs
}

// flagSpecOf tells from a flag's value what completes it: nothing for a
// bool flag (it takes no value), its choices, file names for a string (most
// are paths), nothing for other values (numbers).
func flagSpecOf(f *flag.Flag) flagSpec {
	spec := flagSpec{name: f.Name, about: brief(f.Usage)}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return spec
	}
	spec.takesValue = true
	if c, ok := f.Value.(interface{ Choices() []string }); ok {
		spec.values.words = c.Choices()
	} else if g, ok := f.Value.(flag.Getter); ok {
		_, isString := g.Get().(string)
		spec.values.files = isString
	}
	return spec
}

// brief shortens a usage text to a description for zsh and fish: up to the
// first parenthesis, colon, semicolon or JSON shape, at most maxBrief
// characters.
func brief(usage string) string {
	const maxBrief = 72
	for _, stop := range []string{" (", ": ", "; ", " {", " ["} {
		if i := strings.Index(usage, stop); i >= 0 {
			usage = usage[:i]
		}
	}
	usage = strings.TrimRight(usage, " .,:")
	if len(usage) <= maxBrief {
		return usage
	}
	cut := strings.LastIndex(usage[:maxBrief-3], " ")
	if cut < 0 {
		return usage
	}
	return strings.TrimRight(usage[:cut], " ,:") + "..."
}
