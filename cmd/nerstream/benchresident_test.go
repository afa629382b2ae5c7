package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchEngineResidentRounds: bench engine --resident-rounds measures
// the engine with the resident prompt prefix off and on (and checks that
// it changes no answer); on, fewer tokens are decoded. A negative count
// is bad usage, in one line.
func TestBenchEngineResidentRounds(t *testing.T) {
	code, out, errs := runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--threads", "1", "--docs", "4", "--types", "2",
		"--doc-tokens", "16", "--max-new-tokens", "4", "--skip-naive", "--resident-rounds", "1")
	if code != 0 {
		t.Fatalf("bench engine: exit %d: %s", code, errs)
	}
	var res struct {
		Attached int `json:"resident_prefix_tokens"`
		Resident *struct {
			Off      float64      `json:"off_docs_per_s"`
			On       float64      `json:"on_docs_per_s"`
			Speedup  float64      `json:"speedup"`
			OffToks  float64      `json:"off_decode_tokens"`
			OnToks   float64      `json:"on_decode_tokens"`
			Attached float64      `json:"on_resident_tokens"`
			Rounds   [][2]float64 `json:"rounds"`
		} `json:"resident"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r := res.Resident
	if r == nil || r.Off <= 0 || r.On <= 0 || r.Speedup != r.On/r.Off || len(r.Rounds) != 1 || r.Attached <= 0 || r.OnToks >= r.OffToks || res.Attached <= 0 {
		t.Errorf("figures %s", out)
	}

	code, _, errs = runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--resident-rounds", "-1")
	if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "--resident-rounds") {
		t.Errorf("--resident-rounds -1: exit %d, stderr %q; want 2 and one line naming the flag", code, errs)
	}
}
