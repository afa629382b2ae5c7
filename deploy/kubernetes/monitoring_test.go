package kubernetes

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/segmentio/kafka-go"
	"sigs.k8s.io/yaml"

	"github.com/nerstream/nerstream/internal/kafkatest"
)

const (
	rulesPath     = "common/prometheusrule.yaml"
	dashboardPath = "common/dashboard.json"
)

// promtool is the path of Prometheus's promtool (Debian: prometheus). The
// test skips without it, but fails when NERSTREAM_REQUIRE_PROMTOOL is set,
// as .ci/run sets it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("promtool is not installed (apt-get install prometheus), and NERSTREAM_REQUIRE_PROMTOOL is set")
		}
		t.Skip("SKIPPED: no promtool (apt-get install prometheus)")
	}
	return p
}

// readRules decodes the PrometheusRule at path.
func readRules(t *testing.T, path string) *monitoringv1.PrometheusRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r monitoringv1.PrometheusRule
	if err := decodeStrict(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &r
}

// checkRules runs `promtool check rules` on the PrometheusRule at path:
// its spec is a Prometheus rules file.
func checkRules(t *testing.T, path string) error {
	t.Helper()
	spec, err := yaml.Marshal(readRules(t, path).Spec)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t), "check", "rules", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("promtool check rules: %w\n%s", err, out)
	}
	return nil
}

// TestAlertRules checks the real rules with promtool, and that promtool
// refuses broken copies.
func TestAlertRules(t *testing.T) {
	if err := checkRules(t, rulesPath); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new string }{
		{"an unclosed call", "(rate(nerstream_records_dead_lettered_total[10m]))", "(rate(nerstream_records_dead_lettered_total[10m])"},
		{"an unknown function", "deriv(", "derivative("},
		{"a bad range", "[10m]", "[10 minutes]"},
		{"a bad duration", "for: 15m", "for: 15 minutes"},
		{"a label matcher with no value", `{check="model"}`, `{check=}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t)
			edit(t, dir, rulesPath, tc.old, tc.new)
			if err := checkRules(t, filepath.Join(dir, rulesPath)); err == nil {
				t.Fatalf("promtool passed rules with %s", tc.name)
			}
		})
	}
}

// promqlWords removes from a PromQL expression what holds no metric
// name: strings, label matchers, ranges, numbers, durations and grouping
// clauses.
var promqlWords = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`), `""`},
	{regexp.MustCompile(`\{[^}]*\}`), "{}"},
	{regexp.MustCompile(`\[[^\]]*\]`), "[]"},
	{regexp.MustCompile(`\b[0-9][0-9a-zA-Z_.]*`), "0"}, // numbers and durations
	{regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`), " "},
}

var (
	promqlIdent = regexp.MustCompile(`[$]?[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	// Grafana's label_values(METRIC, LABEL) query of a template variable.
	labelValues     = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promqlOperators = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)

// metricNames are the metric names that expr selects. A PromQL parser
// (github.com/prometheus/prometheus/promql/parser) would be exact but
// brings the whole Prometheus module; what the dashboard and the rules
// write is plain enough for this: an identifier that is not a function
// (followed by "("), an operator, a label or a Grafana variable ($x).
func metricNames(expr string) []string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	for _, r := range promqlWords {
		expr = r.re.ReplaceAllString(expr, r.with)
	}
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatch(expr, -1) {
		w := m[0]
		if m[1] != "" || strings.HasPrefix(w, "$") || slices.Contains(promqlOperators, w) {
			continue
		}
		names = append(names, w)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`nerstream_ready == 0`, []string{"nerstream_ready"}},
		{`sum by (topic, reason) (rate(nerstream_records_dead_lettered_total{namespace="$namespace", topic=~"a|b"}[$__rate_interval]))`, []string{"nerstream_records_dead_lettered_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`, []string{"x_bucket"}},
		{"a / on (pod) group_left (check) b > bool 0.5 unless c offset 5m", []string{"a", "b", "c"}},
		{`count by (namespace) (nerstream_ready{check="model"} == 0) == count by (namespace) (nerstream_ready{check="model"})`, []string{"nerstream_ready", "nerstream_ready"}},
		{`sum(rate(x_sum[1m])) / sum(rate(x_count[1m]))`, []string{"x_sum", "x_count"}},
		{`label_values(nerstream_records_consumed_total, namespace)`, []string{"nerstream_records_consumed_total"}},
		{`{__name__="x"}`, nil},
		{`deriv(y[10m]) > 1e3`, []string{"y"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a row's
}

// queries are the PromQL expressions of the dashboard at dashPath and the
// rules at rulesPath, each with where it is.
func queries(t *testing.T, dashPath, rulesPath string) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(dashPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashPath, err)
	}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				out[fmt.Sprintf("dashboard panel %q query %d", p.Title, i+1)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out[fmt.Sprintf("dashboard variable %s", v.Name)] = q
		}
	}
	for _, g := range readRules(t, rulesPath).Spec.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr.String()
		}
	}
	if len(out) == 0 {
		t.Fatal("no queries found")
	}
	return out
}

// unexported lists the metric names that the dashboard and rules query
// but scraped does not hold, one line each.
func unexported(t *testing.T, dashPath, rulesPath string, scraped map[string]bool) []string {
	var missing []string
	for where, expr := range queries(t, dashPath, rulesPath) {
		names := metricNames(expr)
		if len(names) == 0 {
			missing = append(missing, fmt.Sprintf("%s names no metric: %s", where, expr))
		}
		for _, n := range names {
			if !scraped[n] {
				missing = append(missing, fmt.Sprintf("%s: %s is not exported by a member", where, n))
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// seriesName is the metric name of a sample line of the text format.
var seriesName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)

// TestMonitoringMatchesMember runs a member (`nerstream run`, built from
// this checkout, on the embedded broker with a synthetic model) and
// scrapes its /metrics: promtool accepts the scrape, and every metric that
// the dashboard and the alert rules query is in it, so they cannot drift
// apart. Broken copies of the dashboard and the rules (a query for a metric
// that does not exist) fail the same check.
func TestMonitoringMatchesMember(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: builds and runs a member (-short)")
	}
	scrape := memberScrape(t)
	scraped := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		if m := seriesName.FindStringSubmatch(sc.Text()); m != nil {
			scraped[m[1]] = true
		}
	}

	checkMetrics := func(t *testing.T, scrape string) error {
		cmd := exec.Command(promtool(t), "check", "metrics")
		cmd.Stdin = strings.NewReader(scrape)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("promtool check metrics: %w\n%s", err, out)
		}
		return nil
	}
	t.Run("promtool check metrics", func(t *testing.T) {
		if err := checkMetrics(t, scrape); err != nil {
			t.Fatal(err)
		}
		// promtool refuses a counter without _total, and a broken line.
		for _, bad := range []string{"# HELP x_seconds x\n# TYPE x_seconds counter\nx_seconds 1\n", "x{ 1\n"} {
			if err := checkMetrics(t, scrape+bad); err == nil {
				t.Errorf("promtool check metrics passed the scrape with %q", bad)
			}
		}
	})
	t.Run("the dashboard and the rules query exported metrics", func(t *testing.T) {
		if missing := unexported(t, dashboardPath, rulesPath, scraped); len(missing) > 0 {
			t.Fatalf("queries of metrics that a member does not export:\n%s", strings.Join(missing, "\n"))
		}
	})
	for _, tc := range []struct{ name, file, old, new, want string }{
		{"a dashboard query of a metric that does not exist", dashboardPath, "nerstream_engine_queue_depth{", "nerstream_engine_queue_length{", "nerstream_engine_queue_length is not exported"},
		{"a dashboard query with an OTel name", dashboardPath, "nerstream_consumer_lag{", "nerstream.consumer.lag{", "nerstream is not exported"},
		{"a rule of a metric that does not exist", rulesPath, "rate(nerstream_records_consumed_total[10m])", "rate(nerstream_records_consumed[10m])", "nerstream_records_consumed is not exported"},
		{"a histogram queried without its suffix", dashboardPath, "nerstream_record_latency_seconds_bucket", "nerstream_record_latency_seconds", "nerstream_record_latency_seconds is not exported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t)
			edit(t, dir, tc.file, tc.old, tc.new)
			missing := unexported(t, filepath.Join(dir, dashboardPath), filepath.Join(dir, rulesPath), scraped)
			if !strings.Contains(strings.Join(missing, "\n"), tc.want) {
				t.Fatalf("want %q among the problems; got:\n%s", tc.want, strings.Join(missing, "\n"))
			}
		})
	}
}

// memberScrape builds nerstream, runs a member until it has annotated
// documents and dead-lettered one, and returns its /metrics.
func memberScrape(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "nerstream")
	// The environment's cgo flags (make test exports the Makefile's), so
	// that the llama.cpp build is the cached one.
	if out, err := exec.Command(goTool, "build", "-o", bin, "../../cmd/nerstream").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	c := kafkatest.StartBroker(t, 3)
	brokers := c.ListenAddrs()
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.Path = "synth:tiny"
	cfg.Model.MaxNewTokens = 4
	cfg.Model.Threads = 1
	cfg.HTTP.Address = "127.0.0.1:0"
	cmd := exec.Command(bin, "run", "--config", kafkatest.WriteConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_HOME="+t.TempDir())
	member := kafkatest.StartMember(t, cmd)
	base, exited := member.Base, member.Exited
	const n = 12
	kafkatest.ProduceDocs(t, brokers, 0, n)
	kafkatest.ProduceRaw(t, brokers, kafka.Message{Value: []byte("not json")})
	var body string
	waitFor(t, exited, "the documents annotated, one dead letter, lag reported", func() bool {
		body = get(t, base+"/metrics")
		return strings.Contains(body, fmt.Sprintf(`nerstream_records_produced_total{topic="entities"} %d`, n)) &&
			strings.Contains(body, `nerstream_records_produced_total{topic="entities-dlq"} 1`) && strings.Contains(body, "nerstream_consumer_lag{") &&
			strings.Contains(body, `check="consumer_group"} 1`)
	})
	return body
}

// waitFor polls cond until it holds, failing when the member exits first
// or after a long bound (a loaded machine is slow; this is no timing
// assert).
func waitFor(t *testing.T, exited <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		select {
		case <-exited:
			t.Fatalf("the member exited while waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestREADMEAlerts: the README's Operations section says what each alert
// means and what to do about it: every alert of the rules has its row.
func TestREADMEAlerts(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(Nerstream[A-Za-z]+)` \\([a-z]+\\) \\|").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = true
	}
	for _, g := range readRules(t, rulesPath).Spec.Groups {
		for _, r := range g.Rules {
			if !rows[r.Alert] {
				t.Errorf("README's alert table has no row for %s", r.Alert)
			}
			delete(rows, r.Alert)
		}
	}
	for a := range rows {
		t.Errorf("README's alert table has a row for %s, which no rule defines", a)
	}
}
