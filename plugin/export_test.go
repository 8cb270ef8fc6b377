package plugin

import "time"

// SetReassertEvery shortens the periodic checks for a test; the returned
// function restores them. Tests using it must not run in parallel.
func SetReassertEvery(d time.Duration) (restore func()) {
	old := reassertEvery
	reassertEvery = d
	return func() { reassertEvery = old }
}
