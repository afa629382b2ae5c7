package main

import (
	"strings"
	"testing"
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

func TestDemoWithoutModel(t *testing.T) {
	t.Setenv("NERSTREAM_MODEL_DIR", t.TempDir())
	code, _, errs := runCLI(t, "", "demo")
	checkOneLineError(t, code, 1, errs, "--model synth:tiny")
}
