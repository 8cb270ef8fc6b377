package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/config"
)

// A configuration refused at start (a bad edit rolled out, then the runtime
// or coreguard restarted) must not turn the guard off. coreguard keeps the
// last configuration it ran with, and runs on it when the one it is given is
// refused, saying why in its log and in coreguard_config_rejected. With none
// kept, it refuses to start, as before.

// lastGoodName is the file kept in the state dir.
const lastGoodName = "last-good.yaml"

// lastGoodPath is where the last good configuration is kept: in StateDir,
// or for a pre-installed coreguard, which is given no flags, beside its
// executable in the runtime's plugin dir (as a hidden, non-executable file
// the runtime does not take for a plugin). "" keeps none.
func (p *Plugin) lastGoodPath() string {
	if p.opts.StateDir != "" {
		return filepath.Join(p.opts.StateDir, lastGoodName)
	}
	if !Preinstalled() {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), "."+filepath.Base(exe)+"."+lastGoodName)
}

// use makes the configuration given (cfg, or the error reading it) the one
// in force; when it is refused, the last good one, if any, is used instead
// (given says which). origin names where it came from in errors. The error
// is the given configuration's, returned only when nothing runs.
func (p *Plugin) use(cfg *config.Config, readErr error, origin string) (given bool, _ error) {
	err := readErr
	if err == nil {
		if err = p.apply(cfg); err == nil {
			p.saveLastGood(cfg)
			p.metrics.setConfigRejected(false)
			return true, nil
		}
	}
	if origin != "" {
		err = fmt.Errorf("%s: %w", origin, err)
	}
	path := p.lastGoodPath()
	if path == "" {
		return false, err
	}
	last, lerr := config.Load(path)
	if lerr == nil {
		lerr = p.apply(last)
	}
	if lerr != nil {
		if !errors.Is(lerr, fs.ErrNotExist) {
			p.log.WithError(lerr).Warn("the last good configuration cannot be used either")
		}
		return false, err
	}
	p.metrics.setConfigRejected(true)
	p.log.WithError(err).WithField("lastGood", path).
		Error("refusing the configuration given: running on the last good configuration until a good one is given (coreguard config FILE checks one)")
	return false, nil
}

// saveLastGood keeps cfg (as given, before command-line overrides) for use.
func (p *Plugin) saveLastGood(cfg *config.Config) {
	path := p.lastGoodPath()
	if path == "" {
		return
	}
	err := func() error {
		text, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append([]byte("# the last configuration coreguard ran with, kept to run on when a new one is refused\n"), text...), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}()
	if err != nil {
		p.log.WithError(err).WithField("lastGood", path).Warn("cannot keep the configuration in force as the last good one")
	}
}
