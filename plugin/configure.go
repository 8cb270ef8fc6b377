package plugin

import (
	"context"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/stub"

	"github.com/coreguard/coreguard/config"
)

// Configure is the first call after registration. A pre-installed plugin
// gets its configuration here, from the runtime's plugin config dir: it
// replaces the one from --config and takes full effect (apply). Without
// one, a pre-installed plugin runs on --config or the defaults; an external
// plugin reconnecting keeps the configuration in force. A configuration
// refused here runs the last good one instead (lastgood.go); with none
// kept, it fails registration, naming the field and value, and stops
// coreguard: retrying cannot fix it.
func (p *Plugin) Configure(_ context.Context, text, runtime, version string) (stub.EventMask, error) {
	defer p.metrics.observe("Configure", time.Now())
	p.log.WithField("runtime", runtime+" "+version).Info("configuring")
	provided := strings.TrimSpace(text) != ""
	if !provided && p.currentConfig() != nil {
		return 0, nil // an external plugin reconnecting keeps the configuration in force
	}
	cfg, err, origin := p.opts.Config, error(nil), ""
	if provided {
		cfg, err = config.Parse([]byte(text))
		origin = "runtime-provided configuration"
	}
	given, err := p.use(cfg, err, origin)
	if err != nil {
		p.mu.Lock()
		p.fatal = err
		p.mu.Unlock()
		p.log.WithError(err).Error("refusing configuration")
		return 0, err
	}
	if provided && given {
		p.log.Info("using the runtime-provided configuration")
	}
	return 0, nil
}
