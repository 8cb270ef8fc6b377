// Package asynclog moves log writing off the container-creation path: the
// runtime waits for coreguard's answer, and formatting a log line costs as
// much as the decision it reports.
package asynclog

import "sync"

var (
	queue = make(chan func(), 1024)
	once  sync.Once
)

// Go runs f on one background goroutine, in the order calls were made.
// When the queue is full, f runs at once instead (ahead of what is queued):
// a log line may come early but is never dropped.
func Go(f func()) {
	start()
	select {
	case queue <- f:
	default:
		f()
	}
}

// Flush waits until everything queued before it has run (tests, exit).
// Its marker waits for room in the queue rather than running at once.
func Flush() {
	start()
	done := make(chan struct{})
	queue <- func() { close(done) }
	<-done
}

func start() {
	once.Do(func() {
		go func() {
			for f := range queue {
				f()
			}
		}()
	})
}
