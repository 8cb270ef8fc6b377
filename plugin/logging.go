package plugin

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"

	"github.com/coreguard/coreguard/config"
)

// logOutput keeps coreguard's log where the configuration in force says:
// its level, format and file (config.Log).
type logOutput struct {
	log  *logrus.Logger
	base io.Writer // where the log goes without a file: the logger's own output

	mu   sync.Mutex
	file *os.File
}

func newLogOutput(log *logrus.Logger, preinstalled bool) *logOutput {
	if preinstalled {
		// The runtime starts pre-installed plugins with no stdout or
		// stderr: log to the system journal as well (journalctl -t
		// coreguard). No syslog socket (a bare container): no journal.
		if hook, err := lsyslog.NewSyslogHook("", "", syslog.LOG_DAEMON|syslog.LOG_INFO, "coreguard"); err == nil {
			log.AddHook(hook)
		}
	}
	return &logOutput{log: log, base: log.Out}
}

// openLogFile opens log.file for appending ("" is no file).
func openLogFile(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log.file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log.file: %w", err)
	}
	return f, nil
}

func closeLogFile(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// set applies a (checked) log section, with its file already open.
func (o *logOutput) set(c config.Log, file *os.File) {
	if level, err := logrus.ParseLevel(c.Level); err == nil {
		o.log.SetLevel(level)
	}
	if c.Format == "json" {
		o.log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		o.log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	out := o.base
	if file != nil {
		out = io.MultiWriter(o.base, file)
	}
	o.log.SetOutput(out)
	o.mu.Lock()
	old := o.file
	o.file = file
	o.mu.Unlock()
	closeLogFile(old) // no longer written: SetOutput swapped it out under the logger's lock
}
