package model_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

func TestFitIsotonic(t *testing.T) {
	for _, c := range []struct {
		name         string
		scores       []float64
		correct      []bool
		wantX, wantY []float64
	}{
		{"already monotone", []float64{0.2, 0.5, 0.9}, []bool{false, true, true}, []float64{0.2, 0.5, 0.9}, []float64{0, 1, 1}},
		// 0.3 right, 0.6 wrong violate: pooled to one block of mean 0.45, precision 0.5.
		{"a violation pooled", []float64{0.1, 0.3, 0.6, 0.9}, []bool{false, true, false, true}, []float64{0.1, 0.45, 0.9}, []float64{0, 0.5, 1}},
		{"equal scores are one block", []float64{0.5, 0.5, 0.5, 0.8}, []bool{true, false, false, true}, []float64{0.5, 0.8}, []float64{1.0 / 3, 1}},
		{"all wrong: equal precisions stay apart", []float64{0.9, 0.1}, []bool{false, false}, []float64{0.1, 0.9}, []float64{0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := model.FitIsotonic(c.scores, c.correct)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.Scores, c.wantX) || !near(got.Precisions, c.wantY) || got.Samples != len(c.scores) {
				t.Errorf("got %+v, want scores %v precisions %v", got, c.wantX, c.wantY)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the fit does not validate: %v", err)
			}
		})
	}
	for _, bad := range [][]float64{nil, {math.NaN()}, {1.5}} {
		if _, err := model.FitIsotonic(bad, make([]bool, len(bad))); !errors.Is(err, model.ErrCalibration) {
			t.Errorf("FitIsotonic(%v): %v, want ErrCalibration", bad, err)
		}
	}
}

func near(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			return false
		}
	}
	return true
}

func TestCalibrationApply(t *testing.T) {
	c := &model.Calibration{Method: "isotonic", Scores: []float64{0.2, 0.6}, Precisions: []float64{0.1, 0.9}}
	for s, want := range map[float64]float64{0: 0.1, 0.2: 0.1, 0.4: 0.5, 0.5: 0.7, 0.6: 0.9, 1: 0.9} {
		if got := c.Apply(s); math.Abs(got-want) > 1e-9 {
			t.Errorf("Apply(%v) = %v, want %v", s, got, want)
		}
	}
}

func TestReadCalibrationHostile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not JSON":            "garbage",
		"empty":               "",
		"another method":      `{"method": "platt", "scores": [0.5], "precisions": [0.5]}`,
		"no points":           `{"method": "isotonic", "scores": [], "precisions": []}`,
		"lengths differ":      `{"method": "isotonic", "scores": [0.1, 0.2], "precisions": [0.5]}`,
		"scores not rising":   `{"method": "isotonic", "scores": [0.5, 0.5], "precisions": [0.1, 0.2]}`,
		"precision falls":     `{"method": "isotonic", "scores": [0.1, 0.5], "precisions": [0.6, 0.2]}`,
		"outside [0, 1]":      `{"method": "isotonic", "scores": [-0.1], "precisions": [0.5]}`,
		"precision over one":  `{"method": "isotonic", "scores": [0.1], "precisions": [1.5]}`,
		"a long method":       `{"method": "` + strings.Repeat("x\\n", 5000) + `", "scores": [0.1], "precisions": [0.5]}`,
		"too many points":     `{"method": "isotonic", "scores": [` + strings.Repeat("0.1,", model.MaxCalibrationPoints) + `0.2], "precisions": [0.5]}`,
		"bigger than the cap": `{"method": "isotonic", "scores": [0.1], "precisions": [0.5], "x": "` + strings.Repeat("a", 2<<20) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "c.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := model.ReadCalibration(p)
			if !errors.Is(err, model.ErrCalibration) {
				t.Fatalf("error %v, want ErrCalibration", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Errorf("error not one short line: %.300q", msg)
			}
		})
	}
}

// TestRecognizerCalibration: with model.calibration, an entity's score is
// the calibrated map of its raw score (from a scripted engine, a test
// double, with known token probabilities), and empty_scores stay raw; a
// bad file refuses the recognizer.
func TestRecognizerCalibration(t *testing.T) {
	eng := &modeltest.ScriptedEngine{
		Answer: modeltest.Answers(map[string]string{"person": `["Ada Lovelace"]`}),
		LogProbs: func(_, _, answer string) []model.TokenLogProb {
			return byteTokens(answer, 0.95)
		},
	}
	doc := []record.Document{{Text: "Ada Lovelace wrote.", Types: []string{"person", "place"}}}
	raw := newRecognizer(t, eng, model.RecognizerOptions{MaxNewTokens: 32})
	anns, err := raw.Recognize(context.Background(), doc)
	if err != nil || anns[0].Err != nil || len(anns[0].Entities) != 1 {
		t.Fatal(err, anns)
	}
	rawScore := *anns[0].Entities[0].Score
	cal := &model.Calibration{Method: "isotonic", Scores: []float64{0.1, 0.9}, Precisions: []float64{0.2, 0.6}}
	p := filepath.Join(t.TempDir(), "cal.json")
	if err := os.WriteFile(p, []byte(`{"method": "isotonic", "scores": [0.1, 0.9], "precisions": [0.2, 0.6]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRecognizer(t, eng, model.RecognizerOptions{MaxNewTokens: 32, Calibration: p})
	got, err := r.Recognize(context.Background(), doc)
	if err != nil || got[0].Err != nil || len(got[0].Entities) != 1 {
		t.Fatal(err, got)
	}
	raw14 := math.Pow(0.95, float64(len("Ada Lovelace")+1))
	if want := cal.Apply(raw14); *got[0].Entities[0].Score != want || want == rawScore {
		t.Errorf("calibrated score %v, want %v (raw %v)", *got[0].Entities[0].Score, want, rawScore)
	}
	if !reflect.DeepEqual(got[0].EmptyScores, anns[0].EmptyScores) {
		t.Errorf("empty_scores %v, want the raw %v", got[0].EmptyScores, anns[0].EmptyScores)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"method": "isotonic", "scores": [0.9, 0.1], "precisions": [0.2, 0.6]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := model.NewRecognizer(eng, model.RecognizerOptions{Calibration: bad}); !errors.Is(err, model.ErrCalibration) {
		t.Errorf("a bad calibration: %v, want ErrCalibration", err)
	}
}
