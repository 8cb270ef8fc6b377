package coreguard

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SyncedMsg is what coreguard logs after every Synchronize: the sign that
// it is connected and has rebuilt its state from the runtime.
const SyncedMsg = "synchronized with the runtime"

// Options for one coreguard process in external mode.
type Options struct {
	Bin       string // default: Build()
	Socket    string // the runtime's NRI socket
	SysfsRoot string // generated topology ("" = the plugin's default, /sys)
	Config    string // YAML text for --config ("" = none)
	Dir       string // holds the config file and the log; must exist
	// MetricsAddress is passed as --metrics-address ("" = metrics off).
	// "127.0.0.1:0" picks a free port on every start; MetricsURL reads the
	// one taken from the log.
	MetricsAddress string
	// OwnProcessGroup keeps a terminal's Ctrl-C away from coreguard, so
	// the caller stops it in order (the demo).
	OwnProcessGroup bool
	// SyncTimeout bounds the wait for the first Synchronize. Default 15 s.
	SyncTimeout time.Duration
}

// Process is a running (or killed) coreguard. Start and Restart wait until
// it has synchronized with the runtime.
type Process struct {
	opts    Options
	LogPath string // stdout+stderr of every run, appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs `coreguard run` dialing opts.Socket and waits for its first
// Synchronize. On error the process is already stopped.
func Start(opts Options) (*Process, error) {
	if opts.Bin == "" {
		bin, err := Build()
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 15 * time.Second
	}
	p := &Process{opts: opts, LogPath: filepath.Join(opts.Dir, "coreguard.log")}
	if err := p.start(); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Process) args() ([]string, error) {
	args := []string{"run", "--socket", p.opts.Socket, "--log-level", "debug"}
	if p.opts.SysfsRoot != "" {
		args = append(args, "--sysfs-root", p.opts.SysfsRoot)
	}
	if p.opts.MetricsAddress != "" {
		args = append(args, "--metrics-address", p.opts.MetricsAddress)
	}
	if p.opts.Config != "" {
		path := filepath.Join(p.opts.Dir, "coreguard.yaml")
		if err := os.WriteFile(path, []byte(p.opts.Config), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config", path)
	}
	return args, nil
}

func (p *Process) start() error {
	args, err := p.args()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	fmt.Fprintf(log, "\n===== e2e: starting coreguard %s =====\n", time.Now().Format(time.RFC3339Nano))
	before := p.Syncs()
	cmd := exec.Command(p.opts.Bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: an external plugin retries forever, so it must not
	// outlive a test binary killed by `go test -timeout`.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: p.opts.OwnProcessGroup}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start coreguard: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return p.WaitSyncs(before+1, p.opts.SyncTimeout)
}

// Syncs counts the Synchronize calls coreguard has logged so far.
func (p *Process) Syncs() int { return CountSyncs(p.LogPath) }

// WaitSyncs waits until coreguard has logged n Synchronize calls.
func (p *Process) WaitSyncs(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for p.Syncs() < n {
		if !p.Running() {
			return fmt.Errorf("coreguard exited before synchronizing (%d of %d):\n%s", p.Syncs(), n, p.LogTail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coreguard synchronized %d times, want %d, after %v:\n%s", p.Syncs(), n, timeout, p.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid of the current process, 0 when none.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL (a crash: no goodbye to the runtime) and waits.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM (a clean exit), SIGKILL after 5 s.
func (p *Process) Stop() { p.signal(syscall.SIGTERM) }

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts coreguard again after Kill or Stop and waits for its
// Synchronize.
func (p *Process) Restart() error {
	if p.Running() {
		return errors.New("coreguard still running")
	}
	if err := p.start(); err != nil {
		p.Kill()
		return err
	}
	return nil
}

// LogTail returns the last n lines of coreguard's log.
func (p *Process) LogTail(n int) string { return logTail(p.LogPath, n) }

// LogFile is where coreguard's output goes.
func (p *Process) LogFile() string { return p.LogPath }

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no coreguard log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "----- coreguard log tail (" + path + ") -----\n" + strings.Join(lines, "\n")
}

// CountSyncs counts the Synchronize calls logged in a coreguard log.
func CountSyncs(logPath string) int {
	b, _ := os.ReadFile(logPath)
	return strings.Count(string(b), SyncedMsg)
}

// metricsLine is what coreguard logs once its metrics listener is up, e.g.
// level=info msg="serving metrics on /metrics" address="127.0.0.1:40123".
var metricsLine = regexp.MustCompile(`msg="serving metrics on /metrics" address="?([^"\s]+)"?`)

// MetricsURL is the /metrics URL of the latest start, from its log line
// (logged before Synchronize, so it is there once Start or Restart has
// returned).
func (p *Process) MetricsURL() (string, error) {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "", err
	}
	runs := strings.Split(string(b), "===== e2e: starting coreguard")
	m := metricsLine.FindStringSubmatch(runs[len(runs)-1])
	if m == nil {
		return "", fmt.Errorf("coreguard logged no metrics address (MetricsAddress %q):\n%s", p.opts.MetricsAddress, p.LogTail(20))
	}
	return "http://" + m[1] + "/metrics", nil
}
