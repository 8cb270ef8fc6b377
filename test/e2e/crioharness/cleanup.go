package crioharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// cleanup runs from t.Cleanup; failures to tear down fail the test.
func (r *Runtime) cleanup() {
	if err := r.Close(); err != nil {
		r.t.Errorf("crioharness teardown: %v", err)
	}
}

// Close tears everything down: pods and containers through CRI (as kubelet
// would), CRI-O, then, as harness.Runtime.Close does (never called on
// Harness, whose process fields are empty), whatever still names Dir on its
// command line (conmon, pre-installed plugins), the test's cgroups, mounts
// under Dir (pinns' namespaces, shm) and Dir. Idempotent.
func (r *Runtime) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.t != nil && r.t.Failed() {
		r.logf("%s", r.LogTail(80))
	}
	t0 := time.Now()
	defer func() { r.logf("crioharness: torn down in %v", time.Since(t0).Round(time.Millisecond)) }()
	var errs []error
	if r.PID() == 0 && r.started && r.Conn != nil {
		// The test left CRI-O stopped: start it so CRI removes the pods.
		if err := r.start(); err != nil {
			errs = append(errs, fmt.Errorf("restart for teardown: %w", err))
		}
	}
	if r.PID() != 0 {
		errs = append(errs, r.RemoveAllPods(context.Background()))
	}
	errs = append(errs, r.Stop())
	if r.Conn != nil {
		_ = r.Conn.Close()
	}
	if r.log != nil {
		_ = r.log.Close()
	}
	if r.oldWd != "" {
		errs = append(errs, os.Chdir(r.oldWd))
	}
	errs = append(errs, killUsing(r.Dir), removeCgroupTree(r.CgroupRoot), unmountUnder(r.Dir), os.RemoveAll(r.Dir))
	return errors.Join(errs...)
}

// killUsing SIGKILLs what names dir on its command line (conmon,
// pre-installed plugins) and waits for it to go.
func killUsing(dir string) error {
	if len(dir) < len("/tmp/co") {
		return fmt.Errorf("refusing to kill processes naming %q", dir)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := harness.ProcessesUsing(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes naming %s survive SIGKILL: %v", dir, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeCgroupTree kills what still runs under root and removes its
// directories in every hierarchy, deepest first.
func removeCgroupTree(root string) error {
	if root == "" || root == "/" {
		return fmt.Errorf("refusing to remove cgroup root %q", root)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		dirs, err := harness.CgroupTree(root)
		if err != nil || len(dirs) == 0 {
			return err
		}
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		var last error
		for _, d := range dirs {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				last = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		if last != nil && time.Now().After(deadline) {
			return last
		}
		if last != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// unmountUnder lazily unmounts everything at or below dir (pinns'
// namespace mounts, shm).
func unmountUnder(dir string) error {
	mps, err := harness.MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("umount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveAllPods stops and removes every sandbox (and so every container).
func (r *Runtime) RemoveAllPods(ctx context.Context) error {
	return r.Harness.RemoveAllPods(ctx)
}

// Leftovers reports anything of this Runtime still present after Close:
// processes naming Dir, cgroup directories, mounts, files. Empty means clean.
func (r *Runtime) Leftovers() []string {
	return r.Harness.Leftovers()
}
