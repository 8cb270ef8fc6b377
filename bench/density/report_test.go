package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestQuantile(t *testing.T) {
	twenty := durations(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
	tests := []struct {
		name string
		d    []time.Duration
		q    float64
		want time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", durations(7), 0.99, 7 * time.Millisecond},
		{"median of 20, unsorted", twenty, 0.5, 10 * time.Millisecond},
		{"p99 of 20 is the slowest", twenty, 0.99, 20 * time.Millisecond},
		{"max", twenty, 1, 20 * time.Millisecond},
		{"median of 3", durations(3, 1, 2), 0.5, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.d, tt.q); got != tt.want {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestSummarizeAndRatios(t *testing.T) {
	mk := func(create, lag int) sample {
		return sample{create: time.Duration(create) * time.Millisecond, running: time.Duration(create+100) * time.Millisecond,
			exclLag: time.Duration(lag) * time.Millisecond, releaseLag: time.Duration(2*lag) * time.Millisecond}
	}
	cells := []Cell{
		summarize("containerd", 50, modeNoop, []sample{mk(10, 0), mk(12, 0), mk(11, 0)}),
		summarize("containerd", 50, modeInResponse, []sample{mk(40, 0), mk(44, 0), mk(42, 0)}),
		summarize("containerd", 50, modeAfterResponse, []sample{mk(20, 0), mk(22, 30), mk(21, 50)}),
		summarize("cri-o", 50, modeInResponse, []sample{mk(40, 0)}), // no floor: no ratio
	}
	fillRatios(cells)
	tests := []struct {
		name       string
		c          Cell
		create     float64
		ratio      float64
		lag, max   float64
		lagged     int
		noLagField bool
	}{
		{name: "floor", c: cells[0], create: 11, ratio: 1, noLagField: true},
		{name: "in-response", c: cells[1], create: 42, ratio: 42.0 / 11},
		{name: "after-response", c: cells[2], create: 21, ratio: 21.0 / 11, lag: 30, max: 50, lagged: 2},
		{name: "no floor", c: cells[3], create: 40, ratio: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if c.CreateP50 != tt.create || c.RunningP50 != tt.create+100 {
				t.Errorf("create p50 %v, running p50 %v; want %v, %v", c.CreateP50, c.RunningP50, tt.create, tt.create+100)
			}
			if diff := c.RatioP50 - tt.ratio; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("ratio %v, want %v", c.RatioP50, tt.ratio)
			}
			if tt.noLagField {
				if c.ExclLagP50 != nil || c.ReleaseLagMax != nil || c.ExclLagged != nil {
					t.Errorf("the floor has lags: %+v", c)
				}
				return
			}
			if *c.ExclLagP50 != tt.lag || *c.ExclLagMax != tt.max || *c.ReleaseLagMax != 2*tt.max || *c.ExclLagged != tt.lagged {
				t.Errorf("lag p50 %v max %v release max %v lagged %d; want %v %v %v %d",
					*c.ExclLagP50, *c.ExclLagMax, *c.ReleaseLagMax, *c.ExclLagged, tt.lag, tt.max, 2*tt.max, tt.lagged)
			}
		})
	}
}

func TestReportOutput(t *testing.T) {
	lag := 3.5
	lagged := 1
	rep := &Report{
		Machine:  Machine{CPUs: 2, Model: "AMD EPYC", Kernel: "6.1.0", Cgroups: "v1", LoadBefore: "1.00 1.00 1.00", LoadAfter: "2.00 1.50 1.00"},
		Runtimes: []RuntimeRun{{Name: "containerd", Version: "2.4.2", GrowSeconds: map[int]float64{50: 20, 0: 0}, SwitchSeconds: []float64{1.5}}},
		Cells: []Cell{
			{Runtime: "containerd", Running: 50, Mode: modeNoop, Samples: 3, CreateP50: 11},
			{Runtime: "containerd", Running: 50, Mode: modeAfterResponse, Effective: modeInResponse, Samples: 3, CreateP50: 22, RatioP50: 2, RatioP99: 3,
				ExclLagP50: &lag, ExclLagMax: &lag, ExclLagged: &lagged, ReleaseLagP50: &lag, ReleaseLagMax: &lag},
		},
		Violations: []string{"containerd: a shared container holds CPU 1"},
	}
	var buf bytes.Buffer
	printSummary(&buf, rep)
	out := buf.String()
	for _, want := range []string{
		"| containerd | 50 | noop | 3 | 11.0 | 0.0 | – | – | 0.0 | – | – | – | 0.0 | – | – |",
		"| containerd | 50 | after-response (ran in-response) | 3 | 22.0 | 0.0 | 2.00x | 3.00x | 0.0 | 3.5 | 3.5 | 1/3 | 0.0 | 3.5 | 3.5 |",
		"load average 1.00 1.00 1.00 → 2.00 1.50 1.00",
		"shared containers started: 0 in 0 s, 50 in 20 s",
		"INVARIANT VIOLATED (1)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	path := filepath.Join(t.TempDir(), "sub", "density.json")
	if err := writeJSON(path, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Cells) != 2 || back.Cells[1].ExclLagP50 == nil || back.Cells[0].ExclLagP50 != nil {
		t.Errorf("JSON round trip: %+v", back.Cells)
	}
	if !strings.Contains(string(b), `"exclusivityLagP50Ms": 3.5`) || strings.Count(string(b), "exclusivityLagP50Ms") != 1 {
		t.Errorf("JSON: the floor must have no lag fields, coreguard must:\n%s", b)
	}
}
