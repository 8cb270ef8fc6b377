package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Admission configures coreguard's refusal of privileged and host-namespace
// containers.
type Admission struct {
	// Mode: enforce (default) refuses such containers outside the allowed
	// namespaces; audit logs and counts them but lets them run; off does
	// neither. Enforce is the default because this check is only worth
	// having where it holds; roll out with audit first where unsure which
	// system namespaces need privileges (docs/admission.md).
	Mode AdmissionMode `json:"mode,omitempty"`
	// Namespaces allowed each kind, as exact names or glob patterns (a bare
	// prefix such as "calico-*" is warned of: Warnings). Matching is exact
	// and case-sensitive. Each list
	// defaults to [kube-system], where Kubernetes' own privileged
	// DaemonSets (kube-proxy, most CNIs) run; an empty list allows none.
	// No omitempty: an empty list (allow none) written out must not read
	// back as the default.
	Privileged  []string `json:"privileged"`
	HostPID     []string `json:"hostPID"`
	HostIPC     []string `json:"hostIPC"`
	HostNetwork []string `json:"hostNetwork"`
	// FailClosed asks the runtime to fail container creation when coreguard
	// does not answer in time, or drops the connection in the middle of a
	// request, instead of creating the container unchecked (NRI's failure
	// policy). A coreguard that is gone between requests is skipped by the
	// runtime all the same: only required_plugins covers that. Default false: a runtime whose NRI predates
	// v0.12.4 ignores it anyway, and turning it on means no container
	// starts while coreguard is down; see docs/admission.md for the
	// runtime's required_plugins setting, which works on every runtime.
	FailClosed bool `json:"failClosed,omitempty"`
}

// AdmissionMode is admission.mode.
type AdmissionMode string

const (
	AdmissionEnforce AdmissionMode = "enforce"
	AdmissionAudit   AdmissionMode = "audit"
	AdmissionOff     AdmissionMode = "off"
)

// defaultAllowed is each list's default.
var defaultAllowed = []string{"kube-system"}

// namespacePattern is a Kubernetes namespace name, where glob characters
// may stand for letters.
var namespacePattern = regexp.MustCompile(`^[a-z0-9*?\[\]^-]+$`)

// Allowed returns the allowed namespace patterns of one kind ("privileged",
// "hostPID", "hostIPC", "hostNetwork").
func (a *Admission) Allowed(kind string) []string {
	switch kind {
	case "privileged":
		return a.Privileged
	case "hostPID":
		return a.HostPID
	case "hostIPC":
		return a.HostIPC
	case "hostNetwork":
		return a.HostNetwork
	}
	return nil
}

// Allows reports whether namespace may have kind. The empty namespace
// (a direct CRI call that names none) matches nothing.
func (a *Admission) Allows(kind, namespace string) bool {
	if namespace == "" {
		return false
	}
	for _, p := range a.Allowed(kind) {
		if ok, _ := path.Match(p, namespace); ok {
			return true
		}
	}
	return false
}

func (a *Admission) complete() []error {
	var errs []error
	switch a.Mode {
	case "":
		a.Mode = AdmissionEnforce
	case "false":
		// YAML 1.1 reads an unquoted `mode: off` as the boolean false.
		a.Mode = AdmissionOff
	case AdmissionEnforce, AdmissionAudit, AdmissionOff:
	default:
		hint := ""
		if a.Mode == "true" {
			hint = " (unquoted on/yes read as true in YAML: write enforce)"
		}
		errs = append(errs, fmt.Errorf("admission.mode: %q is not one of enforce, audit, off%s", a.Mode, hint))
	}
	for _, l := range []struct {
		field string
		list  *[]string
	}{{"privileged", &a.Privileged}, {"hostPID", &a.HostPID}, {"hostIPC", &a.HostIPC}, {"hostNetwork", &a.HostNetwork}} {
		if *l.list == nil {
			*l.list = append([]string(nil), defaultAllowed...)
		}
		for i, p := range *l.list {
			if err := checkPattern(p); err != nil {
				errs = append(errs, fmt.Errorf("admission.%s[%d]: %q %v", l.field, i, p, err))
			}
		}
	}
	return errs
}

// Warnings names the allowed patterns that are a bare prefix ("calico-*"):
// they match every namespace starting so, including one anybody allowed to
// create namespaces can name ("calico-evil").
func (a *Admission) Warnings() []string {
	var out []string
	for _, kind := range []string{"privileged", "hostPID", "hostIPC", "hostNetwork"} {
		for i, p := range a.Allowed(kind) {
			if prefix, ok := strings.CutSuffix(p, "*"); ok && !strings.ContainsAny(prefix, "*?[") {
				out = append(out, fmt.Sprintf("admission.%s[%d]: %q allows every namespace whose name starts with %q, "+
					"also ones created later by anybody allowed to create namespaces; list the namespaces by name", kind, i, p, prefix))
			}
		}
	}
	return out
}

// checkPattern refuses patterns that could never match a namespace or are
// malformed, so a typo cannot silently allow nothing (or everything).
func checkPattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("is empty")
	case strings.TrimSpace(p) != p:
		return fmt.Errorf("has spaces around it (matching is exact)")
	case p != strings.ToLower(p):
		return fmt.Errorf("has upper-case letters, which namespace names never have (matching is case-sensitive)")
	case !namespacePattern.MatchString(p):
		return fmt.Errorf("has characters namespace names never have (letters, digits, '-'; globs * ? [ ])")
	case len(p) > 63 && !strings.ContainsAny(p, "*?["):
		return fmt.Errorf("is longer than a namespace name can be (63)")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("is not a valid glob pattern: %v", err)
	}
	return nil
}
