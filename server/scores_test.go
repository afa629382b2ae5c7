package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// scoreTexts give the tiny model's substring answers entities of
// several scores.
var (
	scoreTexts = []string{"Jane Doe paid ACME Corp. in Paris on Monday.", "Bob met Ada in Paris.", "Ada Lovelace worked with Charles Babbage in London."}
	scoreTypes = []string{"person", "organization", "location", "date"}
)

// TestAnnotateScores: /v1/annotate on the real tiny model (substring
// answers, so that its mentions align) with Options.Calibration, a map
// whose points are the raw scores that the test reads itself from the
// same model (modeltest.RawScores): each entity's score is the precision
// the map gives its raw score. With Options.MinScore too, exactly the
// entities scored below it are dropped, against the same request
// without, and nerstream_entities_below_min_score_total counts them.
func TestAnnotateScores(t *testing.T) {
	ctx := context.Background()
	m, err := engines.Open(ctx, "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1, SubstringAnswers: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const maxNew = 16
	raw, err := modeltest.RawScores(ctx, m.Engine, scoreTexts, scoreTypes, maxNew)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := modeltest.RankCalibration(modeltest.AllScores(raw))
	if err != nil {
		t.Fatal(err)
	}
	calPath := filepath.Join(t.TempDir(), "calibration.json")
	b, _ := json.Marshal(cal)
	if err := os.WriteFile(calPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var body []map[string]string
	for i, text := range scoreTexts {
		body = append(body, map[string]string{"id": strconv.Itoa(i), "text": text})
	}
	annotate := func(opts Options) ([]record.Annotation, string) {
		t.Helper()
		tel, err := telemetry.Setup(ctx, telemetry.Options{Exporter: telemetry.ExporterNone})
		if err != nil {
			t.Fatal(err)
		}
		defer tel.Shutdown(ctx)
		if opts.Metrics, err = telemetry.NewMetrics(tel.Meter()); err != nil {
			t.Fatal(err)
		}
		opts.Types, opts.MaxNewTokens = scoreTypes, maxNew
		api := newAPI(t, opts, m.Engine)
		srv, _ := serveAPI(t, api, nil)
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+"/v1/annotate", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var recs []record.Annotation
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return recs, rec.Body.String()
	}

	calibrated, _ := annotate(Options{Calibration: calPath})
	n := 0
	for i, r := range calibrated {
		for _, e := range r.Entities {
			n++
			p, ok := raw[scoreTexts[i]][e.Type][cmp.Or(e.Mention, e.Text)]
			want, onMap := modeltest.Precision(cal, p)
			if !ok || !onMap || e.Score == nil || *e.Score != want {
				t.Errorf("%s: entity %+v (score %v): want %v, the map's precision of its raw score %v (known %v)", r.ID, e, deref(e.Score), want, p, ok)
			}
		}
	}
	if n < 4 {
		t.Fatalf("%d entities: the texts should give several", n)
	}

	minScore := cal.Precisions[len(cal.Precisions)/2]
	kept, metrics := annotate(Options{Calibration: calPath, MinScore: minScore})
	dropped := 0
	for i, r := range calibrated {
		var want []record.Entity
		for _, e := range r.Entities {
			if *e.Score >= minScore {
				want = append(want, e)
			} else {
				dropped++
			}
		}
		if got := kept[i].Entities; len(got) != len(want) || !equalEntities(got, want) {
			t.Errorf("%s: with min score %v:\n%+v\nwant\n%+v", r.ID, minScore, got, want)
		}
	}
	if dropped == 0 || dropped == n {
		t.Fatalf("min score %v dropped %d of %d entities: want some kept and some dropped", minScore, dropped, n)
	}
	if line := "nerstream_entities_below_min_score_total " + strconv.Itoa(dropped) + "\n"; !strings.Contains(metrics, line) {
		t.Errorf("metrics lack %q:\n%s", line, grepLines(metrics, "below_min_score"))
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func equalEntities(a, b []record.Entity) bool {
	for i := range a {
		if a[i].Text != b[i].Text || a[i].Type != b[i].Type || a[i].Start != b[i].Start || a[i].End != b[i].End || *a[i].Score != *b[i].Score {
			return false
		}
	}
	return len(a) == len(b)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestScoreOptionsRefused: a minimum score outside [0, 1] (NaN too) and a
// calibration file that cannot be used are refused by New, before
// anything is served.
func TestScoreOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"min score below 0", Options{MinScore: -0.1}, nil},
		{"min score above 1", Options{MinScore: 1.5}, nil},
		{"min score NaN", Options{MinScore: math.NaN()}, nil},
		{"min score infinite", Options{MinScore: math.Inf(1)}, nil},
		{"missing calibration", Options{Calibration: filepath.Join(dir, "none.json")}, fs.ErrNotExist},
		{"calibration not JSON", Options{Calibration: write("text.json", "not json")}, model.ErrCalibration},
		{"calibration decreasing", Options{Calibration: write("down.json", `{"method":"isotonic","scores":[0.1,0.5],"precisions":[0.9,0.2]}`)}, model.ErrCalibration},
		{"calibration a directory", Options{Calibration: dir}, model.ErrCalibration},
	} {
		_, err := New(tc.opts)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: not one line: %q", tc.name, err)
		}
	}
	if _, err := New(Options{MinScore: 1, Calibration: write("ok.json", `{"method":"isotonic","scores":[0.1,0.5],"precisions":[0.2,0.9]}`)}); err != nil {
		t.Errorf("a good calibration and min score 1: %v", err)
	}
}
