// Command workload is the only binary in the e2e test images. One static
// binary serves as pause image and as workload, picked by its first argument:
//
//	sleep          block until SIGTERM/SIGINT, then exit 0 (also the pause image)
//	burn N         spin N busy goroutines, each locked to its own OS thread
//	cat FILE...    print each file (e.g. /proc/self/status, cgroup files), then sleep
//	cpus           print Cpus_allowed_list of itself, then sleep
//
// Modes that print keep running afterwards so the container stays up and the
// test can read its cgroup files and /proc/PID/status while it is alive.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	mode := "sleep"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	args := os.Args[min(2, len(os.Args)):]
	switch mode {
	case "sleep":
	case "burn":
		n := 1
		if len(args) > 0 {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < 1 {
				fail("burn: want a positive thread count, got %q", args[0])
			}
			n = v
		}
		burn(n)
	case "cat":
		for _, f := range args {
			catFile(f)
		}
	case "cpus":
		fmt.Println("Cpus_allowed_list:", cpusAllowed())
	default:
		fail("unknown mode %q (want sleep, burn N, cat FILE..., cpus)", mode)
	}
	waitForSignal()
}

// waitForSignal blocks until the runtime stops the container; exiting 0 on
// SIGTERM keeps StopContainer fast (no 10 s SIGKILL grace period).
func waitForSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	os.Exit(0)
}

// burn starts n spinning goroutines, each on its own OS thread so CFS sees
// n runnable threads.
func burn(n int) {
	runtime.GOMAXPROCS(n + 1)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			x := 0
			for {
				x++
			}
		}()
	}
	fmt.Printf("burning %d threads\n", n)
}

func catFile(name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		fmt.Printf("==> %s: error: %v\n", name, err)
		return
	}
	fmt.Printf("==> %s\n%s", name, b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		fmt.Println()
	}
}

func cpusAllowed() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	fail("no Cpus_allowed_list in /proc/self/status")
	return ""
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "workload: "+format+"\n", a...)
	os.Exit(2)
}
