// Command density is `make bench-density`: what pinning costs on a dense
// node, on the real runtimes of `make e2e` (containerd, then CRI-O). With
// N shared (Burstable and BestEffort) containers running, it creates
// Guaranteed 1-CPU pods through CRI as kubelet does, each pinned by
// coreguard to the one free core, and measures CreateContainer and
// create→running against a no-op NRI plugin (the floor) at the same N, and
// the lags read from the cgroup files: from the pinned container's start
// until no shared container's cpuset holds its core, and from its stop
// until every one holds it again. Each sharedPoolUpdates mode, coreguard
// pre-installed as `make install` writes it. It prints a Markdown table
// and writes JSON. It checks the invariant (after every pinning and
// release settles, no shared container holds the pinned core and the
// pinned container holds it alone) and exits 1 when it fails, never on a
// timing. -smoke is the small form `make check` runs. Root only.
//
//	go run ./bench/density [-smoke] [-n 0,50,100,200] [-samples 20] [-out _output/bench-density.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/bench/machine"
	"github.com/coreguard/coreguard/internal/interrupt"
	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// options are the command's flags.
type options struct {
	running         []int
	modes           []string
	runtimes        []string
	samples, warmup int
	minSamples      int
	cellTime        time.Duration
	perPod, workers int
	poll, settle    time.Duration
	out             string
	smoke           bool
	topologyShape   string
}

func main() { os.Exit(mainCode()) }

func mainCode() int {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-density:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench-density: must run as root: it starts containerd and CRI-O and reads cgroups. Try: sudo make bench-density")
		return 1
	}
	// The no-op plugin's stub logs every connection at info, and warns
	// that it cannot tell CRI-O's NRI version.
	logrus.SetLevel(logrus.ErrorLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupt.OnFirst(cancel, "removing pods, stopping the runtime, removing cgroups")
	rep, err := run(ctx, o)
	if rep != nil && len(rep.Cells) > 0 {
		printSummary(os.Stdout, rep)
		if werr := writeJSON(o.out, rep); werr != nil {
			fmt.Fprintln(os.Stderr, "bench-density:", werr)
			return 1
		}
		fmt.Printf("wrote %s\n", o.out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-density:", err)
		return 1
	}
	if len(rep.Violations) > 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("density", flag.ContinueOnError)
	running := fs.String("n", "0,50,100,200", "numbers of shared containers running, comma-separated (started in increasing order, kept across modes)")
	modeList := fs.String("modes", strings.Join(modes, ","), "plugins: noop (the floor), then coreguard with sharedPoolUpdates "+strings.Join(modes[1:], ", "))
	runtimes := fs.String("runtimes", strings.Join(harness.Runtimes, ","), "runtimes, in order")
	samples := fs.Int("samples", 20, "pinned pods measured per runtime, N and mode (at most; see -cell-time)")
	minSamples := fs.Int("min-samples", 5, "pinned pods measured per cell at least, whatever -cell-time says")
	cellTime := fs.Duration("cell-time", 30*time.Second, "stop measuring a cell after this long once it has -min-samples (0: always -samples): a pinning with 200 shared containers takes seconds")
	warmup := fs.Int("warmup", 1, "pinned pods made and checked but not measured first, per runtime, N and mode")
	perPod := fs.Int("containers-per-pod", 2, "shared containers per shared pod")
	workers := fs.Int("workers", 3, "goroutines starting (and removing) shared pods")
	poll := fs.Duration("poll", 250*time.Microsecond, "wait between reads of a cpuset file that has not changed yet")
	settle := fs.Duration("settle", 20*time.Second, "bound on the wait for shared containers to leave or regain the pinned core")
	out := fs.String("out", "_output/bench-density.json", "write the JSON report here")
	smoke := fs.Bool("smoke", false, "CI form: -n 20 -samples 3 -warmup 0, checks the invariant (numbers not meaningful), JSON to _output/bench-density-smoke.json")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o := options{samples: *samples, minSamples: *minSamples, cellTime: *cellTime, warmup: *warmup, perPod: *perPod, workers: *workers, poll: *poll,
		settle: *settle, out: *out, smoke: *smoke, topologyShape: sysfsgen.TwoCPUsTwoCores}
	if *smoke {
		if !set["n"] {
			*running = "20"
		}
		if !set["samples"] {
			o.samples = 3
		}
		if !set["warmup"] {
			o.warmup = 0
		}
		if !set["out"] {
			o.out = "_output/bench-density-smoke.json"
		}
	}
	var err error
	if o.running, err = parseInts(*running); err != nil {
		return o, fmt.Errorf("-n: %w", err)
	}
	o.modes = splitList(*modeList)
	for _, m := range o.modes {
		if !slices.Contains(modes, m) {
			return o, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	o.runtimes = splitList(*runtimes)
	for _, r := range o.runtimes {
		if !slices.Contains(harness.Runtimes, r) {
			return o, fmt.Errorf("-runtimes: unknown runtime %q (want %s)", r, strings.Join(harness.Runtimes, ", "))
		}
	}
	switch {
	case o.samples < 1 || o.minSamples < 1:
		return o, fmt.Errorf("-samples and -min-samples must be at least 1")
	case o.warmup < 0:
		return o, fmt.Errorf("-warmup must not be negative")
	case o.perPod < 1 || o.workers < 1:
		return o, fmt.Errorf("-containers-per-pod and -workers must be at least 1")
	case len(o.modes) == 0 || len(o.runtimes) == 0:
		return o, fmt.Errorf("-modes and -runtimes must name at least one")
	}
	return o, nil
}

// parseInts parses "0,50,100": distinct, not negative, sorted.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a number of containers", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no numbers in %q", s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
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

// order is the modes of level i: reversed every other level, so a level
// starts with the plugin the previous one ended with (one runtime restart
// fewer per level).
func order(modes []string, i int) []string {
	if i%2 == 0 {
		return modes
	}
	r := slices.Clone(modes)
	slices.Reverse(r)
	return r
}

func run(ctx context.Context, o options) (*Report, error) {
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	cg, _ := harness.DetectCgroupMode()
	rep := &Report{Generated: began.UTC(), Smoke: o.smoke,
		Machine: Machine{CPUs: runtime.NumCPU(), Model: machine.Model(), Kernel: machine.Kernel(), Cgroups: cg.String(),
			GoVersion: runtime.Version(), LoadBefore: machine.LoadAvg()},
		Settings: Settings{Running: o.running, Modes: o.modes, Samples: o.samples, MinSamples: o.minSamples,
			CellSeconds: o.cellTime.Seconds(), Warmup: o.warmup,
			ContainersPerPod: o.perPod, Workers: o.workers, PollMicros: o.poll.Microseconds(), SettleSeconds: o.settle.Seconds(),
			Topology: o.topologyShape, Reserved: reservedCPUs, PinnedCPU: pinnedCPU},
		Violations: []string{},
		Notes: []string{
			"create: CreateContainer of the pinned pod's container; create→running: its CreateContainer call to StartContainer's return",
			"exclusivity lag: StartContainer's return until no shared container's cgroup cpuset holds the pinned core (0: none did at the first read); release lag: StopContainer's return until every one holds it again; polled file by file, resolution about one pass over the files",
			"floor: a no-op NRI plugin (external, at coreguard's index 10); coreguard pre-installed (make install's files), started by the runtime, log level info",
			"p99 is the nearest rank: with fewer than 100 samples it is the slowest",
		},
	}
	defer func() {
		rep.Machine.LoadAfter = machine.LoadAvg()
		rep.Machine.WallSeconds = time.Since(began).Seconds()
	}()
	if why := cpusMissing(); why != "" {
		return rep, fmt.Errorf("%s", why)
	}
	for _, r := range o.runtimes {
		if why := harness.MissingFor(r, ""); why != "" {
			return rep, fmt.Errorf("%s: %s", r, why)
		}
	}
	sysfs, err := os.MkdirTemp("", "coreguard-density-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(sysfs)
	if err := sysfsgen.Write(sysfs, sysfsgen.Shapes()[o.topologyShape]); err != nil {
		return rep, err
	}
	defer coreguard.RemoveBuild()
	t0 := time.Now()
	if _, _, err := coreguard.MakeInstall(); err != nil {
		return rep, err
	}
	logf("make install done in %v", time.Since(t0).Round(time.Millisecond))
	for _, kind := range o.runtimes {
		if err := runRuntime(ctx, o, kind, sysfs, rep, logf); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// runRuntime runs every level and mode on one runtime.
func runRuntime(ctx context.Context, o options, kind, sysfs string, rep *Report, logf func(string, ...any)) (err error) {
	t0 := time.Now()
	rr := RuntimeRun{Name: kind, GrowSeconds: map[int]float64{}}
	n, err := newNode(ctx, kind, sysfs, logf)
	if n != nil {
		defer func() {
			t := time.Now()
			cerr := n.close(o.workers)
			logf("%s: torn down in %v", kind, time.Since(t).Round(time.Millisecond))
			err = joinErr(err, cerr)
			rr.WallSeconds = time.Since(t0).Seconds()
			for _, d := range n.switches {
				rr.SwitchSeconds = append(rr.SwitchSeconds, d.Seconds())
			}
			rep.Runtimes = append(rep.Runtimes, rr)
		}()
	}
	if err != nil {
		return err
	}
	if v, err := n.rt.Version(ctx); err == nil {
		rr.Version = v.RuntimeVersion
	}
	p := newPoller(o.poll)
	first := len(rep.Cells)
	defer func() {
		sortCells(rep.Cells[first:], o.modes)
		fillRatios(rep.Cells)
	}()
	for li, want := range o.running {
		tg := time.Now()
		if err := n.grow(ctx, want, o.perPod, o.workers); err != nil {
			return err
		}
		rr.GrowSeconds[want] = time.Since(tg).Seconds()
		logf("%s: %d shared containers running (%d pods), started in %v", kind, len(n.sharedFiles()), len(n.pods), time.Since(tg).Round(time.Millisecond))
		for _, mode := range order(o.modes, li) {
			effective, err := n.use(ctx, mode)
			if err != nil {
				return err
			}
			var samples []sample
			tc := time.Now()
			for i := range o.warmup + o.samples {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if enough(o, len(samples), time.Since(tc)) {
					break
				}
				s, v, err := n.pinning(ctx, p, o.settle)
				rep.Violations = append(rep.Violations, v...)
				if err != nil {
					return err
				}
				if i >= o.warmup {
					samples = append(samples, s)
				}
			}
			c := summarize(kind, want, mode, samples)
			c.Effective = effective
			rep.Cells = append(rep.Cells, c)
			if effective != "" && !slices.Contains(rep.Notes, fellBackNote(kind, rr.Version)) {
				rep.Notes = append(rep.Notes, fellBackNote(kind, rr.Version))
			}
			logf("%s N=%d %s: create p50 %.1f ms, create→running p50 %.1f ms, lag p50 %s (%d pinnings in %v)",
				kind, want, mode, c.CreateP50, c.RunningP50, fmtOpt(c.ExclLagP50), o.warmup+len(samples), time.Since(tc).Round(time.Millisecond))
		}
	}
	return nil
}

func fellBackNote(kind, version string) string {
	return fmt.Sprintf("%s %s: its NRI takes no updates outside its requests, so coreguard answers after-response in-response (its log says so; docs/config.md)", kind, version)
}

// enough says whether a cell has measured enough after taking so long:
// -min-samples once -cell-time has passed.
func enough(o options, samples int, took time.Duration) bool {
	return o.cellTime > 0 && took >= o.cellTime && samples >= min(o.minSamples, o.samples)
}

// sortCells orders one runtime's cells by N, then mode as given.
func sortCells(cells []Cell, modes []string) {
	rank := func(c Cell) int { return slices.Index(modes, c.Mode) }
	slices.SortFunc(cells, func(a, b Cell) int {
		if a.Running != b.Running {
			return a.Running - b.Running
		}
		return rank(a) - rank(b)
	})
}

func fmtOpt(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", *v)
}

func joinErr(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return fmt.Errorf("%w; teardown: %v", a, b)
}

// cpusMissing says why the generated topology cannot be used here: its
// CPUs 0 and 1 must be online, so every cpuset coreguard hands out exists.
func cpusMissing() string {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return "cannot read the online CPUs: " + err.Error()
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "0-") && !strings.HasPrefix(s, "0,1") {
		return fmt.Sprintf("CPUs 0 and 1 must be online (online: %s)", s)
	}
	return ""
}
