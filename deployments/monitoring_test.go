package deployments

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// ---- the monitoring files: deployments/monitoring ----

// metricName finds the metrics an expression names: terratask's and the
// Temporal SDK's (labels and functions never start with these prefixes).
var metricName = regexp.MustCompile(`\b(?:terratask|temporal)_[a-zA-Z0-9_]+\b`)

// dashboardExprs returns every query of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json does not parse: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 10 {
		t.Fatalf("dashboard %q (uid %q) with %d panels", d.Title, d.UID, len(d.Panels))
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// alertExprs returns every rule expression of alerts.yml, by alert name.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "monitoring/alerts.yml", &f)
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: needs alert, expr, severity and summary", r)
			}
			out[r.Alert] = r.Expr
		}
	}
	for _, want := range []string{"TerrataskRunnerOffline", "TerrataskTasksStuckPending", "TerrataskHighFailureRate"} {
		if out[want] == "" {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
	return out
}

// promtool returns the path of promtool. Under CI it must exist (.ci/run
// installs Debian's prometheus package); elsewhere its checks are skipped.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH: .ci/run installs it (Debian package prometheus)")
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus); skipping the promtool checks (they run under CI)")
	}
	return p
}

func TestAlertRulesPassPromtool(t *testing.T) {
	alertExprs(t)
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", "monitoring/alerts.yml"}, {"check", "config", "monitoring/prometheus.yml"}} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
