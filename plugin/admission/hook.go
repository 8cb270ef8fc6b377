package admission

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/internal/hostfile"
)

// HookCommand is the coreguard subcommand the spec-check hook runs.
const HookCommand = "hook"

// hookTimeout bounds the hook (seconds): it reads one file.
const hookTimeout = 10

// Hook returns the createRuntime hook that checks the container's final
// spec, for a container that NRI's view cannot clear of being privileged
// in a namespace not allowed privileged containers; nil when none is
// needed or coreguard has no binary the runtime can run (SetHookBinary).
// Only enforce mode adds it: the hook refuses, it cannot count or log.
func (c *Checker) Hook(pod *api.PodSandbox, ctr *api.Container) *api.Hook {
	if c.hookBinary == "" || c.cfg.Mode != config.AdmissionEnforce ||
		c.cfg.Allows(string(Privileged), pod.GetNamespace()) || clearedByNRI(ctr) {
		return nil
	}
	args := []string{filepath.Base(c.hookBinary), HookCommand,
		"--namespace", pod.GetNamespace(), "--pod", pod.GetName(), "--container", ctr.GetName()}
	for _, p := range c.cfg.Allowed(string(Privileged)) {
		args = append(args, "--allowed", p)
	}
	return &api.Hook{Path: c.hookBinary, Args: args, Timeout: api.Int(hookTimeout)}
}

// SetHookBinary names the coreguard binary, by its path on the host, that
// runtimes run as the spec-check hook ("" adds no hook).
func (c *Checker) SetHookBinary(path string) { c.hookBinary = path }

// HookRequest is what Hook passes the hook on its command line.
type HookRequest struct {
	Namespace, Pod, Container string
	Allowed                   []string // privileged's allowed patterns
}

// maxSpec bounds the config.json read: real ones are tens of kilobytes.
const maxSpec = 16 << 20

// RunHook is the hook's work: it reads the container's state (OCI hooks
// get it on stdin), then the spec in its bundle, and returns the refusal
// when the spec is privileged.
func RunHook(req HookRequest, state io.Reader) error {
	var st specs.State
	if err := json.NewDecoder(io.LimitReader(state, maxSpec)).Decode(&st); err != nil {
		return fmt.Errorf("reading the container state on stdin: %w", err)
	}
	if st.Bundle == "" {
		return fmt.Errorf("the container state on stdin names no bundle")
	}
	path := filepath.Join(st.Bundle, "config.json")
	data, err := hostfile.Read(path, maxSpec)
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	signals := SpecSignals(&spec)
	if signals == nil {
		return nil
	}
	return fmt.Errorf("%s", message(req.Namespace, req.Pod, req.Container,
		[]Finding{{Kind: Privileged, Signals: signals}}, func(Kind) []string { return req.Allowed }))
}
