package main

import (
	"fmt"
	"io"
	"strings"
)

// The scripts hold the names and values as bare words: flag names, values
// and command names are plain words (a test checks), and descriptions are
// quoted for each shell.

const bashHead = `# bash completion for coreguard ('coreguard completion -h' says how to install it),
# written by 'coreguard completion bash' from coreguard's commands and flags.

_coreguard() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev= prefix= cmd= words= files=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
	# A value after '=': bash splits --flag=value into three words, or into
	# one where COMP_WORDBREAKS lacks '='.
	if [[ $cur == = && $prev == -* ]]; then
		cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD-2]}
	elif [[ $cur == -*=* ]]; then
		prev=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}
	fi
	((COMP_CWORD > 1)) && cmd=${COMP_WORDS[1]}
	case $cmd in
`

const bashTail = `	esac
	# -name after one dash: the flag package takes it as well as --name.
	[[ $cur == -[!-]* ]] && words=${words//--/-}
	COMPREPLY=()
	local candidate
	if [[ -n $files ]]; then
		compopt -o filenames 2>/dev/null # bash 4 and later: a slash after directories
		while IFS= read -r candidate; do COMPREPLY+=("$candidate"); done < <(compgen -f -- "$cur")
	else
		while IFS= read -r candidate; do COMPREPLY+=("$candidate"); done < <(compgen -W "$words" -- "$cur")
	fi
	if [[ -n $prefix ]]; then
		COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
	fi
}

complete -F _coreguard coreguard
`

// writeBash writes a function that reads the line from COMP_WORDS: the
// command is the first word; a flag taking a value before the cursor
// (-flag or --flag, as the flag package takes both) is completed with its
// values, anything else with the command's flags or arguments.
func writeBash(w io.Writer, spec completionSpec) error {
	var b strings.Builder
	b.WriteString(bashHead)
	fmt.Fprintf(&b, "\t'')\n\t\tif [[ $cur == -* ]]; then words=%s; else words=%s; fi ;;\n",
		shellWords(flagNames(spec.flags)), shellWords(commandNames(spec.commands)))
	for _, c := range spec.commands {
		fmt.Fprintf(&b, "\t%s)\n\t\tcase $prev in\n", c.name)
		for _, f := range c.flags {
			if f.takesValue {
				fmt.Fprintf(&b, "\t\t-%s | --%s) %s;;\n", f.name, f.name, bashValues(f.values))
			}
		}
		fmt.Fprintf(&b, "\t\t*) %s ;;\n\t\tesac ;;\n", bashArgs(c))
	}
	b.WriteString(bashTail)
	_, err := io.WriteString(w, b.String())
	return err
}

// bashValues sets what completes a flag's value: nothing for a value no
// list or file name describes (a number).
func bashValues(v completions) string {
	switch {
	case len(v.words) > 0:
		return "words=" + shellWords(v.words) + " "
	case v.files:
		return "files=1 "
	}
	return ""
}

// bashArgs completes a command's flags after a dash, else its arguments (its
// flags for a command whose arguments nothing completes).
func bashArgs(c cmdSpec) string {
	flags := shellWords(flagNames(c.flags))
	switch {
	case len(c.args.words) > 0:
		return fmt.Sprintf("if [[ $cur == -* ]]; then words=%s; else words=%s; fi", flags, shellWords(c.args.words))
	case c.args.files:
		return fmt.Sprintf("if [[ $cur == -* ]]; then words=%s; else files=1; fi", flags)
	}
	return "words=" + flags
}

const zshHead = `#compdef coreguard
# zsh completion for coreguard ('coreguard completion -h' says how to install it),
# written by 'coreguard completion zsh' from coreguard's commands and flags.

_coreguard() {
	local curcontext=$curcontext state state_descr line ret=1
	typeset -A opt_args
`

const zshTail = `	esac
	return ret
}

# Autoloaded from $fpath, this file is the function's body: complete now.
# Sourced, it defines the function: tell compinit which command it completes.
if [[ $funcstack[1] == _coreguard ]]; then
	_coreguard "$@"
else
	compdef _coreguard coreguard
fi
`

// writeZsh writes a function that describes the commands and, once one is
// typed, hands its flags and arguments to _arguments.
func writeZsh(w io.Writer, spec completionSpec) error {
	var b strings.Builder
	b.WriteString(zshHead)
	b.WriteString("\tlocal -a commands=(\n")
	for _, c := range spec.commands {
		fmt.Fprintf(&b, "\t\t%s\n", zshQuote(c.name+":"+c.about))
	}
	b.WriteString("\t)\n\t_arguments -C \\\n")
	for _, f := range spec.flags {
		fmt.Fprintf(&b, "\t\t%s \\\n", zshFlag(f, "- :")) // ends the line: nothing follows
	}
	b.WriteString("\t\t'1:command:->command' \\\n\t\t'*::argument:->argument' && ret=0\n")
	b.WriteString("\tcase $state in\n\tcommand)\n\t\t_describe -t commands 'coreguard command' commands && ret=0 ;;\n")
	b.WriteString("\targument)\n\t\tcurcontext=${curcontext%:*:*}:coreguard-$words[1]:\n\t\tcase $words[1] in\n")
	for _, c := range spec.commands {
		fmt.Fprintf(&b, "\t\t%s)\n\t\t\t_arguments -S", c.name)
		for _, f := range c.flags {
			fmt.Fprintf(&b, " \\\n\t\t\t\t%s", zshFlag(f, "-"+f.name+" --"+f.name))
		}
		if c.takesArgs {
			fmt.Fprintf(&b, " \\\n\t\t\t\t%s", zshQuote("*:argument:"+zshAction(c.args)))
		}
		b.WriteString(" && ret=0 ;;\n")
	}
	b.WriteString("\t\tesac ;;\n")
	b.WriteString(zshTail)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshFlag is _arguments' spec of a flag as -name and --name (the flag
// package takes both, and -h shows -name), after which the flags in
// excludes are not offered: '(excludes)'{-name,--name}'=[about]:name:action'
// takes its value after '=' or as the next word, as the flag package does.
func zshFlag(f flagSpec, excludes string) string {
	spec := "[" + zshBracket(f.about) + "]"
	if f.takesValue {
		spec = "=" + spec + ":" + f.name + ":" + zshAction(f.values)
	}
	return fmt.Sprintf("%s{-%s,--%s}%s", zshQuote("("+excludes+")"), f.name, f.name, zshQuote(spec))
}

// zshAction completes words, file names, or nothing (a space: the value is
// typed, not chosen).
func zshAction(v completions) string {
	switch {
	case len(v.words) > 0:
		return "(" + strings.Join(v.words, " ") + ")"
	case v.files:
		return "_files"
	}
	return " "
}

// zshBracket escapes the brackets of a description inside _arguments' [...].
func zshBracket(s string) string {
	return strings.NewReplacer(`[`, `\[`, `]`, `\]`).Replace(s)
}

// zshQuote single-quotes a word for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

const fishHead = `# fish completion for coreguard ('coreguard completion -h' says how to install it),
# written by 'coreguard completion fish' from coreguard's commands and flags.

function __coreguard_needs_command
	test (count (commandline -opc)) -eq 1
end

function __coreguard_using -a name
	set -l words (commandline -opc)
	test (count $words) -ge 2; and test "$words[2]" = "$name"
end

complete -c coreguard -e
complete -c coreguard -f
`

// writeFish writes complete commands: the commands and the top flags while
// none is typed, then each command's flags (as --name and -name, which the
// flag package takes too) and arguments. File names are offered only where
// a flag or argument takes one.
func writeFish(w io.Writer, spec completionSpec) error {
	var b strings.Builder
	b.WriteString(fishHead)
	for _, f := range spec.flags {
		fmt.Fprintf(&b, "complete -c coreguard -n __coreguard_needs_command -l %s -o %s -d %s\n", f.name, f.name, fishQuote(f.about))
	}
	for _, c := range spec.commands {
		fmt.Fprintf(&b, "complete -c coreguard -n __coreguard_needs_command -a %s -d %s\n", c.name, fishQuote(c.about))
	}
	for _, c := range spec.commands {
		using := fishQuote("__coreguard_using " + c.name)
		b.WriteString("\n")
		for _, f := range c.flags {
			fmt.Fprintf(&b, "complete -c coreguard -n %s -l %s -o %s%s -d %s\n", using, f.name, f.name, fishValues(f), fishQuote(f.about))
		}
		switch {
		case len(c.args.words) > 0:
			fmt.Fprintf(&b, "complete -c coreguard -n %s -a %s\n", using, fishQuote(strings.Join(c.args.words, " ")))
		case c.args.files:
			fmt.Fprintf(&b, "complete -c coreguard -n %s -F\n", using)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fishValues are complete's options for a flag's value: -x (a value, no
// file names) with its words, -r -F (a file name), or -x alone (typed).
func fishValues(f flagSpec) string {
	switch {
	case !f.takesValue:
		return ""
	case len(f.values.words) > 0:
		return " -x -a " + fishQuote(strings.Join(f.values.words, " "))
	case f.values.files:
		return " -r -F"
	}
	return " -x"
}

// fishQuote single-quotes a word for fish, where \ and ' are escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// shellWords is words as one single-quoted bash word.
func shellWords(words []string) string { return "'" + strings.Join(words, " ") + "'" }

func flagNames(flags []flagSpec) []string {
	var names []string
	for _, f := range flags {
		names = append(names, "--"+f.name)
	}
	return names
}

func commandNames(commands []cmdSpec) []string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return names
}
