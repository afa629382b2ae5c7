package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model/hub"
)

// TestDemo runs the whole demo on a synthetic model: embedded broker,
// sample documents, the stream, and a line for every document.
func TestDemo(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--model", "synth:tiny", "--threads", "1", "--max-new-tokens", "16")
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errs)
	}
	for _, id := range []string{"lovelace", "turing", "curie", "hopper", "menu", "nlp", "unicode"} {
		if !strings.Contains(out, id+" ") {
			t.Errorf("no line for %s in:\n%s", id, out)
		}
	}
	for _, dl := range []string{"dead letter: invalid_json", "dead letter: missing_text"} {
		if !strings.Contains(out, dl) {
			t.Errorf("no %q in:\n%s", dl, out)
		}
	}
	if got := strings.Count(out, "\n"); got != 9 {
		t.Errorf("%d lines, want 9:\n%s", got, out)
	}
	if !strings.Contains(errs, "meaningless") || !strings.Contains(errs, "7 annotations and 2 dead letters") {
		t.Errorf("stderr %q", errs)
	}
}

// TestDemoWithoutModel: with no model in the cache, the demo pulls the
// default one, saying so; here the hub answers 404, and the demo fails in
// one line that names the synthetic model as the way to try it now.
func TestDemoWithoutModel(t *testing.T) {
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.Path
		http.NotFound(w, r)
	}))
	defer srv.Close()
	t.Setenv("NERSTREAM_MODEL_DIR", t.TempDir())
	t.Setenv("HF_ENDPOINT", srv.URL)
	code, out, errs := runCLI(t, "", "demo")
	checkOneLineError(t, code, 1, errs, "--model synth:tiny")
	if !strings.Contains(out, "pulling "+hub.DefaultModelRef) {
		t.Errorf("the demo did not say it pulls the default model: %q", out)
	}
	if !strings.HasSuffix(asked, "/"+hub.DefaultModelFile) {
		t.Errorf("the hub was asked for %q", asked)
	}
}

// TestEvalWithModel runs a synthetic model over the bundled sample, saves
// its raw answers, and checks that scoring the saved answers gives the same
// report: the model path and the predictions path agree.
func TestEvalWithModel(t *testing.T) {
	saved := filepath.Join(t.TempDir(), "preds.jsonl")
	data := "../../examples/eval/crossner_ai_sample.json"
	code, out, errs := runCLI(t, "", "eval", "--data", data, "--model", "synth:tiny", "--threads", "1", "--max-new-tokens", "12", "--save-predictions", saved)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var report struct {
		Queries            int `json:"queries"`
		MissingPredictions int `json:"missing_predictions"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if report.Queries == 0 || report.MissingPredictions != 0 {
		t.Fatalf("report %s", out)
	}
	lines, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(lines), "\n"); n != report.Queries {
		t.Fatalf("%d saved predictions for %d queries", n, report.Queries)
	}
	code, again, errs := runCLI(t, "", "eval", "--data", data, "--predictions", saved)
	if code != 0 || again != out {
		t.Fatalf("scoring the saved answers: exit %d, %s\n got %s\nwant %s", code, errs, again, out)
	}
	// The saved answers carry the model's scores: a sweep reads them, and
	// its point at threshold 0 is the report above.
	code, swept, errs := runCLI(t, "", "eval", "--data", data, "--predictions", saved, "--thresholds", "0,0.5")
	if code != 0 {
		t.Fatalf("sweeping the saved answers: exit %d, %s", code, errs)
	}
	var sweep struct {
		Points []struct {
			Official struct{ Correct, Predicted, Gold int }
		}
	}
	var counts struct{ Correct, Predicted, Gold int }
	if err := json.Unmarshal([]byte(swept), &sweep); err != nil || len(sweep.Points) != 2 {
		t.Fatalf("sweep %q: %v", swept, err)
	}
	if err := json.Unmarshal([]byte(out), &counts); err != nil || sweep.Points[0].Official != counts {
		t.Fatalf("threshold 0: %+v, the report %+v (%v)", sweep.Points[0].Official, counts, err)
	}
}
