package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

const (
	plainRules     = "prometheus/coreguard.rules.yml"
	prometheusRule = "prometheus/coreguard-rules.yaml"
	dashboardFile  = "grafana/coreguard.json"
)

// cadvisorNames are the series of kubelet's cAdvisor the alerts and the
// dashboard join with coreguard's: coreguard must not export them itself.
var cadvisorNames = []string{"container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total"}

type ruleGroups struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type promRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       ruleGroups        `json:"spec"`
}

func loadRules(t *testing.T) ruleGroups {
	t.Helper()
	var g ruleGroups
	strict(t, plainRules, &g)
	return g
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(read(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars stand in for the variables Grafana fills in, so the queries
// are plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")

// query is one PromQL expression the alerts or the dashboard run.
type query struct{ where, expr string }

func queries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, query{plainRules + " " + r.Alert, r.Expr})
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			out = append(out, query{dashboardFile + " " + p.Title + " " + tg.RefID, grafanaVars.Replace(tg.Expr)})
		}
	}
	return out
}

// labelValuesOf finds the metric of Grafana's label_values(metric, label).
var labelValuesOf = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// queriedNames maps each metric name the alerts and the dashboard query
// to where.
func queriedNames(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, q := range queries(t) {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Fatalf("%s: %v", q.where, err)
		}
		for _, n := range names {
			out[n] = append(out[n], q.where)
		}
	}
	for _, v := range loadDashboard(t).Templating.List {
		if m := labelValuesOf.FindStringSubmatch(v.Definition); m != nil {
			out[m[1]] = append(out[m[1]], dashboardFile+" variable "+v.Name)
		}
	}
	return out
}

// runCoreguard runs coreguard against an in-process NRI runtime with
// metricsAddress 127.0.0.1:0 and cfgYAML, lets act drive the runtime, and
// returns what its /metrics serves.
func runCoreguard(t *testing.T, cfgYAML string, act func(*nritest.Runtime)) string {
	t.Helper()
	topo, err := sysfsgen.BuildShape(sysfsgen.IntelHT2S)
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir() // no cgroup tree, no kubelet checkpoint
	cfg, err := config.Parse([]byte(cfgYAML + "\nmetricsAddress: 127.0.0.1:0\ncgroupRoot: " + empty + "\nkubeletRootDir: " + empty + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	logs := logtest.NewLocal(log)
	rt := nritest.Start(t)
	p, err := plugin.New(plugin.Options{Socket: rt.Socket, Config: cfg, Topology: topo, Log: log,
		KernelRelease: "5.10.0", RuntimeNRI: nritest.NRIVersion, Version: "v0.0.0-deploy-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coreguard: %v", err)
		}
	}()
	rt.WaitSync(10 * time.Second)
	act(rt)
	return get(t, "http://"+metricsAddress(t, logs)+"/metrics")
}

// metricsAddress is the address coreguard logged it serves metrics on.
func metricsAddress(t *testing.T, logs *logtest.Hook) string {
	t.Helper()
	for _, e := range logs.AllEntries() {
		if e.Message == "serving metrics on /metrics" {
			return e.Data["address"].(string)
		}
	}
	t.Fatal("coreguard logged no metrics address")
	return ""
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// busyNode creates what makes every kind of coreguard series appear: a
// Burstable container (quota kept: the kernel has no CFS bug), a pinned
// one (quota lifted, pod too), a host-network pod in default (refused or
// audited), and pods in two namespaces.
func busyNode(rt *nritest.Runtime) {
	web := rt.RunPod(nritest.PodSpec{Name: "web", Namespace: "shop", QoS: "burstable"})
	_, _ = rt.Create(web, "nginx", nritest.Resources{RequestMilli: 250, LimitMilli: 1000})
	db := rt.RunPod(nritest.PodSpec{Name: "db", Namespace: "shop", QoS: "guaranteed"})
	_, _ = rt.Create(db, "postgres", nritest.Resources{RequestMilli: 2000, LimitMilli: 2000})
	debug := rt.RunPod(nritest.PodSpec{Name: "debug", HostNetwork: true})
	_, _ = rt.Create(debug, "shell", nritest.Resources{})
}

// sampleNames returns the names of the samples on a metrics page.
func sampleNames(page string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// TestQueriesFindCoreguardsMetrics: every metric the alerts and the
// dashboard query is served by a running coreguard (in enforce or audit
// mode: each admission counter has series in its own mode), except
// cAdvisor's, which coreguard does not serve; and coreguard serves nothing
// named like cAdvisor's series.
func TestQueriesFindCoreguardsMetrics(t *testing.T) {
	var served []string
	for _, mode := range []string{"enforce", "audit"} {
		served = append(served, sampleNames(runCoreguard(t, "admission:\n  mode: "+mode, busyNode))...)
	}
	for _, n := range served {
		if strings.HasPrefix(n, "container_") || strings.HasPrefix(n, "machine_") {
			t.Errorf("coreguard serves %s, named like cAdvisor's series", n)
		}
	}
	queried := queriedNames(t)
	for name, where := range queried {
		switch {
		case slices.Contains(cadvisorNames, name):
			// kubelet's; checked above not to be served by coreguard.
		case !strings.HasPrefix(name, "coreguard_"):
			t.Errorf("%s (queried by %v) is neither coreguard's nor one of cAdvisor's %v", name, where, cadvisorNames)
		case !slices.Contains(served, name):
			t.Errorf("%s (queried by %v) is not served by coreguard", name, where)
		}
	}
	for _, want := range append([]string{"coreguard_quota_kept", "coreguard_admission_rejections_total", "coreguard_runtime_connected"}, cadvisorNames...) {
		if queried[want] == nil {
			t.Errorf("neither the alerts nor the dashboard query %s", want)
		}
	}
}

// TestPrometheusRuleMatchesPlainRules: the PrometheusRule carries exactly
// the plain rules file's groups.
func TestPrometheusRuleMatchesPlainRules(t *testing.T) {
	var pr promRule
	strict(t, prometheusRule, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("%s: %s %s %q", prometheusRule, pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	if plain := loadRules(t); !reflect.DeepEqual(pr.Spec, plain) {
		t.Errorf("%s's spec differs from %s", prometheusRule, plainRules)
	}
}

// TestAlerts: every rule is an alert with a severity, a summary and a
// description; names are unique.
func TestAlerts(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("rule %q: not an alert, or a duplicate name", r.Alert+r.Record)
			}
			seen[r.Alert] = true
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) ||
				r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity %q, summary and description required", r.Alert, r.Labels["severity"])
			}
		}
	}
}

// TestDashboard: panels have unique ids, fit the 24-column grid, query
// the data source chosen in the dashboard's variable, and every panel but
// rows has a query.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q", d.UID, d.Title)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q: query %s is empty", p.Title, tg.RefID)
			}
		}
	}
}

func TestMain(m *testing.M) {
	// NRI's runtime side logs through logrus' standard logger; keep test
	// output to what fails.
	logrus.SetLevel(logrus.ErrorLevel)
	m.Run()
}
