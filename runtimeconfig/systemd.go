package runtimeconfig

import (
	"context"
	"fmt"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// Systemd restarts units through systemd's manager on the system D-Bus
// (DBUS_SYSTEM_BUS_ADDRESS, by default /var/run/dbus/system_bus_socket),
// the way `systemctl restart` asks it.
type Systemd struct{}

// RestartUnit asks systemd to restart unit and waits for the job's result.
func (Systemd) RestartUnit(ctx context.Context, unit string) error {
	conn, err := sdbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connecting to systemd over the system D-Bus (is /var/run/dbus/system_bus_socket mounted?): %w", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return err
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd's restart job ended %q (systemctl status %s says why)", result, unit)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
