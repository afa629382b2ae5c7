package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
)

// TestEvalSweep: eval --sweep on the bundled example's scored predictions
// prints a point at threshold 0 equal to plain eval's figures under both
// metrics, writes a plot that parses, and --format table prints a row per
// threshold.
func TestEvalSweep(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "eval")
	data := filepath.Join(dir, "crossner_ai_sample.json")
	scored := filepath.Join(dir, "predictions-scored.jsonl")
	plot := filepath.Join(t.TempDir(), "plot.svg")
	code, out, errs := runCLI(t, "", "eval", "--data", data, "--predictions", scored, "--sweep", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	type scores struct {
		Precision, Recall, F1    float64
		Correct, Predicted, Gold int
	}
	var rep struct {
		Points []struct {
			Threshold      float64
			Official, Span scores
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Points) != 21 {
		t.Fatalf("sweep %q: %v", out, err)
	}
	for metric, got := range map[string]scores{"official": rep.Points[0].Official, "span": rep.Points[0].Span} {
		code, plain, errs := runCLI(t, "", "eval", "--data", data, "--predictions", filepath.Join(dir, "predictions.jsonl"), "--metric", metric)
		var want scores
		if err := json.Unmarshal([]byte(plain), &want); code != 0 || err != nil {
			t.Fatalf("eval --metric %s: exit %d %s %v", metric, code, errs, err)
		}
		if got != want {
			t.Errorf("%s at threshold 0: %+v, eval says %+v", metric, got, want)
		}
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	for {
		if _, err := dec.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the plot does not parse: %v", err)
			}
			break
		}
	}
	// The plot in the README is this command's output.
	got, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "eval-sweep.svg")); err != nil || !bytes.Equal(committed, got) {
		t.Errorf("docs/eval-sweep.svg differs from the plot of the bundled example (%v): make it again with the README's command", err)
	}
	code, table, errs := runCLI(t, "", "eval", "--data", data, "--predictions", scored, "--thresholds", "0,0.5", "--format", "table")
	if code != 0 || strings.Count(table, "\n") != 5 || !strings.Contains(table, "best F1: official") {
		t.Errorf("table: exit %d %s\n%s", code, errs, table)
	}
}

// TestEvalSweepHostile: predictions without scores, bad scores, an empty
// file and bad flags each give exit 2 and one line.
func TestEvalSweepHostile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ex := filepath.Join("..", "..", "examples", "eval")
	data := filepath.Join(ex, "crossner_ai_sample.json")
	scored := filepath.Join(ex, "predictions-scored.jsonl")
	for _, c := range []struct {
		name string
		args []string
		says string
	}{
		{"no scores", []string{"--predictions", filepath.Join(ex, "predictions.jsonl"), "--sweep"}, "carry no scores"},
		{"empty file", []string{"--predictions", write("empty.jsonl", ""), "--sweep"}, "carry no scores"},
		{"NaN score", []string{"--predictions", write("nan.jsonl", `{"id": "CrossNER_AI_9", "output": "[\"x\"]", "scores": {"x": NaN}}`+"\n"), "--sweep"}, "line 1"},
		{"negative score", []string{"--predictions", write("neg.jsonl", `{"id": "CrossNER_AI_9", "output": "[\"x\"]", "scores": {"x": -0.5}}`+"\n"), "--sweep"}, "outside [0, 1]"},
		{"score over 1", []string{"--predictions", write("big.jsonl", `{"id": "CrossNER_AI_9", "output": "[]", "empty_score": 2}`+"\n"), "--sweep"}, "outside [0, 1]"},
		{"bad threshold", []string{"--predictions", scored, "--thresholds", "0.1,abc"}, "--thresholds"},
		{"threshold over 1", []string{"--predictions", scored, "--thresholds", "1.5"}, "--thresholds"},
		{"thresholds and sweep", []string{"--predictions", scored, "--thresholds", "0.5", "--sweep"}, "give one"},
		{"bad format", []string{"--predictions", scored, "--sweep", "--format", "xml"}, "--format"},
		{"calibrate without scores", []string{"--predictions", filepath.Join(ex, "predictions.jsonl"), "--calibrate", filepath.Join(dir, "c.json")}, "carry no scores"},
		{"calibrate into a missing folder", []string{"--predictions", scored, "--calibrate", filepath.Join(dir, "no", "such", "c.json")}, "--calibrate"},
		{"plot into a missing folder", []string{"--predictions", scored, "--plot", filepath.Join(dir, "no", "such", "p.svg")}, "--plot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", append([]string{"eval", "--data", data}, c.args...)...)
			checkOneLineError(t, code, 2, errs, c.says)
		})
	}
}

// TestEvalCalibrate: eval --calibrate writes a calibration that
// model.calibration reads, fitted on every scored item of the example.
func TestEvalCalibrate(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "eval")
	out := filepath.Join(t.TempDir(), "cal.json")
	code, stdout, errs := runCLI(t, "", "eval", "--data", filepath.Join(dir, "crossner_ai_sample.json"), "--predictions", filepath.Join(dir, "predictions-scored.jsonl"), "--calibrate", out)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d: %s %s", code, stdout, errs)
	}
	c, err := model.ReadCalibration(out)
	if err != nil {
		t.Fatal(err)
	}
	// The official metric's 26 predicted items, all scored.
	if c.Samples != 26 || c.Apply(0) != c.Precisions[0] || c.Apply(1) != c.Precisions[len(c.Precisions)-1] {
		t.Errorf("calibration %+v", c)
	}
}
