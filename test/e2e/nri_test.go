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
// the NRI socket is private and live, and the default validator rejects
// containers while a required plugin is not connected, unless the pod
// carries the toleration annotation.
func TestRequiredPluginMissing(t *testing.T) {
	const tolerate = "e2e.coreguard.io/tolerate-missing-plugins"
	rt := harness.Start(t, harness.Options{
		RequiredPlugins:                  []string{"coreguard"},
		TolerateMissingPluginsAnnotation: tolerate,
		PluginRequestTimeout:             500 * time.Millisecond,
		PluginRegistrationTimeout:        time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if fi, err := os.Stat(rt.NRISocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("NRI socket %s: %v %v", rt.NRISocket, fi, err)
	}

	pod, err := rt.RunPod(ctx, harness.PodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pod.CreateContainer(ctx, harness.ContainerOptions{})
	if err == nil || !strings.Contains(err.Error(), "coreguard") {
		t.Fatalf("CreateContainer without the required plugin: err = %v, want a rejection naming it", err)
	}
	t.Logf("rejected as expected: %v", err)

	tolerated, err := rt.RunPod(ctx, harness.PodOptions{Annotations: map[string]string{tolerate: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tolerated.RunContainer(ctx, harness.ContainerOptions{}); err != nil {
		t.Fatalf("tolerating pod: %v", err)
	}
}
