// Package systemdbus runs a private dbus-daemon with a stand-in for
// systemd's manager on it, for end-to-end tests of what coreguard asks
// systemd over D-Bus (`coreguard enable-nri` restarting the runtime): these
// machines have no systemd as PID 1. The bus and the protocol are real
// (dbus-daemon, the client library coreguard ships); only the manager's
// RestartUnit is played, by restarting the test's private runtime and
// signalling the job's end as systemd does (JobRemoved).
package systemdbus

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	managerName  = "org.freedesktop.systemd1"
	managerPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface = "org.freedesktop.systemd1.Manager"
)

// busConfig lets every local connection own names and send anything.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// Bus is the private dbus-daemon and the stand-in manager on it.
type Bus struct {
	// Address is what DBUS_SYSTEM_BUS_ADDRESS names.
	Address string
	// Socket is the bus's unix socket (what a pod mounts as the system
	// bus's /run/dbus/system_bus_socket).
	Socket string
	mgr    *manager
}

// Start runs dbus-daemon and registers the stand-in manager, which
// restarts the named units with their functions. Both stop when the test
// ends.
func Start(t testing.TB, units map[string]func() error) *Bus {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not found (Debian package dbus-daemon; hack/install-e2e-deps.sh installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "cgbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf, socket := filepath.Join(dir, "bus.conf"), filepath.Join(dir, "bus")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, socket), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "dbus-daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("dbus-daemon's log:\n%s", b)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := readAddress(out)
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the private bus %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	m := &manager{conn: conn, units: units}
	if err := conn.Export(m, managerPath, managerIface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(managerName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s on the private bus: %v (reply %v)", managerName, err, reply)
	}
	t.Cleanup(m.wait)
	return &Bus{Address: addr, Socket: socket, mgr: m}
}

func readAddress(out interface{ Read([]byte) (int, error) }) (string, error) {
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			lines <- strings.TrimSpace(s.Text())
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if !ok || addr == "" {
			return "", errors.New("printed no address")
		}
		return addr, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("printed no address in 10s")
	}
}

// Restarts lists the units restarted so far, in order.
func (b *Bus) Restarts() []string {
	b.mgr.mu.Lock()
	defer b.mgr.mu.Unlock()
	return append([]string(nil), b.mgr.restarts...)
}

// manager is the stand-in for org.freedesktop.systemd1.Manager: only
// RestartUnit, the one method coreguard calls. Its exported methods are
// what the bus sees.
type manager struct {
	conn     *dbus.Conn
	units    map[string]func() error
	mu       sync.Mutex
	restarts []string
	jobs     uint32
	running  sync.WaitGroup
}

// RestartUnit queues the restart as systemd does: it answers with the
// job's path at once, and signals JobRemoved with the result when done.
func (m *manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	restart, ok := m.units[name]
	if !ok {
		return "", dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{"Unit " + name + " not found."})
	}
	m.mu.Lock()
	m.jobs++
	id := m.jobs
	m.restarts = append(m.restarts, name)
	m.mu.Unlock()
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		// The reply goes out first, as systemd's does.
		time.Sleep(10 * time.Millisecond)
		result := "done"
		if err := restart(); err != nil {
			result = "failed"
		}
		_ = m.conn.Emit(managerPath, managerIface+".JobRemoved", id, job, name, result)
	}()
	return job, nil
}

func (m *manager) wait() { m.running.Wait() }
