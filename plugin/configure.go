package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/stub"

	"github.com/coreguard/coreguard/config"
)

// Configure is the first call after registration. A pre-installed plugin
// gets its configuration here, from the runtime's plugin config dir: it
// replaces the one from --config and takes full effect (apply). Without
// one, a pre-installed plugin runs on --config or the defaults; an external
// plugin reconnecting keeps the configuration in force. A bad configuration
// fails registration, naming the field and value, and stops coreguard:
// retrying cannot fix it.
func (p *Plugin) Configure(_ context.Context, text, runtime, version string) (stub.EventMask, error) {
	defer p.metrics.observe("Configure", time.Now())
	p.log.WithField("runtime", runtime+" "+version).Info("configuring")
	var err error
	cfg := p.opts.Config
	provided := strings.TrimSpace(text) != ""
	switch {
	case provided:
		cfg, err = config.Parse([]byte(text))
	case p.currentConfig() != nil:
		return 0, nil
	}
	if err == nil {
		err = p.apply(cfg)
	}
	if err != nil {
		if provided {
			err = fmt.Errorf("runtime-provided configuration: %w", err)
		}
		p.mu.Lock()
		p.fatal = err
		p.mu.Unlock()
		p.log.WithError(err).Error("refusing configuration")
		return 0, err
	}
	if provided {
		p.log.Info("using the runtime-provided configuration")
	}
	return 0, nil
}
