package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHookCommand runs the hook as runc does: the state on stdin, the
// flags coreguard's admission put in the hook. Its refusal goes to
// stderr, which runc passes on in the creation's error.
func TestHookCommand(t *testing.T) {
	bundle := t.TempDir()
	privileged := `{"process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_ADMIN"]}},"linux":{}}`
	ordinary := `{"process":{"capabilities":{"bounding":["CAP_CHOWN"]}},"linux":{"readonlyPaths":["/proc/sys"]}}`
	state := `{"ociVersion":"1.2.0","id":"x","status":"creating","bundle":"` + bundle + `"}`
	args := []string{"hook", "--namespace", "default", "--pod", "debug", "--container", "agent", "--allowed", "kube-system", "--allowed", "calico-system"}
	for _, tc := range []struct {
		name, spec, state string
		args              []string
		code              int
		err               string
	}{
		{"privileged", privileged, state, args, exitFailed,
			`coreguard hook: privileged container "agent" in pod default/debug rejected: namespace "default" may not run privileged ` +
				"containers (CAP_SYS_ADMIN, /proc/sys writable, no masked paths, 2 capabilities); allowed: kube-system, calico-system\n"},
		{"ordinary", ordinary, state, args, exitOK, ""},
		{"no state", ordinary, "", args, exitFailed, "reading the container state on stdin"},
		{"stray argument", ordinary, state, append(args, "extra"), exitUsage, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			stdin = strings.NewReader(tc.state)
			defer func() { stdin = os.Stdin }()
			code, _, errOut := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) || (tc.err == "" && errOut != "") {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr %q", code, errOut, tc.code, tc.err)
			}
		})
	}
}
