package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Logs returns the container's output so far, with the CRI log format
// ("<time> <stream> <P|F> <text>") stripped; partial lines are joined.
func (c *Container) Logs() (string, error) {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return "", fmt.Errorf("container %s log: %w", c.Name, err)
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) < 3 {
			continue
		}
		text := ""
		if len(parts) == 4 {
			text = parts[3]
		}
		out.WriteString(text)
		if parts[2] == "F" {
			out.WriteByte('\n')
		}
	}
	return out.String(), nil
}

// WaitForLog polls the log until it contains want and returns the log.
func (c *Container) WaitForLog(ctx context.Context, want string) (string, error) {
	for {
		logs, _ := c.Logs()
		if strings.Contains(logs, want) {
			return logs, nil
		}
		select {
		case <-ctx.Done():
			return logs, fmt.Errorf("container %s: %q not in log: %w\nlog so far:\n%s", c.Name, want, ctx.Err(), logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
