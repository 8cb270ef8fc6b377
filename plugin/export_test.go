package plugin

import (
	"time"

	"github.com/coreguard/coreguard/cpuset"
)

// SetReassertEvery shortens the periodic checks for a test; the returned
// function restores them. Tests using it must not run in parallel.
func SetReassertEvery(d time.Duration) (restore func()) {
	old := reassertEvery
	reassertEvery = d
	return func() { reassertEvery = old }
}

// Holdings are the exclusive CPUs coreguard holds, by container ID.
func (p *Plugin) Holdings() map[string]cpuset.CPUSet {
	out := map[string]cpuset.CPUSet{}
	for _, al := range p.duties().pinning.Snapshot().Allocations {
		out[al.Owner] = al.CPUs
	}
	return out
}

// PretendOldRuntime makes the plugin treat the connected runtime as one
// whose NRI cannot take updates outside its requests (refresh.go).
// It waits for the connection, whose registration would otherwise set the
// runtime's own answer over this one.
func (p *Plugin) PretendOldRuntime() {
	for {
		p.mu.Lock()
		connected := p.stub != nil
		p.mu.Unlock()
		if connected {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.unsolicited.Store(false)
}

// TakesUnsolicited is takesUnsolicited.
var TakesUnsolicited = takesUnsolicited

// HealthAddress is where /healthz and /readyz are served now.
func (p *Plugin) HealthAddress() string { return p.health.address() }

// NRIEvents are the handlers whose latency is exported from the start.
var NRIEvents = nriEvents
