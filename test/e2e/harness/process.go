package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// start launches containerd and waits until CRI reports the runtime ready.
func (r *Runtime) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("containerd already running")
	}
	fmt.Fprintf(r.log, "\n===== harness: starting containerd %s =====\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(r.opts.BinDir, "containerd"), "--config", r.p.Config)
	// containerd finds containerd-shim-runc-v2 (and the shim runc) in PATH.
	cmd.Env = append(os.Environ(), "PATH="+r.opts.BinDir+":"+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if r.opts.OwnProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	if err := r.waitReady(done); err != nil {
		return err
	}
	r.started = true
	return nil
}

func (r *Runtime) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(r.opts.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("containerd exited during startup: %s\n%s", r.cmd.ProcessState, r.LogTail(30))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := r.CRI.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil && runtimeReady(st) {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("not ready: %v", st.GetStatus().GetConditions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("CRI not ready after %v (last error: %v)\n%s", r.opts.StartTimeout, last, r.LogTail(30))
}

// runtimeReady: RuntimeReady and NetworkReady (the CNI config is loaded;
// without it every pod that is not host-network fails to start).
func runtimeReady(st *runtimeapi.StatusResponse) bool {
	ready := map[string]bool{}
	for _, c := range st.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	return ready[runtimeapi.RuntimeReady] && ready[runtimeapi.NetworkReady]
}

// version asks the running containerd for its version through CRI.
func (r *Runtime) version() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := r.CRI.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "containerd (version unknown: " + err.Error() + ")"
	}
	return v.RuntimeName + " " + v.RuntimeVersion
}

// PID of the running containerd, 0 when stopped.
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop terminates containerd (SIGTERM, SIGKILL after 10 s). Shims and
// containers keep running, as on a real node when containerd restarts.
func (r *Runtime) Stop() error {
	return r.stop(syscall.SIGTERM)
}

// Kill stops containerd with SIGKILL (a crash, as far as plugins can tell).
func (r *Runtime) Kill() error {
	return r.stop(syscall.SIGKILL)
}

func (r *Runtime) stop(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	fmt.Fprintf(r.log, "\n===== harness: containerd stopped (%s) =====\n", r.cmd.ProcessState)
	r.cmd, r.done = nil, nil
	return nil
}

// Restart stops containerd and starts it again with the same config and
// state; pods and containers survive, NRI plugins must reconnect.
func (r *Runtime) Restart() error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.start()
}

// Start starts containerd again after Stop or Kill.
func (r *Runtime) Start() error { return r.start() }

// LogTail returns the last n lines of containerd's log.
func (r *Runtime) LogTail(n int) string {
	b, err := os.ReadFile(r.p.Log)
	if err != nil {
		return "(no containerd log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "----- containerd log tail (" + r.p.Log + ") -----\n" + strings.Join(lines, "\n")
}
