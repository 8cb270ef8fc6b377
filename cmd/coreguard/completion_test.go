package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/kernel"
)

// completionCase is a command line typed up to the cursor and what every
// shell offers there.
type completionCase struct {
	line string
	want []string
}

// completionCases run against the script `coreguard completion SHELL`
// prints; dir holds sample.yaml.
func completionCases(t *testing.T, dir string) []completionCase {
	var visible []string
	for _, c := range commands() {
		if !c.internal {
			visible = append(visible, c.name)
		}
	}
	return []completionCase{
		{"coreguard ", append(visible, "help")},
		{"coreguard pl", []string{"plan"}},
		{"coreguard h", []string{"help"}}, // not hook: the runtime runs it
		{"coreguard --", []string{"--help", "--version"}},
		{"coreguard plan --", flagsOf(t, "plan")},
		{"coreguard run --log-l", []string{"--log-level"}},
		{"coreguard plan -j", []string{"-json"}},
		{"coreguard -v", []string{"-version"}},
		{"coreguard plan --odd-cpus ", alloc.OddCPUsValues},
		{"coreguard plan -odd-cpus i", []string{"isolate"}},
		{"coreguard plan 5 --isolated-cpus ex", []string{"exclusive-only", "exclude"}},
		{"coreguard plan --odd-cpus=", alloc.OddCPUsValues},
		{"coreguard plan --odd-cpus=r", []string{"round-up", "reject"}},
		{"coreguard run --log-level ", config.LogLevels},
		{"coreguard run --log-format=j", []string{"json"}},
		{"coreguard kernel --unknown ", kernel.UnknownValues},
		{"coreguard throttle --top ", nil},
		{"coreguard completion ", []string{"bash", "fish", "zsh"}},
		{"coreguard help th", []string{"throttle"}},
		{"coreguard hook --", nil},
		{"coreguard config " + dir + "/sam", []string{"sample.yaml"}},
		{"coreguard plan --sysfs-root " + dir + "/sam", []string{"sample.yaml"}},
	}
}

// flagsOf is a command's flags as completion offers them, read from its
// flag set.
func flagsOf(t *testing.T, name string) []string {
	t.Helper()
	c, ok := lookup(name)
	if !ok {
		t.Fatalf("no command %s", name)
	}
	fs, _ := newFlagSet(c, io.Discard)
	flags := []string{"--help"}
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
	return flags
}

// frobCommand is a command the table does not have, to show that a new
// command and its flags are completed without touching the scripts.
func frobCommand() command {
	return command{
		name: "frob", short: "A command added later.", args: "FILE",
		completeArgs: completions{files: true},
		setup: func(fs *flag.FlagSet) runFunc {
			choiceFlag(fs, "color", "red", "a color: red or green", []string{"red", "green"})
			fs.String("out", "", "where to write")
			fs.Bool("dry-run", false, "change nothing")
			return nil
		},
	}
}

var frobCases = []completionCase{
	{"coreguard fr", []string{"frob"}},
	{"coreguard frob --", []string{"--color", "--dry-run", "--help", "--out"}},
	{"coreguard frob --color ", []string{"red", "green"}},
	{"coreguard frob --dry-run --color=g", []string{"green"}},
}

// shells completes lines with each shell's script, as the shell would.
var shells = []struct {
	name   string
	syntax []string // checks the script's syntax without running it
	// complete runs the shell on script for each line; cache is a
	// directory its runs in one test share.
	complete func(t *testing.T, cache, script string, lines []string) [][]string
}{
	{"bash", []string{"-n"}, bashComplete},
	{"zsh", []string{"-n"}, zshComplete},
	{"fish", []string{"--no-execute"}, fishComplete},
}

// TestCompletionScripts runs each shell there is here on the script
// `coreguard completion SHELL` prints, and on one made from a table with a
// command added, and checks what it offers.
func TestCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sample.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := completionCases(t, dir)
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			if _, err := exec.LookPath(sh.name); err != nil {
				if os.Getenv("COREGUARD_REQUIRE_TOOLS") == "1" { // make check: hack/install-tools.sh installs it
					t.Fatalf("%s is not installed: make deps-tools installs it", sh.name)
				}
				t.Skipf("%s is not installed here: its script is neither checked nor run", sh.name)
			}
			t.Parallel()
			code, script, errOut := runCLI("completion", sh.name)
			if code != exitOK || errOut != "" {
				t.Fatalf("coreguard completion %s: exit %d: %s", sh.name, code, errOut)
			}
			frob := writeScript(t, sh.name, completionModel(append(commands(), frobCommand())))
			cache := t.TempDir()
			for _, file := range []string{saveScript(t, sh.name, script), frob} {
				if out, err := exec.Command(sh.name, append(sh.syntax, file)...).CombinedOutput(); err != nil {
					t.Fatalf("%s %v %s: %v\n%s", sh.name, sh.syntax, file, err, out)
				}
			}
			checkCompletions(t, cases, sh.complete(t, cache, script, lines(cases)))
			frobScript, err := os.ReadFile(frob)
			if err != nil {
				t.Fatal(err)
			}
			checkCompletions(t, frobCases, sh.complete(t, cache, string(frobScript), lines(frobCases)))
		})
	}
}

func lines(cases []completionCase) []string {
	var out []string
	for _, c := range cases {
		out = append(out, c.line)
	}
	return out
}

func checkCompletions(t *testing.T, cases []completionCase, got [][]string) {
	t.Helper()
	if len(got) != len(cases) {
		t.Fatalf("%d answers for %d lines: %q", len(got), len(cases), got)
	}
	for i, c := range cases {
		if g, w := normalized(offered(c.line, got[i])), normalized(c.want); !slices.Equal(g, w) {
			t.Errorf("%q offers %q, want %q", c.line, got[i], c.want)
		}
	}
}

// offered drops the flags that do not start with the word being completed:
// zsh lists -name beside --name as the same flag.
func offered(line string, cands []string) []string {
	word := line[strings.LastIndex(line, " ")+1:]
	return slices.DeleteFunc(slices.Clone(cands), func(c string) bool {
		return strings.HasPrefix(c, "-") && !strings.HasPrefix(c, word)
	})
}

// normalized sorts candidates and drops what shells add or leave out: the
// --flag= before a value (fish keeps it) and a file's directory (zsh drops
// it).
func normalized(cands []string) []string {
	out := []string{}
	for _, c := range cands {
		if i := strings.Index(c, "="); strings.HasPrefix(c, "-") && i >= 0 {
			c = c[i+1:]
		}
		if strings.Contains(c, "/") {
			c = path.Base(c)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func saveScript(t *testing.T, shell, script string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), shell+"-completion")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func writeScript(t *testing.T, shell string, spec completionSpec) string {
	t.Helper()
	var b bytes.Buffer
	if err := completionScripts[shell](&b, spec); err != nil {
		t.Fatal(err)
	}
	return saveScript(t, shell, b.String())
}

// shellOutput runs a shell with a deadline and returns its stdout.
func shellOutput(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.String())
	}
	return string(out)
}

// bashWords splits a line as readline does for bash (COMP_WORDBREAKS has
// space and '='): "--log-format=j" is three words.
func bashWords(line string) []string {
	var words []string
	for _, w := range strings.Split(line, " ") {
		flag, value, ok := strings.Cut(w, "=")
		if ok && strings.HasPrefix(w, "-") {
			words = append(words, flag, "=", value)
			continue
		}
		words = append(words, w)
	}
	return words
}

const bashDriver = `source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
_coreguard
printf '%s\n' "${COMPREPLY[@]}"`

// bashComplete calls the script's completion function with COMP_WORDS and
// COMP_CWORD as bash sets them for each line.
func bashComplete(t *testing.T, _, script string, lines []string) [][]string {
	file := saveScript(t, "bash", script)
	var got [][]string
	for _, line := range lines {
		args := append([]string{"--norc", "--noprofile", "-c", bashDriver, "bash", file}, bashWords(line)...)
		got = append(got, strings.Fields(shellOutput(t, nil, "bash", args...)))
	}
	return got
}

// TestBashCompletionUnsplit: where COMP_WORDBREAKS lacks '=', --flag=value
// is one word, and the candidates keep the --flag= before them.
func TestBashCompletionUnsplit(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed here")
	}
	_, script, _ := runCLI("completion", "bash")
	file := saveScript(t, "bash", script)
	out := shellOutput(t, nil, "bash", "--norc", "--noprofile", "-c", bashDriver, "bash", file, "coreguard", "run", "--log-format=j")
	if got := strings.Fields(out); !slices.Equal(got, []string{"--log-format=json"}) {
		t.Errorf("got %q, want --log-format=json", got)
	}
}

// zshDriver completes each line in an interactive zsh on a pseudo-terminal
// (zsh completes only inside its line editor) and prints the candidates
// the completion functions added, a line for each. The terminal echoes
// what is typed, so the markers are put together only when printed.
const zshDriver = `zmodload zsh/zpty || exit 3
before=$1 dump=$2 after=$3; shift 3
zpty cg zsh -f -i
zpty -w cg "PS1='' RPS1='' m=CG; unsetopt zle_bracketed_paste autolist"
zpty -w cg "$before"
zpty -w cg "autoload -Uz compinit && compinit -u -d ${(q)dump}"
zpty -w cg "$after"
zpty -w cg 'compadd() { if [[ " $* " == *" -"[OAD]" "* ]]; then builtin compadd "$@"; return; fi; local -a hits; builtin compadd -A hits "$@"; local h; for h in $hits; do print -r -- "<${m}:$h>"; done; builtin compadd "$@"; }'
zpty -w cg '_cg_complete() { _main_complete; print -r -- "<${m}.done>"; }; zle -C cg-complete complete-word _cg_complete; bindkey "^I" cg-complete'
for line; do
	zpty -n -w cg "$line"$'\t'
	out=
	while [[ $out != *'<CG.done>'* ]] && zpty -r cg chunk; do
		out+=$chunk
	done
	zpty -n -w cg $'\C-u'
	cands=()
	for l in ${(f)out}; do
		[[ $l == *'<CG:'*'>'* ]] || continue
		l=${l#*<CG:}
		cands+=(${l%>*})
	done
	print -r -- "$cands"
done
zpty -d cg`

// zshComplete installs the script the way 'coreguard completion -h' says
// first (as _coreguard in a directory of $fpath, before compinit) and
// completes every line, then the other way (sourced after compinit) for one.
// compinit keeps its dumps in cache: a run with as many functions in $fpath
// as the one before reuses its dump (seconds saved: compinit reads every
// function otherwise).
func zshComplete(t *testing.T, cache, script string, lines []string) [][]string {
	if err := exec.Command("zsh", "-f", "-c", "zmodload zsh/zpty").Run(); err != nil {
		t.Skipf("zsh has no zpty module to complete on a terminal: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "_coreguard"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	got := zshRun(t, "fpath=("+dir+" $fpath)", filepath.Join(cache, "fpath.zcompdump"), ":", lines)
	sourced := zshRun(t, ":", filepath.Join(cache, "sourced.zcompdump"), "source "+filepath.Join(dir, "_coreguard"), lines[:1])
	if !slices.Equal(sourced[0], got[0]) {
		t.Errorf("sourced after compinit, %q offers %q; from $fpath %q", lines[0], sourced[0], got[0])
	}
	return got
}

func zshRun(t *testing.T, before, dump, after string, lines []string) [][]string {
	t.Helper()
	args := append([]string{"-f", "-c", zshDriver, "zsh", before, dump, after}, lines...)
	out := strings.Split(strings.TrimSuffix(shellOutput(t, nil, "zsh", args...), "\n"), "\n")
	var got [][]string
	for _, l := range out {
		got = append(got, strings.Fields(strings.TrimSpace(strings.ReplaceAll(l, "\r", ""))))
	}
	return got
}

// fishComplete asks fish what it offers (complete -C) with the script where
// 'coreguard completion -h' says to put it, ~/.config/fish/completions;
// fish loads it from there only for a command on $PATH, so a stand-in is.
func fishComplete(t *testing.T, _, script string, lines []string) [][]string {
	home := t.TempDir()
	completions := filepath.Join(home, ".config", "fish", "completions")
	bin := filepath.Join(home, "bin")
	for _, d := range []string{completions, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(completions, "coreguard.fish"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "coreguard"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=", "XDG_DATA_HOME=", "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	var got [][]string
	for _, line := range lines {
		var cands []string
		for _, l := range strings.Split(shellOutput(t, env, "fish", "-c", "complete -C $argv[1]", line), "\n") {
			if cand, _, _ := strings.Cut(l, "\t"); cand != "" {
				cands = append(cands, cand)
			}
		}
		got = append(got, cands)
	}
	return got
}

// TestCompletionModel: the scripts are made from the command table and
// the flag sets, with the lists of values the packages export, in names
// and values the scripts can hold unquoted.
func TestCompletionModel(t *testing.T) {
	spec := completionModel(commands())
	byName := map[string]cmdSpec{}
	for _, c := range spec.commands {
		byName[c.name] = c
	}
	for _, c := range commands() {
		if _, offered := byName[c.name]; offered == c.internal {
			t.Errorf("command %s: offered %v, internal %v", c.name, offered, c.internal)
		}
	}
	values := func(cmd, name string) []string {
		for _, f := range byName[cmd].flags {
			if f.name == name {
				return f.values.words
			}
		}
		t.Fatalf("%s has no flag %s", cmd, name)
		return nil
	}
	for _, tt := range []struct {
		cmd, flag string
		want      []string
	}{
		{"run", "log-level", config.LogLevels},
		{"run", "log-format", config.LogFormats},
		{"plan", "odd-cpus", alloc.OddCPUsValues},
		{"plan", "isolated-cpus", alloc.IsolatedCPUsValues},
		{"kernel", "unknown", kernel.UnknownValues},
	} {
		if got := values(tt.cmd, tt.flag); !slices.Equal(got, tt.want) {
			t.Errorf("%s --%s offers %q, want %q", tt.cmd, tt.flag, got, tt.want)
		}
	}
	plain := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	for _, c := range spec.commands {
		words := append([]string{c.name}, c.args.words...)
		for _, f := range c.flags {
			words = append(words, f.name)
			words = append(words, f.values.words...)
		}
		for _, w := range words {
			if !plain.MatchString(w) {
				t.Errorf("command %s: %q is not a plain word the scripts can hold unquoted", c.name, w)
			}
		}
	}
}

// TestChoicesInUsage: a flag's help names every value completion offers.
func TestChoicesInUsage(t *testing.T) {
	for _, c := range commands() {
		fs, _ := newFlagSet(c, io.Discard)
		fs.VisitAll(func(f *flag.Flag) {
			ch, ok := f.Value.(choice)
			if !ok {
				return
			}
			for _, v := range ch.Choices() {
				if !strings.Contains(f.Usage, v) {
					t.Errorf("%s -%s: usage %q does not name %q", c.name, f.Name, f.Usage, v)
				}
			}
		})
	}
}

func TestCompletionCommand(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"completion", "bash"}, exitOK, "complete -F _coreguard coreguard", ""},
		{[]string{"completion", "zsh"}, exitOK, "#compdef coreguard", ""},
		{[]string{"completion", "fish"}, exitOK, "complete -c coreguard", ""},
		{[]string{"completion"}, exitUsage, "", "give one shell: bash, fish, zsh"},
		{[]string{"completion", "tcsh"}, exitUsage, "", `no completion for shell "tcsh"`},
		{[]string{"completion", "bash", "zsh"}, exitUsage, "", "give one shell"},
		{[]string{"help", "completion"}, exitOK, "source <(coreguard completion bash)", ""},
		{[]string{"help", "completion"}, exitOK, "~/.config/fish/completions/coreguard.fish", ""},
		{[]string{"help", "completion"}, exitOK, "fpath=(~/.zsh/completions $fpath)", ""},
		{[]string{"help"}, exitOK, "completion Print a shell completion script", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
}

func TestBrief(t *testing.T) {
	tests := []struct{ usage, want string }{
		{"log level: debug, info (default: info)", "log level"},
		{`print JSON: {"a":1}`, "print JSON"},
		{"sysfs to read the topology from (a directory), e.g. a tree", "sysfs to read the topology from"},
		{"show the N most throttled containers; 0 shows all", "show the N most throttled containers"},
		{"serve Prometheus metrics on this host:port", "serve Prometheus metrics on this host:port"},
		{strings.Repeat("word ", 30), strings.TrimSpace(strings.Repeat("word ", 13)) + "..."},
	}
	for _, tt := range tests {
		if got := brief(tt.usage); got != tt.want {
			t.Errorf("brief(%q) = %q, want %q", tt.usage, got, tt.want)
		}
	}
}
