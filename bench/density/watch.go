package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreguard/coreguard/cpuset"
)

// readCpuset reads a cgroup cpuset file (cpuset.cpus on cgroup v1,
// cpuset.cpus.effective on v2): the CPUs the kernel lets the cgroup's
// processes run on.
func readCpuset(path string) (cpuset.CPUSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cpuset.CPUSet{}, err
	}
	s, err := cpuset.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return cpuset.CPUSet{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// poller waits for cpuset files to reach a state, reading them with read
// (readCpuset outside tests) and sleeping every between reads of a file
// that has not reached it yet.
type poller struct {
	read  func(path string) (cpuset.CPUSet, error)
	every time.Duration
	now   func() time.Time
	sleep func(time.Duration)
}

func newPoller(every time.Duration) poller {
	return poller{read: readCpuset, every: every, now: time.Now, sleep: time.Sleep}
}

// lag waits until every file satisfies ok, or deadline. It walks the files
// in order and reads each until it satisfies ok before moving to the next,
// so while it waits it reads one file per poll: a file that satisfied ok is
// taken to stay so (the caller checks them all again afterwards).
//
// The lag is the time from t0 to the read that saw the last file found
// failing ok satisfy it; 0 when every file satisfied ok at its first read.
// A file that changed after t0 but before its first read counts as never
// failing, so the lag may be short by up to one pass over the files (a few
// microseconds per file). settled is false when a file still failed ok at
// the deadline.
func (p poller) lag(files []string, ok func(cpuset.CPUSet) bool, t0, deadline time.Time) (lag time.Duration, settled bool, err error) {
	for _, f := range files {
		failed := false
		for {
			s, err := p.read(f)
			if err != nil {
				return 0, false, err
			}
			at := p.now()
			if ok(s) {
				if failed {
					lag = at.Sub(t0)
				}
				break
			}
			failed = true
			if at.After(deadline) {
				return lag, false, nil
			}
			p.sleep(p.every)
		}
	}
	return lag, true, nil
}

// failing lists the files that do not satisfy ok now, with their cpusets.
func (p poller) failing(files []string, ok func(cpuset.CPUSet) bool) ([]string, error) {
	var out []string
	for _, f := range files {
		s, err := p.read(f)
		if err != nil {
			return nil, err
		}
		if !ok(s) {
			out = append(out, fmt.Sprintf("%s: %s", f, s))
		}
	}
	return out, nil
}

// holds and lacks are the two states a shared container's cpuset moves
// between as a core is pinned and released.
func holds(cpu int) func(cpuset.CPUSet) bool {
	return func(s cpuset.CPUSet) bool { return s.Contains(cpu) }
}

func lacks(cpu int) func(cpuset.CPUSet) bool {
	return func(s cpuset.CPUSet) bool { return !s.Contains(cpu) }
}
