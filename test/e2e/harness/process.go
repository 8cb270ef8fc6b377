package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// start launches the runtime and waits until CRI reports it ready.
func (r *Runtime) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("%s already running", r.b.name())
	}
	fmt.Fprintf(r.log, "\n===== harness: starting %s %s =====\n", r.b.name(), time.Now().Format(time.RFC3339Nano))
	cmd := r.b.command(r)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.b.name(), err)
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
			return fmt.Errorf("%s exited during startup: %s\n%s", r.b.name(), r.cmd.ProcessState, r.LogTail(30))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := r.CRI.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil && runtimeReady(st, !r.opts.NoCNI) {
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

// runtimeReady: RuntimeReady and, when network is set, NetworkReady (the
// CNI config is loaded; without it every pod that is not host-network fails
// to start).
func runtimeReady(st *runtimeapi.StatusResponse, network bool) bool {
	ready := map[string]bool{}
	for _, c := range st.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	return ready[runtimeapi.RuntimeReady] && (!network || ready[runtimeapi.NetworkReady])
}

// Version asks the running runtime for its name and version through CRI
// (RuntimeName "containerd" / "cri-o").
func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return r.CRI.Version(ctx, &runtimeapi.VersionRequest{})
}

func (r *Runtime) version() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := r.Version(ctx)
	if err != nil {
		return r.b.name() + " (version unknown: " + err.Error() + ")"
	}
	return v.RuntimeName + " " + v.RuntimeVersion
}

// PID of the running runtime, 0 when stopped.
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop terminates the runtime (SIGTERM, SIGKILL after 10 s). Shims (conmon)
// and containers keep running, as on a real node when the runtime restarts.
func (r *Runtime) Stop() error {
	return r.stop(syscall.SIGTERM)
}

// Kill stops the runtime with SIGKILL (a crash, as far as plugins can tell).
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
	fmt.Fprintf(r.log, "\n===== harness: %s stopped (%s) =====\n", r.b.name(), r.cmd.ProcessState)
	r.cmd, r.done = nil, nil
	return nil
}

// Restart stops the runtime and starts it again with the same config and
// state; pods and containers survive, NRI plugins must reconnect.
func (r *Runtime) Restart() error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.start()
}

// Start starts the runtime again after Stop or Kill.
func (r *Runtime) Start() error { return r.start() }

// LogTail returns the last n lines of the runtime's log.
func (r *Runtime) LogTail(n int) string {
	b, err := os.ReadFile(r.LogPath)
	if err != nil {
		return "(no " + r.b.name() + " log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "----- " + r.b.name() + " log tail (" + r.LogPath + ") -----\n" + strings.Join(lines, "\n")
}
