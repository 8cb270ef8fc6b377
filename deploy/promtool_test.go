package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// promtool finds Prometheus' own checker: $COREGUARD_PROMTOOL, else the
// one hack/install-promtool.sh builds into the cache (make deps-tools),
// else PATH's. Without one the test skips, or fails when
// COREGUARD_REQUIRE_TOOLS=1 (make check).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COREGUARD_PROMTOOL"); p != "" {
		return p
	}
	cache := os.Getenv("COREGUARD_CACHE")
	if cache == "" {
		cache = "/var/cache/coreguard"
	}
	if p := filepath.Join(cache, "promtool", "bin", "promtool"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	msg := "no promtool: make deps-tools builds it (or set COREGUARD_PROMTOOL)"
	if os.Getenv("COREGUARD_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runPromtool runs promtool with args (stdin: input) and fails the test
// with its output when it fails.
func runPromtool(t *testing.T, input string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeRules writes rule groups as a plain rules file and returns its path.
func writeRules(t *testing.T, g ruleGroups) string {
	t.Helper()
	b, err := yaml.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPromtoolCheckRules: Prometheus parses the alerts, as shipped in the
// plain rules file and in the PrometheusRule's spec.
func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "", "check", "rules", plainRules)
	var pr promRule
	strict(t, prometheusRule, &pr)
	runPromtool(t, "", "check", "rules", writeRules(t, pr.Spec))
}

// TestPromtoolTestRules: each alert fires in its scenario and stays quiet
// otherwise (prometheus/coreguard.rules.test.yml).
func TestPromtoolTestRules(t *testing.T) {
	out := runPromtool(t, "", "test", "rules", "prometheus/coreguard.rules.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// TestPromtoolDashboardQueries: Prometheus parses every dashboard query
// (Grafana's variables filled in), each checked as a recording rule.
func TestPromtoolDashboardQueries(t *testing.T) {
	g := ruleGroup{Name: "dashboard"}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:panel%d:%s", p.ID, tg.RefID), Expr: grafanaVars.Replace(tg.Expr)})
		}
	}
	out := runPromtool(t, "", "check", "rules", writeRules(t, ruleGroups{Groups: []ruleGroup{g}}))
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(g.Rules)); !strings.Contains(out, want) {
		t.Fatalf("promtool check rules: want %q:\n%s", want, out)
	}
}

// TestPromtoolCheckMetrics: what a running coreguard serves passes
// Prometheus' naming and exposition lint.
func TestPromtoolCheckMetrics(t *testing.T) {
	page := runCoreguard(t, "", busyNode)
	runPromtool(t, page, "check", "metrics")
}
