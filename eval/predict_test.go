package eval

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
)

// TestPredictScores: Predict keeps each answer's scores from a scripted
// engine (a test double) with known token probabilities, and
// WritePredictions and ReadScoredPredictions carry them unchanged.
func TestPredictScores(t *testing.T) {
	tok := func(piece string, p float64) model.TokenLogProb {
		return model.TokenLogProb{Bytes: len(piece), LogProb: math.Log(p)}
	}
	eng := &modeltest.ScriptedEngine{
		Answer: modeltest.Answers(map[string]string{"person": `["Ada Lovelace"]`}),
		LogProbs: func(_, query, answer string) []model.TokenLogProb {
			if query == "person" {
				return []model.TokenLogProb{tok(`["`, 0.9), tok("Ada", 0.5), tok(" Lovelace", 0.8), tok(`"]`, 0.6)}
			}
			return []model.TokenLogProb{tok("[", 0.7), tok("]", 0.5)}
		},
	}
	text := "Ada Lovelace wrote."
	datasets := []Dataset{{Name: "d", Queries: []Query{
		{ID: "p", Text: text, Type: "person"},
		{ID: "o", Text: text, Type: "organization"},
	}}}
	preds, scores, failed, err := Predict(context.Background(), eng, datasets, PredictOptions{})
	if err != nil || failed != 0 {
		t.Fatal(failed, err)
	}
	// The mention: its tokens and the closing quote, not the opening one.
	if got := scores["p"].Mentions["Ada Lovelace"]; math.Abs(got-0.5*0.8*0.6) > 1e-4 {
		t.Errorf("mention score %v, want %v", got, 0.5*0.8*0.6)
	}
	if e := scores["o"].Empty; e == nil || math.Abs(*e-0.35) > 1e-4 {
		t.Errorf("empty score %v, want 0.35", e)
	}
	var buf bytes.Buffer
	if err := WritePredictions(&buf, datasets, preds, scores); err != nil {
		t.Fatal(err)
	}
	p2, s2, err := ReadScoredPredictions(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p2, preds) || !reflect.DeepEqual(s2, scores) {
		t.Errorf("read back %v %v, want %v %v", p2, s2, preds, scores)
	}
}
