package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cpuset"
)

// fakeFiles replays, per file, the cpusets successive reads return (the
// last one repeats), on a clock that advances a fixed step per read and
// by the poll interval per sleep.
type fakeFiles struct {
	seq   map[string][]string
	reads map[string]int
	clock time.Time
	step  time.Duration
}

func (f *fakeFiles) poller(every time.Duration) poller {
	return poller{
		read: func(path string) (cpuset.CPUSet, error) {
			f.clock = f.clock.Add(f.step)
			seq := f.seq[path]
			i := min(f.reads[path], len(seq)-1)
			f.reads[path]++
			return cpuset.Parse(seq[i])
		},
		every: every,
		now:   func() time.Time { return f.clock },
		sleep: func(d time.Duration) { f.clock = f.clock.Add(d) },
	}
}

func TestPollerLag(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const step, every = 10 * time.Microsecond, 250 * time.Microsecond
	tests := []struct {
		name        string
		seq         map[string][]string // a, b, c in order
		ok          func(cpuset.CPUSet) bool
		deadline    time.Duration
		wantLag     time.Duration
		wantSettled bool
		wantReads   int
	}{
		{name: "all moved already: no lag", ok: lacks(1), deadline: time.Second, wantSettled: true, wantReads: 3,
			seq: map[string][]string{"a": {"0"}, "b": {"0"}, "c": {"0"}}},
		{name: "last file moves after two polls", ok: lacks(1), deadline: time.Second, wantSettled: true, wantReads: 5,
			seq:     map[string][]string{"a": {"0"}, "b": {"0"}, "c": {"0-1", "0-1", "0"}},
			wantLag: 5*step + 2*every},
		{name: "first file waited on, the rest moved meanwhile", ok: lacks(1), deadline: time.Second, wantSettled: true, wantReads: 5,
			seq:     map[string][]string{"a": {"0-1", "0-1", "0"}, "b": {"0"}, "c": {"0"}},
			wantLag: 3*step + 2*every},
		{name: "release: back on the core", ok: holds(1), deadline: time.Second, wantSettled: true, wantReads: 4,
			seq:     map[string][]string{"a": {"0-1"}, "b": {"0", "0-1"}, "c": {"0-1"}},
			wantLag: 3*step + every},
		{name: "never moves: not settled at the deadline", ok: lacks(1), deadline: time.Millisecond, wantSettled: false,
			seq:     map[string][]string{"a": {"0"}, "b": {"0-1"}, "c": {"0"}},
			wantLag: 0, wantReads: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeFiles{seq: tt.seq, reads: map[string]int{}, clock: t0, step: step}
			lag, settled, err := f.poller(every).lag([]string{"a", "b", "c"}, tt.ok, t0, t0.Add(tt.deadline))
			if err != nil {
				t.Fatal(err)
			}
			if lag != tt.wantLag || settled != tt.wantSettled {
				t.Errorf("lag %v settled %v, want %v %v", lag, settled, tt.wantLag, tt.wantSettled)
			}
			reads := 0
			for _, n := range f.reads {
				reads += n
			}
			if tt.wantReads >= 0 && reads != tt.wantReads {
				t.Errorf("%d reads, want %d", reads, tt.wantReads)
			}
		})
	}
}

func TestFailingAndReadCpuset(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"a": "0\n", "b": "0-1\n", "c": "1\n", "bad": "x\n"}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(dir, n))
		}
		return out
	}
	p := newPoller(time.Millisecond)
	tests := []struct {
		name    string
		files   []string
		ok      func(cpuset.CPUSet) bool
		want    []string
		wantErr bool
	}{
		{name: "lacks 1", files: path("a", "b", "c"), ok: lacks(1), want: []string{path("b")[0] + ": 0-1", path("c")[0] + ": 1"}},
		{name: "holds 1", files: path("a", "b", "c"), ok: holds(1), want: []string{path("a")[0] + ": 0"}},
		{name: "none", files: nil, ok: holds(1)},
		{name: "unparsable", files: path("bad"), ok: holds(1), wantErr: true},
		{name: "missing", files: path("gone"), ok: holds(1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.failing(tt.files, tt.ok)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failing = %q, want %q", got, tt.want)
			}
		})
	}
}
