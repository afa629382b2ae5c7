package eval

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sweepFixture is three queries on one passage whose counts at each
// threshold are worked out by hand in TestSweep.
func sweepFixture(t *testing.T) ([]Dataset, Predictions, PredictionScores) {
	t.Helper()
	text := "Ada Lovelace met Charles Babbage in London."
	d := Dataset{Name: "fixture", Queries: []Query{
		{ID: "q1", Text: text, Type: "person", Gold: []string{"Ada Lovelace", "Charles Babbage"}},
		{ID: "q2", Text: text, Type: "location", Gold: []string{"London"}},
		{ID: "q3", Text: text, Type: "organization"},
	}}
	in := `{"id": "q1", "output": "[\"Ada Lovelace\", \"Charles Babbage\", \"London\"]", "scores": {"Ada Lovelace": 0.9, "Charles Babbage": 0.4, "London": 0.2}}
{"id": "q2", "output": "[\"London\"]", "scores": {"London": 0.6}}
{"id": "q3", "output": "[]", "empty_score": 0.8}
`
	preds, scores, err := ReadScoredPredictions(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	return []Dataset{d}, preds, scores
}

func TestSweep(t *testing.T) {
	datasets, preds, scores := sweepFixture(t)
	rep, err := Sweep(datasets, preds, scores, []float64{0, 0.3, 0.5, 0.7, 0.95})
	if err != nil {
		t.Fatal(err)
	}
	// Gold is 3 throughout; "London" as a person is the one wrong mention
	// under both metrics.
	want := []Counts{{3, 4, 3}, {3, 3, 3}, {2, 2, 3}, {1, 1, 3}, {0, 0, 3}}
	for i, p := range rep.Points {
		if p.Official.Counts != want[i] || p.Span.Counts != want[i] {
			t.Errorf("threshold %g: official %+v, span %+v, want %+v", p.Threshold, p.Official.Counts, p.Span.Counts, want[i])
		}
	}
	if rep.BestOfficial != (Best{0.3, 1}) || rep.BestSpan != (Best{0.3, 1}) {
		t.Errorf("best: %+v %+v, want F1 1 at 0.3", rep.BestOfficial, rep.BestSpan)
	}
	// Bins 2 (0.2, wrong), 4 (0.4), 6 (0.6) and 9 (0.9), each of one.
	wantBins := map[int]Bin{2: {Count: 1, MeanScore: 0.2}, 4: {Count: 1, MeanScore: 0.4, Precision: 1}, 6: {Count: 1, MeanScore: 0.6, Precision: 1}, 9: {Count: 1, MeanScore: 0.9, Precision: 1}}
	for i, b := range rep.Reliability {
		w := wantBins[i]
		w.Lo, w.Hi = float64(i)/10, float64(i+1)/10
		if b != w {
			t.Errorf("bin %d: %+v, want %+v", i, b, w)
		}
	}
	if want := (0.2 + 0.6 + 0.4 + 0.1) / 4; math.Abs(rep.ECE-want) > 1e-12 {
		t.Errorf("ECE %v, want %v", rep.ECE, want)
	}
	if rep.Unscored != 0 {
		t.Errorf("unscored %d, want 0", rep.Unscored)
	}
}

// TestSweepUnscored: a mention without a score counts as 0: kept at
// threshold 0, dropped above, and counted.
func TestSweepUnscored(t *testing.T) {
	datasets, preds, scores := sweepFixture(t)
	delete(scores["q1"].Mentions, "Ada Lovelace")
	rep, err := Sweep(datasets, preds, scores, []float64{0, 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unscored != 1 || rep.Points[0].Official.Correct != 3 || rep.Points[1].Official.Correct != 2 {
		t.Errorf("unscored %d, correct %d then %d; want 1, 3, 2", rep.Unscored, rep.Points[0].Official.Correct, rep.Points[1].Official.Correct)
	}
}

func TestSweepErrors(t *testing.T) {
	datasets, preds, scores := sweepFixture(t)
	if _, err := Sweep(datasets, preds, nil, []float64{0}); !errors.Is(err, ErrNoScores) {
		t.Errorf("no scores: %v, want ErrNoScores", err)
	}
	for _, th := range [][]float64{nil, {-0.1}, {1.5}, {math.NaN()}} {
		if _, err := Sweep(datasets, preds, scores, th); err == nil {
			t.Errorf("thresholds %v: no error", th)
		}
	}
}

func TestReadScoredPredictionsHostile(t *testing.T) {
	for name, in := range map[string]string{
		"negative":       `{"id": "a", "output": "[\"x\"]", "scores": {"x": -0.1}}`,
		"over one":       `{"id": "a", "output": "[\"x\"]", "scores": {"x": 1.0001}}`,
		"NaN":            `{"id": "a", "output": "[\"x\"]", "scores": {"x": NaN}}`,
		"a string":       `{"id": "a", "output": "[\"x\"]", "scores": {"x": "0.5"}}`,
		"empty negative": `{"id": "a", "output": "[]", "empty_score": -1}`,
		"empty huge":     `{"id": "a", "output": "[]", "empty_score": 1e999}`,
		"scores a list":  `{"id": "a", "output": "[]", "scores": [0.5]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadScoredPredictions(strings.NewReader(in + "\n"))
			if !errors.Is(err, ErrPredictions) {
				t.Fatalf("error %v, want ErrPredictions", err)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "line 1") {
				t.Errorf("error %q: want one line that names line 1", err)
			}
		})
	}
}

func TestParseThresholds(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []float64
	}{
		{"0.5,0,0.25", []float64{0, 0.25, 0.5}},
		{"1, 1,0", []float64{0, 1}},
		{"", nil}, {"x", nil}, {"-0.1", nil}, {"1.1", nil}, {"NaN", nil}, {"0.1,,0.2", nil},
		{strings.Repeat("0,", MaxThresholds), nil},
	} {
		got, err := ParseThresholds(c.in)
		if (err == nil) != (c.want != nil) || !reflect.DeepEqual(got, c.want) && c.want != nil {
			t.Errorf("ParseThresholds(%.30q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// exampleSweep sweeps the bundled example's scored predictions, and
// returns it with the unscored predictions' reports of today.
func exampleSweep(t *testing.T) (SweepReport, Report, Report) {
	t.Helper()
	dir := filepath.Join("..", "examples", "eval")
	datasets, err := Load(filepath.Join(dir, "crossner_ai_sample.json"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) (Predictions, PredictionScores) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, s, err := ReadScoredPredictions(f)
		if err != nil {
			t.Fatal(err)
		}
		return p, s
	}
	plain, _ := read("predictions.jsonl")
	scored, scores := read("predictions-scored.jsonl")
	if !reflect.DeepEqual(plain, scored) {
		t.Fatal("predictions-scored.jsonl's outputs differ from predictions.jsonl's")
	}
	rep, err := Sweep(datasets, scored, scores, DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	official, err := Evaluate(datasets, plain, Options{Metric: MetricOfficial})
	if err != nil {
		t.Fatal(err)
	}
	span, err := Evaluate(datasets, plain, Options{Metric: MetricSpan})
	if err != nil {
		t.Fatal(err)
	}
	return rep, official, span
}

// TestSweepExample: on the bundled example, the point at threshold 0 is
// today's figures exactly, and raising the threshold never adds a
// prediction.
func TestSweepExample(t *testing.T) {
	rep, official, span := exampleSweep(t)
	p0 := rep.Points[0]
	if p0.Threshold != 0 || p0.Official != official.Scores || p0.Span != span.Scores {
		t.Errorf("threshold %g: official %+v span %+v; today %+v and %+v", p0.Threshold, p0.Official, p0.Span, official.Scores, span.Scores)
	}
	for i := 1; i < len(rep.Points); i++ {
		a, b := rep.Points[i-1], rep.Points[i]
		if b.Official.Predicted > a.Official.Predicted || b.Span.Predicted > a.Span.Predicted {
			t.Errorf("threshold %g predicts more than %g", b.Threshold, a.Threshold)
		}
	}
	if last := rep.Points[len(rep.Points)-1]; last.Official.Predicted != 0 {
		t.Errorf("threshold 1 keeps %d mentions; the example has no score of 1", last.Official.Predicted)
	}
}

// TestWritePlot: the plot is XML with one polyline per metric through the
// sweep's points, ten reliability bars as high as the bins' precision, and
// the ECE.
func TestWritePlot(t *testing.T) {
	rep, _, _ := exampleSweep(t)
	// The example's top threshold keeps no prediction: its precision is
	// undefined, and the curve must not run to the origin for it.
	if last := rep.Points[len(rep.Points)-1]; last.Official.Predicted != 0 || last.Span.Predicted != 0 {
		t.Fatalf("the example's last threshold %g keeps predictions: the plot's empty case is untested", last.Threshold)
	}
	checkPlot(t, rep)
}

// checkPlot parses the plot of rep and checks each drawn point and bar
// against the report's figures: every threshold with predictions is on its
// curve, in order, and one with none is named in a note, not drawn.
func checkPlot(t *testing.T, rep SweepReport) {
	var buf bytes.Buffer
	if err := WritePlot(&buf, rep); err != nil {
		t.Fatal(err)
	}
	polylines := map[string]string{}
	var bars []float64 // heights
	var ece, undrawn string
	dec := xml.NewDecoder(&buf)
	inECE, inUndrawn := false, false
	for {
		tok, err := dec.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the SVG does not parse: %v", err)
			}
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			a := map[string]string{}
			for _, at := range el.Attr {
				a[at.Name.Local] = at.Value
			}
			switch {
			case el.Name.Local == "polyline":
				polylines[a["class"]] = a["points"]
			case el.Name.Local == "rect" && a["class"] == "bar":
				h, err := strconv.ParseFloat(a["height"], 64)
				if err != nil {
					t.Fatal(err)
				}
				bars = append(bars, h)
			case el.Name.Local == "text" && a["class"] == "ece":
				inECE = true
			case el.Name.Local == "text" && a["class"] == "undrawn":
				inUndrawn = true
			}
		case xml.CharData:
			if inECE {
				ece, inECE = string(el), false
			}
			if inUndrawn {
				undrawn, inUndrawn = string(el), false
			}
		}
	}
	var empty []string // thresholds with no prediction
	for _, pt := range rep.Points {
		if pt.Official.Predicted == 0 || pt.Span.Predicted == 0 {
			empty = append(empty, fmt.Sprintf("%g", pt.Threshold))
		}
	}
	if want := "no predictions, not drawn: " + strings.Join(empty, ", "); len(empty) > 0 && undrawn != want || len(empty) == 0 && undrawn != "" {
		t.Errorf("note %q, want %q", undrawn, want)
	}
	for _, m := range []string{"official", "span"} {
		pts := strings.Fields(polylines["curve "+m])
		var want []Scores
		for _, pt := range rep.Points {
			s := pt.Official
			if m == "span" {
				s = pt.Span
			}
			if s.Predicted > 0 {
				want = append(want, s)
			}
		}
		if len(pts) != len(want) {
			t.Fatalf("%s: %d points, want %d (of %d thresholds)", m, len(pts), len(want), len(rep.Points))
		}
		for i, pt := range pts {
			var x, y float64
			if _, err := fmt.Sscanf(pt, "%g,%g", &x, &y); err != nil {
				t.Fatal(err)
			}
			s := want[i]
			r, p := (x-plotMargin)/plotPanel, 1-(y-plotMargin)/plotPanel
			if math.Abs(r-s.Recall) > 1e-4 || math.Abs(p-s.Precision) > 1e-4 {
				t.Errorf("%s point %d at recall %.4f precision %.4f, want %.4f %.4f", m, i, r, p, s.Recall, s.Precision)
			}
		}
	}
	if len(bars) != 10 {
		t.Fatalf("%d bars, want 10", len(bars))
	}
	for i, h := range bars {
		if math.Abs(h/plotPanel-rep.Reliability[i].Precision) > 1e-4 {
			t.Errorf("bar %d: height %.4f, precision %.4f", i, h/plotPanel, rep.Reliability[i].Precision)
		}
	}
	if want := fmt.Sprintf("ECE %.4f", rep.ECE); ece != want || rep.ECE <= 0 {
		t.Errorf("ECE text %q, want %q (> 0)", ece, want)
	}
}

// TestCalibrate: the calibration is fitted on the official items with
// their scores: in the fixture, the wrong "London" (0.2) below three right
// mentions, so precision 0 then 1.
func TestCalibrate(t *testing.T) {
	datasets, preds, scores := sweepFixture(t)
	c, err := Calibrate(datasets, preds, scores)
	if err != nil {
		t.Fatal(err)
	}
	if c.Samples != 4 || !reflect.DeepEqual(c.Scores, []float64{0.2, 0.4, 0.6, 0.9}) || !reflect.DeepEqual(c.Precisions, []float64{0, 1, 1, 1}) {
		t.Errorf("calibration %+v", c)
	}
	if _, err := Calibrate(datasets, preds, nil); !errors.Is(err, ErrNoScores) {
		t.Errorf("no scores: %v, want ErrNoScores", err)
	}
}
