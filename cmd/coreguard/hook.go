package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coreguard/coreguard/plugin/admission"
)

// stdin is what the hook reads the container's state from (tests swap it).
var stdin io.Reader = os.Stdin

// patterns is a repeatable string flag.
type patterns []string

func (p *patterns) String() string     { return strings.Join(*p, ",") }
func (p *patterns) Set(v string) error { *p = append(*p, v); return nil }

func hookCommand() command {
	return command{
		name:     admission.HookCommand,
		internal: true,
		short:    "The OCI hook coreguard adds to containers NRI cannot clear (run by the runtime).",
		summary: "Run by the OCI runtime as a createRuntime hook that coreguard's admission adds to containers\n" +
			"whose privilege NRI cannot show (privileged_without_host_devices with a volume at /sys). Reads\n" +
			"the container's state on stdin and the spec in its bundle, and fails (exit 1, the refusal on\n" +
			"stderr, which the runtime passes on) when the spec is privileged: CAP_SYS_ADMIN and /proc/sys\n" +
			"writable. The flags only name the container and the allowed namespaces in the message.",
		setup: func(fs *flag.FlagSet) runFunc {
			var req admission.HookRequest
			fs.StringVar(&req.Namespace, "namespace", "", "the pod's namespace")
			fs.StringVar(&req.Pod, "pod", "", "the pod's name")
			fs.StringVar(&req.Container, "container", "", "the container's name")
			fs.Var((*patterns)(&req.Allowed), "allowed", "a namespace pattern allowed privileged containers (repeatable)")
			return func(args []string, _, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				return admission.RunHook(req, stdin)
			}
		},
	}
}
