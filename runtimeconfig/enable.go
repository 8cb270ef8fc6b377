package runtimeconfig

import (
	"context"
	"fmt"
	"net"
	"time"
)

// The runtimes EnableNRI knows.
const (
	Containerd = "containerd"
	CRIO       = "crio"
)

// Runtimes lists the values of Options.Runtime.
var Runtimes = []string{Containerd, CRIO}

// Defaults: the paths and unit names distributions use.
const (
	DefaultContainerdConfig = "/etc/containerd/config.toml"
	DefaultCRIODropInDir    = "/etc/crio/crio.conf.d"
	DefaultTimeout          = 2 * time.Minute
)

// DefaultUnit is the systemd unit running the runtime.
func DefaultUnit(runtime string) string {
	if runtime == CRIO {
		return "crio.service"
	}
	return "containerd.service"
}

// Restarter restarts a systemd unit and returns once the restart job ended.
type Restarter interface {
	RestartUnit(ctx context.Context, unit string) error
}

// Options says which runtime to change and how.
type Options struct {
	Runtime          string // Containerd or CRIO
	ContainerdConfig string // containerd's config.toml
	CRIODropInDir    string // CRI-O's drop-in directory
	Socket           string // the NRI socket the runtime listens on when NRI is on
	Unit             string // the runtime's systemd unit
	// Restart restarts Unit through Restarter after a change, and waits up
	// to Timeout for the NRI socket. Without it the caller restarts.
	Restart   bool
	Restarter Restarter
	Timeout   time.Duration
	// Logf reports each step.
	Logf func(format string, args ...any)
}

// EnableNRI makes the runtime serve NRI on Socket. A runtime that already
// accepts connections there is left alone (no file written, no restart),
// so running it at every start of coreguard's pod costs nothing once done.
// Otherwise the runtime's config is patched and, with Restart, the runtime
// restarted: its containers keep running (their shims and conmons are
// separate processes), creations wait until it is back. The runtime is
// restarted only after a change: a config that already turns NRI on while
// no socket is up is an error to look into, and restarting the runtime at
// every retry of a failing pod would harm the node.
func EnableNRI(ctx context.Context, o Options) error {
	if socketUp(o.Socket) {
		o.Logf("NRI is on: %s accepts plugins; nothing to change", o.Socket)
		return nil
	}
	o.Logf("NRI is off: nothing accepts connections on %s", o.Socket)
	switch o.Runtime {
	case Containerd:
		ch, err := PatchContainerd(o.ContainerdConfig)
		if err != nil {
			return err
		}
		if !ch.Changed {
			return fmt.Errorf("%s already turns NRI on, yet nothing accepts connections on %s: restart %s if the file changed since it started, else its socket_path points elsewhere (coreguard restarts the runtime only after changing its config)", o.ContainerdConfig, o.Socket, o.Unit)
		}
		for _, why := range ch.Why {
			o.Logf("%s: %s", o.ContainerdConfig, why)
		}
		if ch.Changed {
			o.Logf("%s: NRI turned on, external plugins accepted", o.ContainerdConfig)
		}
		if ch.Backup != "" {
			o.Logf("%s: the file as it was", ch.Backup)
		}
	case CRIO:
		path, changed, err := WriteCRIODropIn(o.CRIODropInDir)
		if err != nil {
			return err
		}
		if !changed {
			return fmt.Errorf("%s already turns NRI on, yet nothing accepts connections on %s: restart %s if the file changed since it started, else nri_listen points elsewhere or a drop-in sorting after it turns NRI off (coreguard restarts the runtime only after changing its config)", path, o.Socket, o.Unit)
		}
		o.Logf("%s: written (enable_nri = true)", path)
	default:
		return fmt.Errorf("runtime %q: want %s or %s", o.Runtime, Containerd, CRIO)
	}
	if !o.Restart {
		o.Logf("restart %s for NRI to come up", o.Unit)
		return nil
	}
	o.Logf("restarting %s", o.Unit)
	if err := o.Restarter.RestartUnit(ctx, o.Unit); err != nil {
		return fmt.Errorf("restarting %s: %w", o.Unit, err)
	}
	if err := waitSocket(ctx, o.Socket, o.Timeout); err != nil {
		return fmt.Errorf("%s restarted, but %w", o.Unit, err)
	}
	o.Logf("NRI is on: %s accepts plugins", o.Socket)
	return nil
}

// socketUp is true when something accepts connections on the unix socket.
func socketUp(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !socketUp(path) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing accepts connections on %s after %s: does the runtime listen elsewhere (containerd's socket_path, CRI-O's nri_listen)? Its log says why", path, timeout)
		case <-tick.C:
		}
	}
	return nil
}
