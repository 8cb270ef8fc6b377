// Package config is coreguard's configuration: one YAML document, read
// strictly (an unknown or repeated field is an error), with every field
// checked at start so a bad value is refused before anything runs.
//
// Field names follow kubelet's where the concept is kubelet's
// (reservedSystemCPUs). Every default is written next to its field with
// the reason for it.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/kernel"
)

// Config is the whole configuration.
type Config struct {
	// ReservedSystemCPUs are kept for system daemons and shared containers
	// and never pinned (kubelet's field, same list format). Default: none,
	// as kubelet; a list that splits a core is widened to whole cores.
	ReservedSystemCPUs string `json:"reservedSystemCPUs,omitempty"`
	// OddCPUs: round-up (default), isolate or reject; see cpuset/alloc.
	OddCPUs alloc.OddCPUs `json:"oddCPUs,omitempty"`
	// IsolatedCPUs: exclusive-only (default), exclude or ignore.
	IsolatedCPUs alloc.IsolatedCPUs `json:"isolatedCPUs,omitempty"`
	// OnExhaustion: what happens to a container that qualifies for exclusive
	// CPUs when not enough whole cores are free. Default reject: the
	// container fails to be created with an error naming what is free,
	// which kubelet retries, so the pod starts once cores free up and is
	// never silently run unpinned.
	OnExhaustion Exhaustion `json:"onExhaustion,omitempty"`
	// SharedPoolUpdates: how every shared container's cpuset follows the
	// shared pool when a pinning shrinks it (or a release grows it); one
	// of SharedPoolUpdatesValues, the first the default. docs/config.md
	// has the measurements behind the default.
	SharedPoolUpdates string `json:"sharedPoolUpdates,omitempty"`
	// StartTimeout is how long a container coreguard answered may take to
	// start. Runtimes tell plugins nothing when a creation fails after
	// their answer (a later plugin refuses it, runc cannot create it), so
	// past this coreguard gives the container's exclusive cores, and its
	// place in the shared pool, back. Default 60s: kubelet starts a
	// container right after creating it, and a minute covers a loaded
	// runtime; a failing pod's retries come 10 s and more apart, so a few
	// abandoned creations at most hold cores at once. A container that
	// starts later is placed again (docs/config.md).
	StartTimeout string `json:"startTimeout,omitempty"`
	// ExemptNamespaces are namespaces whose pods never get exclusive CPUs
	// and run in the shared pool. Default: none, as kubelet.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`
	// CFSQuota: auto (default) clears CFS quotas, container and pod level,
	// when the running kernel is known to have the CFS throttling bug; clear
	// always does; keep never does. Containers pinned to exclusive cores run
	// without quota in every mode (it can only throttle them), as kubelet's
	// static policy does.
	CFSQuota string `json:"cfsQuota,omitempty"`
	// Kernel adjusts the table of kernels known to have the CFS throttling
	// bug (`coreguard kernel --rules` prints it): add and remove rules, and
	// say what an unknown kernel counts as (default not-buggy, with a
	// warning: clearing quotas on a kernel that limits correctly would take
	// away limits admins set on purpose).
	Kernel kernel.Policy `json:"kernel,omitempty"`
	// Admission configures the refusal of privileged and host-namespace
	// containers; see Admission.
	Admission Admission `json:"admission,omitempty"`
	// MetricsAddress is where Prometheus metrics are served (host:port).
	// Default: off, so nothing listens unless the admin asks.
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// HealthAddress is where /healthz (the process is up) and /readyz
	// (registered with the runtime and synchronized) are served
	// (host:port), on a listener of their own so probes never depend on
	// metrics being on. Default: off; the DaemonSet passes
	// --health-address 127.0.0.1:PORT for its probes (kubelet probes a
	// hostNetwork pod's loopback from the node).
	HealthAddress string `json:"healthAddress,omitempty"`
	// Log configures coreguard's own log; see Log.
	Log Log `json:"log,omitempty"`
	// SysfsRoot is where the CPU topology is read. Default /sys, the
	// host's. A saved or generated tree describes another machine's
	// topology over this host's CPU numbers (how the project's tests give
	// a 2-CPU machine an SMT layout).
	SysfsRoot string `json:"sysfsRoot,omitempty"`
	// CgroupRoot is the cgroup file system, where pod CFS quotas are
	// cleared and throttling is read. Default /sys/fs/cgroup.
	CgroupRoot string `json:"cgroupRoot,omitempty"`
	// KubeletRootDir is kubelet's --root-dir, where its CPU manager keeps
	// its checkpoint (cpu_manager_state): while that says the static
	// policy, kubelet owns cpusets and coreguard does not pin. Default
	// /var/lib/kubelet, kubelet's.
	KubeletRootDir string `json:"kubeletRootDir,omitempty"`

	reserved     cpuset.CPUSet
	startTimeout time.Duration
}

// Log is the log section. A pre-installed coreguard has no stdout or
// stderr (the runtime discards them): it logs to the system journal (tag
// coreguard), and to File when set.
type Log struct {
	// Level: debug, info (default), warn or error.
	Level string `json:"level,omitempty"`
	// Format: text (default) or json.
	Format string `json:"format,omitempty"`
	// File, when set, is appended to as well (an absolute path; created
	// when missing). Default: none.
	File string `json:"file,omitempty"`
}

// Defaults of the host paths (the usual places on a Linux node).
const (
	DefaultSysfsRoot      = "/sys"
	DefaultCgroupRoot     = cgroups.DefaultRoot
	DefaultKubeletRootDir = "/var/lib/kubelet"
)

// Exhaustion is the onExhaustion policy.
type Exhaustion string

const (
	// ExhaustionReject fails the container's creation.
	ExhaustionReject Exhaustion = "reject"
	// ExhaustionShared runs it in the shared pool, with a warning and a metric.
	ExhaustionShared Exhaustion = "shared"
)

// Default returns the configuration used when none is given.
func Default() *Config {
	c := &Config{}
	if err := c.complete(); err != nil {
		panic(err) // the defaults are valid by construction
	}
	return c
}

// Parse reads a YAML (or JSON) configuration: one document, read strictly
// (see decode). Empty input is the default.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	problems, err := decode(data, c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.complete(); err != nil {
		// complete's errors, without its own "config: " prefix.
		problems = append(problems, errors.Unwrap(err))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(problems...))
	}
	return c, nil
}

// Load reads the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// StartTimeoutDuration returns startTimeout parsed.
func (c *Config) StartTimeoutDuration() time.Duration { return c.startTimeout }

// Reserved returns reservedSystemCPUs parsed.
func (c *Config) Reserved() cpuset.CPUSet { return c.reserved }

// AllocOptions returns the allocator's options from this configuration.
func (c *Config) AllocOptions() alloc.Options {
	return alloc.Options{Reserved: c.reserved, OddCPUs: c.OddCPUs, IsolatedCPUs: c.IsolatedCPUs}
}

// Exempt reports whether pods of a namespace never get exclusive CPUs.
func (c *Config) Exempt(namespace string) bool {
	for _, ns := range c.ExemptNamespaces {
		if ns == namespace {
			return true
		}
	}
	return false
}

// complete fills in defaults and checks every field, naming the field and
// the value in each error.
func (c *Config) complete() error {
	var errs []error
	bad := func(field string, value any, why string) {
		v := fmt.Sprint(value)
		if v == "true" || v == "false" {
			// YAML 1.1 reads unquoted yes/no/on/off/y/n as booleans.
			why += " (unquoted yes, no, on, off read as booleans in YAML: quote the value)"
		}
		errs = append(errs, fmt.Errorf("%s: %q %s", field, v, why))
	}
	var err error
	if c.reserved, err = cpuset.Parse(c.ReservedSystemCPUs); err != nil {
		bad("reservedSystemCPUs", c.ReservedSystemCPUs, "is not a CPU list like \"0,40\" or \"0-1\"")
	}
	c.OddCPUs = alloc.OddCPUs(oneOf(bad, "oddCPUs", string(c.OddCPUs), alloc.OddCPUsValues...))
	c.IsolatedCPUs = alloc.IsolatedCPUs(oneOf(bad, "isolatedCPUs", string(c.IsolatedCPUs), alloc.IsolatedCPUsValues...))
	c.OnExhaustion = Exhaustion(oneOf(bad, "onExhaustion", string(c.OnExhaustion), "reject", "shared"))
	c.CFSQuota = oneOf(bad, "cfsQuota", c.CFSQuota, "auto", "clear", "keep")
	c.SharedPoolUpdates = oneOf(bad, "sharedPoolUpdates", c.SharedPoolUpdates, SharedPoolUpdatesValues...)
	if c.StartTimeout == "" {
		c.StartTimeout = "60s"
	}
	if c.startTimeout, err = time.ParseDuration(c.StartTimeout); err != nil || c.startTimeout < time.Second {
		bad("startTimeout", c.StartTimeout, "is not a duration of a second or more (e.g. \"60s\", \"2m\")")
	}
	if c.Kernel.Unknown == "" {
		c.Kernel.Unknown = kernel.UnknownNotBuggy // what an empty value means anyway, written out
	}
	if err := c.Kernel.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("kernel: %w", err))
	}
	for i, ns := range c.ExemptNamespaces {
		if !namespaceName.MatchString(ns) {
			bad(fmt.Sprintf("exemptNamespaces[%d]", i), ns, "is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)")
		}
	}
	if why := NotHostPort(c.MetricsAddress); why != "" {
		bad("metricsAddress", c.MetricsAddress, why)
	}
	if why := NotHostPort(c.HealthAddress); why != "" {
		bad("healthAddress", c.HealthAddress, why)
	}
	c.Log.Level = oneOf(bad, "log.level", c.Log.Level, LogLevels...)
	c.Log.Format = oneOf(bad, "log.format", c.Log.Format, LogFormats...)
	for _, f := range []struct {
		field string
		value *string
		def   string
	}{
		{"log.file", &c.Log.File, ""},
		{"sysfsRoot", &c.SysfsRoot, DefaultSysfsRoot},
		{"cgroupRoot", &c.CgroupRoot, DefaultCgroupRoot},
		{"kubeletRootDir", &c.KubeletRootDir, DefaultKubeletRootDir},
	} {
		if *f.value == "" {
			*f.value = f.def
		} else if !filepath.IsAbs(*f.value) {
			// The runtime starts coreguard in a directory of its choosing.
			bad(f.field, *f.value, "is not an absolute path")
		}
	}
	errs = append(errs, c.Admission.complete()...)
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// LogLevels and LogFormats are log.level's and log.format's values, the
// default first (coreguard run's flags for them take the same).
var (
	LogLevels  = []string{"info", "debug", "warn", "error"}
	LogFormats = []string{"text", "json"}
)

// NotHostPort says why a metrics address is not host:port, "" when it is
// (or is empty: off).
func NotHostPort(a string) string {
	if a == "" || strings.Contains(a, ":") {
		return ""
	}
	return "is not host:port (e.g. \":9110\" or \"127.0.0.1:9110\")"
}

// oneOf checks an enumerated field: empty means the first (default) value;
// anything not listed is reported through bad.
// The sharedPoolUpdates modes.
const (
	// SharedPoolInResponse: the runtime's updates go in the same NRI
	// answer that creates or stops the container; creation waits for the
	// runtime to apply one update (a runc update) per shared container.
	SharedPoolInResponse = "in-response"
	// SharedPoolAfterResponse: they are sent right after the answer;
	// shared containers run on the new cores until the runtime applied
	// them.
	SharedPoolAfterResponse = "after-response"
	// SharedPoolCgroupFirst: coreguard writes the shared containers'
	// cgroup cpusets itself before it answers (a file write each), and
	// the runtime's updates follow after the answer, for its own view.
	SharedPoolCgroupFirst = "cgroup-first"
)

// SharedPoolUpdatesValues lists the modes, the default first.
var SharedPoolUpdatesValues = []string{SharedPoolCgroupFirst, SharedPoolInResponse, SharedPoolAfterResponse}

func oneOf(bad func(field string, value any, why string), field, value string, allowed ...string) string {
	if value == "" {
		return allowed[0]
	}
	for _, a := range allowed {
		if value == a {
			return value
		}
	}
	bad(field, value, "is not one of "+strings.Join(allowed, ", "))
	return value
}

// namespaceName is an RFC 1123 label, what Kubernetes allows for namespaces.
var namespaceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// cleanYAMLError strips the wording sigs.k8s.io/yaml wraps around the YAML
// parser's errors, which name the line.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: ")
	msg = strings.TrimPrefix(msg, "while decoding JSON: ")
	return errors.New(msg)
}
