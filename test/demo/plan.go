package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// planRequests are the dry-run requests on the big simulated machine: two
// odd ones kubelet would refuse around an even one it would accept.
var planRequests = []int{5, 4, 3}

// printPlan runs `coreguard plan` on the 80-CPU tree (no runtime involved)
// and says what kubelet would do with the same requests.
func printPlan(ctx context.Context, w io.Writer, bin, root string) error {
	fmt.Fprintln(w, "kubelet (static policy, full-pcpus-only, 2 threads per core) with the same requests:")
	for i, n := range planRequests {
		verdict := fmt.Sprintf("%d exclusive CPUs on whole cores", n)
		if n%2 != 0 {
			verdict = fmt.Sprintf("SMTAlignmentError: %d is not a multiple of 2; the pod never starts", n)
		}
		fmt.Fprintf(w, "#%d  %3d CPUs  %s\n", i+1, n, verdict)
	}
	fmt.Fprintln(w)
	args := []string{"plan", "--sysfs-root", root, "--reserved", "0,40"}
	for _, n := range planRequests {
		args = append(args, strconv.Itoa(n))
	}
	fmt.Fprintf(w, "coreguard %s:\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil // a request was not met: shown in the output
	}
	return err
}
