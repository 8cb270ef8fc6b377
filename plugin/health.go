package plugin

import (
	"fmt"
	"net/http"
)

// healthHandler serves /healthz, which answers while the process runs, and
// /readyz, which answers 200 only while coreguard is registered with the
// runtime and has synchronized its state from it (before that, containers
// are created without it). The DaemonSet's probes use them.
func (p *Plugin) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := p.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok: registered with the runtime and synchronized")
	})
	return mux
}

// notReady says why coreguard is not ready, or "" when it is.
func (p *Plugin) notReady() string {
	p.mu.Lock()
	connected := p.stub != nil
	p.mu.Unlock()
	switch {
	case !connected:
		return "not registered with the runtime (is NRI enabled, and its socket at " + p.opts.Socket + "?)"
	case !p.synced.Load():
		return "registered with the runtime, not synchronized yet"
	}
	return ""
}
