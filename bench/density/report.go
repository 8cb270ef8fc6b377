package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coreguard/coreguard/config"
)

// The plugins a cell runs with: the no-op floor, and coreguard in each of
// its sharedPoolUpdates modes.
const (
	modeNoop          = "noop"
	modeCgroupFirst   = config.SharedPoolCgroupFirst
	modeInResponse    = config.SharedPoolInResponse
	modeAfterResponse = config.SharedPoolAfterResponse
)

// modes are every mode, the floor first, then coreguard's default.
var modes = append([]string{modeNoop}, config.SharedPoolUpdatesValues...)

// sample is one pinned pod, created as kubelet creates it.
type sample struct {
	sandbox time.Duration // RunPodSandbox
	create  time.Duration // CreateContainer
	running time.Duration // CreateContainer's call to StartContainer's return
	stop    time.Duration // StopContainer
	// Coreguard only: StartContainer's return until no shared container's
	// cpuset holds the pinned core; StopContainer's return until every
	// one holds it again.
	exclLag, releaseLag time.Duration
}

// Report is the JSON written to -out.
type Report struct {
	Generated  time.Time    `json:"generated"`
	Smoke      bool         `json:"smoke"`
	Machine    Machine      `json:"machine"`
	Settings   Settings     `json:"settings"`
	Runtimes   []RuntimeRun `json:"runtimes"`
	Cells      []Cell       `json:"cells"`
	Violations []string     `json:"violations"`
	Notes      []string     `json:"notes"`
}

// Machine says where the numbers come from and how busy it was.
type Machine struct {
	CPUs        int     `json:"cpus"`
	Model       string  `json:"model"`
	Kernel      string  `json:"kernel"`
	Cgroups     string  `json:"cgroups"`
	GoVersion   string  `json:"goVersion"`
	LoadBefore  string  `json:"loadavgBefore"`
	LoadAfter   string  `json:"loadavgAfter"`
	WallSeconds float64 `json:"wallSeconds"`
}

// Settings are the run's parameters.
type Settings struct {
	Running          []int    `json:"running"`
	Modes            []string `json:"modes"`
	Samples          int      `json:"samples"`
	MinSamples       int      `json:"minSamples"`
	CellSeconds      float64  `json:"cellSeconds"`
	Warmup           int      `json:"warmup"`
	ContainersPerPod int      `json:"containersPerPod"`
	Workers          int      `json:"workers"`
	PollMicros       int64    `json:"pollMicros"`
	SettleSeconds    float64  `json:"settleSeconds"`
	Topology         string   `json:"topology"`
	Reserved         string   `json:"reservedSystemCPUs"`
	PinnedCPU        int      `json:"pinnedCPU"`
}

// RuntimeRun is one runtime's part of the run.
type RuntimeRun struct {
	Name        string  `json:"name"`
	Version     string  `json:"version"`
	WallSeconds float64 `json:"wallSeconds"`
	// GrowSeconds is the time to start the shared containers, per level.
	GrowSeconds map[int]float64 `json:"growSeconds"`
	// SwitchSeconds is every plugin switch (a runtime restart), in order.
	SwitchSeconds []float64 `json:"switchSeconds"`
}

// Cell is one runtime, number of shared containers and plugin. Times in
// milliseconds; p99 is the nearest rank, so with fewer than 100 samples it
// is the maximum.
type Cell struct {
	Runtime string `json:"runtime"`
	Running int    `json:"running"`
	Mode    string `json:"mode"`
	// Effective is set when coreguard did not run the mode asked for (a
	// runtime that takes no updates outside its requests).
	Effective  string  `json:"effectiveMode,omitempty"`
	Samples    int     `json:"samples"`
	SandboxP50 float64 `json:"sandboxP50Ms"`
	CreateP50  float64 `json:"createP50Ms"`
	CreateP99  float64 `json:"createP99Ms"`
	// Ratios of CreateContainer against the no-op floor at the same
	// runtime and N (0 when the floor was not run).
	RatioP50   float64 `json:"createVsFloorP50"`
	RatioP99   float64 `json:"createVsFloorP99"`
	RunningP50 float64 `json:"createToRunningP50Ms"`
	StopP50    float64 `json:"stopP50Ms"`
	// Lags, coreguard only (absent for the floor, which pins nothing).
	ExclLagP50    *float64 `json:"exclusivityLagP50Ms,omitempty"`
	ExclLagMax    *float64 `json:"exclusivityLagMaxMs,omitempty"`
	ExclLagged    *int     `json:"exclusivityLagged,omitempty"` // samples with a lag > 0
	ReleaseLagP50 *float64 `json:"releaseLagP50Ms,omitempty"`
	ReleaseLagMax *float64 `json:"releaseLagMaxMs,omitempty"`
}

// quantile is the nearest-rank q-quantile of d (0 for none).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Round(10*time.Microsecond)) / 1e6 }

func msPtr(d time.Duration) *float64 { v := ms(d); return &v }

// summarize makes a cell of one runtime, N and mode's samples.
func summarize(rt string, n int, mode string, samples []sample) Cell {
	col := func(f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(samples))
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	create := col(func(s sample) time.Duration { return s.create })
	c := Cell{Runtime: rt, Running: n, Mode: mode, Samples: len(samples),
		SandboxP50: ms(quantile(col(func(s sample) time.Duration { return s.sandbox }), 0.5)),
		CreateP50:  ms(quantile(create, 0.5)), CreateP99: ms(quantile(create, 0.99)),
		RunningP50: ms(quantile(col(func(s sample) time.Duration { return s.running }), 0.5)),
		StopP50:    ms(quantile(col(func(s sample) time.Duration { return s.stop }), 0.5)),
	}
	if mode == modeNoop {
		return c
	}
	excl := col(func(s sample) time.Duration { return s.exclLag })
	rel := col(func(s sample) time.Duration { return s.releaseLag })
	lagged := 0
	for _, d := range excl {
		if d > 0 {
			lagged++
		}
	}
	c.ExclLagP50, c.ExclLagMax, c.ExclLagged = msPtr(quantile(excl, 0.5)), msPtr(quantile(excl, 1)), &lagged
	c.ReleaseLagP50, c.ReleaseLagMax = msPtr(quantile(rel, 0.5)), msPtr(quantile(rel, 1))
	return c
}

// fillRatios sets every cell's CreateContainer ratios against the floor
// cell of the same runtime and N.
func fillRatios(cells []Cell) {
	type key struct {
		rt string
		n  int
	}
	floor := map[key]Cell{}
	for _, c := range cells {
		if c.Mode == modeNoop {
			floor[key{c.Runtime, c.Running}] = c
		}
	}
	for i, c := range cells {
		f, ok := floor[key{c.Runtime, c.Running}]
		if !ok || f.CreateP50 == 0 || f.CreateP99 == 0 {
			continue
		}
		cells[i].RatioP50 = c.CreateP50 / f.CreateP50
		cells[i].RatioP99 = c.CreateP99 / f.CreateP99
	}
}

// printTable writes the cells as a Markdown table.
func printTable(w io.Writer, cells []Cell) {
	fmt.Fprintln(w, "| runtime | N | mode | samples | create p50 ms | create p99 | ×floor p50 | ×floor p99 | create→running p50 | excl. lag p50 ms | excl. lag max | lagged | stop p50 ms | release lag p50 ms | release lag max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	opt := func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f", *v)
	}
	for _, c := range cells {
		mode := c.Mode
		if c.Effective != "" {
			mode += " (ran " + c.Effective + ")"
		}
		ratio50, ratio99 := "–", "–"
		if c.RatioP50 > 0 {
			ratio50, ratio99 = fmt.Sprintf("%.2fx", c.RatioP50), fmt.Sprintf("%.2fx", c.RatioP99)
		}
		lagged := "–"
		if c.ExclLagged != nil {
			lagged = fmt.Sprintf("%d/%d", *c.ExclLagged, c.Samples)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %.1f | %.1f | %s | %s | %.1f | %s | %s | %s | %.1f | %s | %s |\n",
			c.Runtime, c.Running, mode, c.Samples, c.CreateP50, c.CreateP99, ratio50, ratio99, c.RunningP50,
			opt(c.ExclLagP50), opt(c.ExclLagMax), lagged, c.StopP50, opt(c.ReleaseLagP50), opt(c.ReleaseLagMax))
	}
}

// printSummary writes the table, then the machine, the runtimes, the
// violations and the notes.
func printSummary(w io.Writer, rep *Report) {
	printTable(w, rep.Cells)
	m := rep.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs (%s), kernel %s, cgroup %s, %s; load average %s → %s; wall %.0f s\n",
		m.CPUs, m.Model, m.Kernel, m.Cgroups, m.GoVersion, m.LoadBefore, m.LoadAfter, m.WallSeconds)
	for _, r := range rep.Runtimes {
		var grow []string
		for _, n := range slices.Sorted(maps.Keys(r.GrowSeconds)) {
			grow = append(grow, fmt.Sprintf("%d in %.0f s", n, r.GrowSeconds[n]))
		}
		fmt.Fprintf(w, "%s %s: %.0f s; shared containers started: %s; %d plugin switches (runtime restarts) %s s\n",
			r.Name, r.Version, r.WallSeconds, strings.Join(grow, ", "), len(r.SwitchSeconds), fmtSeconds(r.SwitchSeconds))
	}
	if len(rep.Violations) > 0 {
		fmt.Fprintf(w, "\nINVARIANT VIOLATED (%d):\n", len(rep.Violations))
		for _, v := range rep.Violations {
			fmt.Fprintf(w, "  - %s\n", v)
		}
	} else {
		fmt.Fprintln(w, "\ninvariant held: after every pinning and release settled, no shared container's cpuset held the pinned core, and the pinned container held it alone")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func fmtSeconds(s []float64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.1f", v)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// writeJSON writes the report to path, making its directory.
func writeJSON(path string, rep *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
