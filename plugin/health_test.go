package plugin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// get fetches a URL and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestHealth: /healthz answers while the process runs; /readyz only once
// coreguard is registered with the runtime and synchronized, and no
// longer when the runtime goes away.
func TestHealth(t *testing.T) {
	p, err := newBarePlugin(t, "healthAddress: \"127.0.0.1:0\"", plugin.Options{Socket: "/nonexistent/nri.sock"})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + p.HealthAddress()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "not registered with the runtime (is NRI enabled, and its socket at /nonexistent/nri.sock?)"},
		{"/metrics", 404, ""},
	} {
		if code, body := get(t, base+tc.path); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("not connected: GET %s: %d %q, want %d with %q", tc.path, code, body, tc.code, tc.body)
		}
	}

	h := newHarness(t, sysfsgen.TwoCPUsTwoCores, "healthAddress: \"127.0.0.1:0\"")
	base = "http://" + h.plugin.HealthAddress()
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "synchronized") {
		t.Errorf("synchronized: GET /readyz: %d %q, want 200", code, body)
	}
	h.stop()
	h.stop = func() {}
	if code, body := get(t, base+"/readyz"); code != 503 {
		t.Errorf("after the plugin stopped: GET /readyz: %d %q, want 503", code, body)
	}
}

// TestHealthAddressTaken: a healthAddress another process holds refuses
// the configuration, naming the field.
func TestHealthAddressTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = newBarePlugin(t, "healthAddress: \""+l.Addr().String()+"\"\nmetricsAddress: \"127.0.0.1:0\"", plugin.Options{})
	if err == nil || !strings.Contains(err.Error(), "healthAddress: listen tcp "+l.Addr().String()) {
		t.Fatalf("New with healthAddress taken: %v", err)
	}
}

// TestNoSocketLoggedOnce: with no NRI socket (NRI off in the runtime),
// coreguard says so once, with the hint, and keeps retrying quietly.
func TestNoSocketLoggedOnce(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	logs := logtest.NewLocal(log)
	socket := filepath.Join(t.TempDir(), "nri.sock")
	p, err := newBarePlugin(t, "log: {level: debug}", plugin.Options{Socket: socket, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	retries := func() int {
		n := 0
		for _, e := range logs.AllEntries() {
			if strings.Contains(e.Message, "retrying") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for retries() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, e := range logs.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "NRI socket") {
			warned = append(warned, e.Message)
		}
	}
	want := "no NRI socket at " + socket + ": is NRI enabled in the runtime's configuration"
	if retries() < 3 || len(warned) != 1 || !strings.HasPrefix(warned[0], want) {
		t.Fatalf("%d attempts; warnings %q, want one starting %q", retries(), warned, want)
	}
}

// newBarePlugin makes a plugin that is not connected, on a small topology
// with no host state (no cgroup tree, no kubelet checkpoint), with cfgYAML
// and opts' fields; its log is discarded unless opts has one.
func newBarePlugin(t *testing.T, cfgYAML string, opts plugin.Options) (*plugin.Plugin, error) {
	t.Helper()
	topo, err := sysfsgen.BuildShape(sysfsgen.TwoCPUsTwoCores)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
		opts.Log.SetOutput(io.Discard)
	}
	empty := t.TempDir()
	opts.Topology, opts.KernelRelease = topo, "5.10.0"
	opts.Config = mustConfig(t, cfgYAML+"\ncgroupRoot: "+empty+"\nkubeletRootDir: "+empty)
	return plugin.New(opts)
}
