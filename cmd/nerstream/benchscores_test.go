package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchEngineScoresRounds: bench engine --scores-rounds measures the
// engine with entity scores off and on (and counts the answers that differ
// from the first round's); a negative count is bad usage, in one line.
func TestBenchEngineScoresRounds(t *testing.T) {
	code, out, errs := runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--threads", "1", "--docs", "2", "--types", "2",
		"--doc-tokens", "16", "--max-new-tokens", "4", "--skip-naive", "--scores-rounds", "1")
	if code != 0 {
		t.Fatalf("bench engine: exit %d: %s", code, errs)
	}
	var res struct {
		Off      float64  `json:"scores_off_docs_per_s"`
		On       float64  `json:"scores_on_docs_per_s"`
		Overhead *float64 `json:"scores_overhead"`
		Share    float64  `json:"score_time_share"`
		Differ   *[2]int  `json:"scores_differ"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// One round: the first (off) is the reference, so nothing off can
	// differ, and at most the 2 documents on.
	if res.Off <= 0 || res.On <= 0 || res.Overhead == nil || *res.Overhead != 1-res.On/res.Off || res.Share <= 0 || res.Share >= 1 ||
		res.Differ == nil || res.Differ[0] != 0 || res.Differ[1] < 0 || res.Differ[1] > 2 {
		t.Errorf("figures %s", out)
	}

	code, _, errs = runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--scores-rounds", "-1")
	if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "--scores-rounds") {
		t.Errorf("--scores-rounds -1: exit %d, stderr %q; want 2 and one line naming the flag", code, errs)
	}
}
