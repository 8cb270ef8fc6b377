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
// gets its configuration here, from the runtime's plugin config dir; it
// replaces the one from --config. A bad configuration fails registration,
// naming the field and value, and stops coreguard: retrying cannot fix it.
func (p *Plugin) Configure(_ context.Context, text, runtime, version string) (stub.EventMask, error) {
	defer p.metrics.observe("Configure", time.Now())
	p.log.WithField("runtime", runtime+" "+version).Info("configuring")
	if strings.TrimSpace(text) == "" {
		return 0, nil
	}
	cfg, err := config.Parse([]byte(text))
	if err == nil {
		err = p.apply(cfg)
	}
	if err != nil {
		err = fmt.Errorf("runtime-provided configuration: %w", err)
		p.mu.Lock()
		p.fatal = err
		p.mu.Unlock()
		p.log.WithError(err).Error("refusing configuration")
		return 0, err
	}
	p.log.Info("using the runtime-provided configuration")
	return 0, nil
}
