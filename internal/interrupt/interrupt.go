// Package interrupt turns a terminal's Ctrl-C into an orderly clean-up for
// the project's long-running commands (make demo, make bench-density).
package interrupt

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// OnFirst cancels on the first SIGINT, SIGTERM or SIGHUP, printing what
// the clean-up does, and only says "please wait" to later ones, so the
// clean-up runs to its end. A closed pipe (make demo | head) no longer
// kills the process: writes then just fail.
func OnFirst(cancel func(), cleaning string) {
	signal.Ignore(syscall.SIGPIPE)
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		first := true
		for range sig {
			if first {
				fmt.Fprintf(os.Stderr, "\ninterrupted: %s...\n", cleaning)
				cancel()
				first = false
				continue
			}
			fmt.Fprintln(os.Stderr, "still cleaning up; please wait")
		}
	}()
}
