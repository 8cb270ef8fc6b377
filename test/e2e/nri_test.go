package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// TestRequiredPluginMissing checks the NRI part of the generated config:
// the NRI socket is private and live, and a required plugin that is not
// connected: containerd's default validator rejects containers unless the
// pod carries the toleration annotation; CRI-O 1.34.0 has no validator,
// accepts the configuration and creates them (expect.requiredPlugins).
func TestRequiredPluginMissing(t *testing.T) {
	forEachRuntime(t, testRequiredPluginMissing)
}

func testRequiredPluginMissing(t *testing.T, x expect) {
	const tolerate = "e2e.coreguard.io/tolerate-missing-plugins"
	rt := startRuntimeWith(t, x, harness.Options{
		RequiredPlugins:                  []string{"coreguard"},
		TolerateMissingPluginsAnnotation: tolerate,
		PluginRequestTimeout:             500 * time.Millisecond,
		PluginRegistrationTimeout:        time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if fi, err := os.Stat(rt.NRISocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("NRI socket %s: %v %v", rt.NRISocket, fi, err)
	}

	pod, err := rt.RunPod(ctx, harness.PodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pod.CreateContainer(ctx, harness.ContainerOptions{})
	switch {
	case x.requiredPlugins && (err == nil || !strings.Contains(err.Error(), "coreguard")):
		t.Fatalf("CreateContainer without the required plugin: err = %v, want a rejection naming it", err)
	case x.requiredPlugins:
		t.Logf("rejected as expected: %v", err)
	case err != nil:
		t.Fatalf("%s %s has no default validator, yet CreateContainer failed: %v", x.name, x.version, err)
	default:
		t.Logf("%s %s: created with required plugin coreguard absent (no default validator)", x.name, x.version)
	}

	tolerated, err := rt.RunPod(ctx, harness.PodOptions{Annotations: map[string]string{tolerate: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tolerated.RunContainer(ctx, harness.ContainerOptions{}); err != nil {
		t.Fatalf("tolerating pod: %v", err)
	}
}
