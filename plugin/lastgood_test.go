package plugin_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// TestLastGoodConfig: a configuration refused at start does not turn the
// guard off when coreguard ran with a good one before: it runs on that,
// says so in its log and sets coreguard_config_rejected. With none kept,
// it refuses to start, as before.
func TestLastGoodConfig(t *testing.T) {
	topo, err := sysfsgen.BuildShape(sysfsgen.IntelHT2S)
	if err != nil {
		t.Fatal(err)
	}
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "coreguard.yaml")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text+"\nkubeletRootDir: "+dir+"\ncgroupRoot: "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func(stateDir string) (*plugin.Plugin, *plugin.Metrics, string, error) {
		var log strings.Builder
		l := logrus.New()
		l.SetOutput(io.MultiWriter(&log, io.Discard))
		m := plugin.NewMetrics()
		p, err := plugin.New(plugin.Options{Topology: topo, ConfigFile: file, StateDir: stateDir, Log: l, Metrics: m,
			KernelRelease: "5.10.0"})
		return p, m, log.String(), err
	}

	write(`reservedSystemCPUs: "0,40"`)
	if _, m, _, err := start(state); err != nil {
		t.Fatal(err)
	} else if s := scrapeText(t, m); !strings.Contains(s, "coreguard_config_rejected 0\n") {
		t.Errorf("a good configuration: coreguard_config_rejected not 0")
	}
	if _, err := os.Stat(filepath.Join(state, "last-good.yaml")); err != nil {
		t.Fatalf("the configuration in force was not kept: %v", err)
	}

	write("reservedSystemCpus: \"0,40\"") // a bad edit rolled out
	_, m, log, err := start(state)
	if err != nil {
		t.Fatalf("refused to start with a last good configuration kept: %v", err)
	}
	s := scrapeText(t, m)
	if !strings.Contains(s, "coreguard_config_rejected 1\n") || !strings.Contains(s, `coreguard_cpus{pool="reserved"} 2`) {
		t.Errorf("not running on the last good configuration:\n%s", s)
	}
	if !strings.Contains(log, `unknown field \"reservedSystemCpus\"`) || !strings.Contains(log, "running on the last good configuration") {
		t.Errorf("the log does not say why:\n%s", log)
	}

	if _, _, _, err := start(t.TempDir()); err == nil || !strings.Contains(err.Error(), `unknown field "reservedSystemCpus"`) {
		t.Errorf("no last good configuration: err %v, want the refusal naming the field", err)
	}
}
