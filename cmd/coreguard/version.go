package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0".
var version = ""

func versionCommand() command {
	return command{
		name:    "version",
		short:   "Print coreguard's version.",
		summary: "Print coreguard's version, Go version and platform.",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(args []string, stdout, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				fmt.Fprintf(stdout, "coreguard %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			}
		},
	}
}

// buildVersion is the -X version, else the module version or VCS revision
// the Go toolchain stamped into the binary.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
