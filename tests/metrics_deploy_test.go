package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/dumpflow/dumpflow/metrics"
)

// mxRuleFile is the shape of a Prometheus rule file: groups of alerting or
// recording rules. Unknown fields are errors.
type mxRuleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `yaml:"alert,omitempty"`
			Record      string            `yaml:"record,omitempty"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for,omitempty"`
			Labels      map[string]string `yaml:"labels,omitempty"`
			Annotations map[string]string `yaml:"annotations,omitempty"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// mxMetricName finds metric names in a PromQL expression: dumpflow's own,
// the Temporal SDK's and franz-go's (kprom) all carry one of these
// prefixes, and no label dumpflow or the libraries export does.
var mxMetricName = regexp.MustCompile(`\b(?:dumpflow|temporal|kafka)_[a-zA-Z0-9_:]*`)

// mxExprs collects every "expr" and templating "query" string of a
// Grafana dashboard.
func mxExprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			mxExprs(x, out)
		}
	case []any:
		for _, x := range v {
			mxExprs(x, out)
		}
	}
}

// TestDeployMetricNamesAreExported: every metric name the Grafana
// dashboard (deploy/grafana/dumpflow.json) and the Prometheus alert rules
// (deploy/prometheus/alerts.yaml) use is one a worker exports — dumpflow's
// own (metrics.Exported) or, for the Temporal SDK's and franz-go's, one a
// real worker served on /metrics after a dump — and the rules file is a
// valid Prometheus rule file: groups with names, each rule an alert or a
// record with an expression, durations Prometheus parses, the alerts the
// operators need (lag, stopped, data lost, dead letters).
func TestDeployMetricNamesAreExported(t *testing.T) {
	s := newStack(t)
	url := s.mxStartWorker()
	const topic = "deployed"
	s.createTopic(topic, 1)
	s.mxProduce(topic, 0, 0, 200, 32)
	spec := s.ossSpec("deployed", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(200))
	exported := map[string]bool{}
	for _, n := range metrics.Exported() {
		exported[n] = true
	}
	for name, mf := range mxScrape(t, url) {
		exported[name] = true
		if mf.GetType().String() == "HISTOGRAM" {
			exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
		}
	}

	check := func(file string, exprs []string) {
		t.Helper()
		require.NotEmpty(t, exprs, "%s has expressions", file)
		used := map[string]bool{}
		for _, e := range exprs {
			if strings.HasPrefix(e, "prometheus") { // the datasource variable's query
				continue
			}
			names := mxMetricName.FindAllString(e, -1)
			require.NotEmptyf(t, names, "%s: expression %q names a metric", file, e)
			for _, n := range names {
				used[n] = true
				require.Truef(t, exported[n], "%s: %s (in %q) is not a metric the worker exports", file, n, e)
			}
		}
		var list []string
		for n := range used {
			list = append(list, n)
		}
		sort.Strings(list)
		t.Logf("%s uses %d metric names: %s", file, len(list), strings.Join(list, " "))
	}

	// The dashboard.
	data, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "dumpflow.json"))
	require.NoError(t, err)
	var dash map[string]any
	require.NoError(t, json.Unmarshal(data, &dash))
	require.Equal(t, "dumpflow", dash["uid"])
	var exprs []string
	mxExprs(dash, &exprs)
	check("dumpflow.json", exprs)

	// The alert rules.
	data, err = os.ReadFile(filepath.Join("..", "deploy", "prometheus", "alerts.yaml"))
	require.NoError(t, err)
	var rf mxRuleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&rf), "alerts.yaml is a Prometheus rule file")
	require.NotEmpty(t, rf.Groups)
	exprs = nil
	var alerts []string
	groups := map[string]bool{}
	for _, g := range rf.Groups {
		require.NotEmpty(t, g.Name, "a rule group has a name")
		require.False(t, groups[g.Name], "group names are unique")
		groups[g.Name] = true
		require.NotEmpty(t, g.Rules, "group %s has rules", g.Name)
		for _, r := range g.Rules {
			require.Truef(t, (r.Alert == "") != (r.Record == ""), "a rule is an alert or a record: %+v", r)
			require.NotEmpty(t, r.Expr, "rule %s has an expression", r.Alert+r.Record)
			if r.For != "" {
				_, err := model.ParseDuration(r.For)
				require.NoErrorf(t, err, "rule %s: for %q", r.Alert, r.For)
			}
			for k := range r.Labels {
				require.Truef(t, model.LabelName(k).IsValid(), "rule %s: label %q", r.Alert, k)
			}
			exprs = append(exprs, r.Expr)
			alerts = append(alerts, r.Alert)
		}
	}
	check("alerts.yaml", exprs)
	for _, a := range []string{"DumpflowLagHigh", "DumpflowPartitionStopped", "DumpflowDataLost", "DumpflowDeadLettersGrowing"} {
		require.Truef(t, slices.Contains(alerts, a), "alerts.yaml has %s", a)
	}
}
