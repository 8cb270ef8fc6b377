package harness

import (
	"bytes"
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

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cleanup runs from t.Cleanup; failures to tear down fail the test.
func (r *Runtime) cleanup() {
	if err := r.Close(); err != nil {
		r.t.Errorf("harness teardown: %v", err)
	}
}

// Close tears everything down: pods and containers through CRI (like kubelet
// would), the runtime, leftover shims (conmon), plugins and container processes, the
// test's cgroups, mounts under Dir, and Dir. It is idempotent.
func (r *Runtime) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.t != nil && r.t.Failed() {
		r.logf("%s", r.LogTail(80)) // the log goes with Dir below
	}
	var errs []error
	if r.PID() == 0 && r.started && r.Conn != nil {
		// The test left the runtime stopped: start it so CRI removes pods.
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
	errs = append(errs, killMatching(r.Dir), removeCgroupTree(r.CgroupRoot), unmountUnder(r.Dir))
	if r.log != nil {
		_ = r.log.Close()
	}
	if err := os.RemoveAll(r.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveAllPods stops and removes every sandbox (and so every container).
func (r *Runtime) RemoveAllPods(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := r.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := r.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", sb.Metadata.GetName(), err))
		}
		if _, err := r.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", sb.Metadata.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// ProcessesUsing lists pids whose command line mentions dir: shims (their
// -address), conmon, pre-installed NRI plugins, the runtime itself.
func ProcessesUsing(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if bytes.Contains(cmd, []byte(dir+"/")) || bytes.HasSuffix(bytes.TrimRight(cmd, "\x00"), []byte(dir)) {
			out = append(out, pid)
		}
	}
	return out
}

func killMatching(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := ProcessesUsing(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes using %s survive SIGKILL: %v", dir, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CgroupTree lists the directories of root and below in every hierarchy.
func CgroupTree(root string) ([]string, error) {
	tops, err := CgroupDirsOf(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out, nil
}

// removeCgroupTree kills what still runs in the tree and removes it,
// deepest directories first.
func removeCgroupTree(root string) error {
	if root == "" || root == "/" {
		return fmt.Errorf("refusing to remove cgroup root %q", root)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		dirs, err := CgroupTree(root)
		if err != nil {
			return err
		}
		if len(dirs) == 0 {
			return nil
		}
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		var last error
		for _, d := range dirs {
			for _, pid := range strings.Fields(readOr(filepath.Join(d, "cgroup.procs"))) {
				if n, err := strconv.Atoi(pid); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				last = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		if last == nil {
			continue // re-list to confirm
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// Leftovers reports anything of this Runtime still present after Close:
// processes, cgroup directories, mounts, files. Empty means clean.
func (r *Runtime) Leftovers() []string {
	var out []string
	for _, pid := range ProcessesUsing(r.Dir) {
		cmd := strings.ReplaceAll(readOr(fmt.Sprintf("/proc/%d/cmdline", pid)), "\x00", " ")
		out = append(out, fmt.Sprintf("process %d: %s", pid, cmd))
	}
	dirs, err := CgroupTree(r.CgroupRoot)
	if err != nil {
		out = append(out, "cgroups: "+err.Error())
	}
	for _, d := range dirs {
		out = append(out, "cgroup "+d)
	}
	mps, err := MountsUnder(r.Dir)
	if err != nil {
		out = append(out, "mounts: "+err.Error())
	}
	for _, m := range mps {
		out = append(out, "mount "+m)
	}
	if _, err := os.Stat(r.Dir); err == nil {
		out = append(out, "directory "+r.Dir)
	}
	return out
}
