package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		running  []int
		samples  int
		warmup   int
		out      string
		runtimes []string
		err      string
	}{
		{name: "defaults", running: []int{0, 50, 100, 200}, samples: 20, warmup: 1, out: "_output/bench-density.json",
			runtimes: []string{"containerd", "cri-o"}},
		{name: "smoke", args: []string{"-smoke"}, running: []int{20}, samples: 3, warmup: 0, out: "_output/bench-density-smoke.json",
			runtimes: []string{"containerd", "cri-o"}},
		{name: "smoke with explicit values", args: []string{"-smoke", "-n", "5", "-samples", "1", "-out", "x.json", "-runtimes", "cri-o"},
			running: []int{5}, samples: 1, warmup: 0, out: "x.json", runtimes: []string{"cri-o"}},
		{name: "levels sorted and deduplicated", args: []string{"-n", "400, 0,100,100"}, running: []int{0, 100, 400}, samples: 20, warmup: 1,
			out: "_output/bench-density.json", runtimes: []string{"containerd", "cri-o"}},
		{name: "bad level", args: []string{"-n", "10,x"}, err: `"x" is not a number`},
		{name: "negative level", args: []string{"-n", "-1"}, err: "not a number"},
		{name: "unknown mode", args: []string{"-modes", "noop,eventually"}, err: `unknown mode "eventually"`},
		{name: "unknown runtime", args: []string{"-runtimes", "docker"}, err: `unknown runtime "docker"`},
		{name: "no samples", args: []string{"-samples", "0"}, err: "at least 1"},
		{name: "stray argument", args: []string{"200"}, err: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.running, tt.running) || o.samples != tt.samples || o.warmup != tt.warmup || o.out != tt.out ||
				!slices.Equal(o.runtimes, tt.runtimes) {
				t.Errorf("got running %v samples %d warmup %d out %q runtimes %v", o.running, o.samples, o.warmup, o.out, o.runtimes)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	modes := []string{modeNoop, modeInResponse, modeAfterResponse}
	tests := []struct {
		level int
		want  []string
	}{
		{0, []string{modeNoop, modeInResponse, modeAfterResponse}},
		{1, []string{modeAfterResponse, modeInResponse, modeNoop}},
		{2, []string{modeNoop, modeInResponse, modeAfterResponse}},
	}
	for _, tt := range tests {
		if got := order(modes, tt.level); !slices.Equal(got, tt.want) {
			t.Errorf("order(level %d) = %v, want %v", tt.level, got, tt.want)
		}
	}
	if !slices.Equal(modes, []string{modeNoop, modeInResponse, modeAfterResponse}) {
		t.Errorf("order changed its argument: %v", modes)
	}
}

func TestSortCells(t *testing.T) {
	cells := []Cell{
		{Running: 50, Mode: modeAfterResponse}, {Running: 50, Mode: modeNoop}, {Running: 0, Mode: modeInResponse}, {Running: 50, Mode: modeInResponse},
	}
	sortCells(cells, []string{modeNoop, modeInResponse, modeAfterResponse})
	var got []string
	for _, c := range cells {
		got = append(got, c.Mode)
	}
	if want := []string{modeInResponse, modeNoop, modeInResponse, modeAfterResponse}; !slices.Equal(got, want) || cells[0].Running != 0 {
		t.Errorf("sorted: %v", cells)
	}
}

func TestEnough(t *testing.T) {
	o := options{samples: 20, minSamples: 5, cellTime: 30 * time.Second}
	tests := []struct {
		name    string
		o       options
		samples int
		took    time.Duration
		want    bool
	}{
		{"early", o, 10, 10 * time.Second, false},
		{"time up, too few", o, 4, time.Minute, false},
		{"time up, enough", o, 5, 30 * time.Second, true},
		{"no time limit", options{samples: 20, minSamples: 5}, 19, time.Hour, false},
		{"min above samples", options{samples: 3, minSamples: 5, cellTime: time.Second}, 3, time.Minute, true},
	}
	for _, tt := range tests {
		if got := enough(tt.o, tt.samples, tt.took); got != tt.want {
			t.Errorf("%s: enough = %v, want %v", tt.name, got, tt.want)
		}
	}
}
