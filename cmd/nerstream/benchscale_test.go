package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/bench"
)

// TestBenchScale runs a tiny `bench scale` in-process: 2 partitions and
// 1, 2 and 3 members, each member this test binary re-executed as `bench
// member` (and the broker as `bench broker`). No timing is asserted: only
// that every count was measured, that the member beyond the partitions
// idled without failing, that the rebalance phase counted its outputs
// per document, and that the plot was written.
func TestBenchScale(t *testing.T) {
	t.Setenv("NERSTREAM_TEST_MAIN", "1")
	plot := filepath.Join(t.TempDir(), "scale.svg")
	code, out, errs := runCLI(t, "", "bench", "scale", "--partitions", "2", "--members", "1,2,3", "--docs", "3000",
		"--window", "1s", "--rebalance-members", "1", "--timeout", "60s", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	t.Logf("stderr %q\n%s", errs, out)
	var r bench.ScaleResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if r.Partitions != 2 || len(r.Points) != 3 {
		t.Fatalf("partitions %d, %d points, want 2 and 3", r.Partitions, len(r.Points))
	}
	for i, p := range r.Points {
		if p.Members != i+1 || p.DocsPerS <= 0 || p.Efficiency <= 0 || p.Failed != 0 {
			t.Errorf("point %d = %+v, want %d members, docs/s and efficiency > 0, none failed", i, p, i+1)
		}
		if want := min(p.Members, 2); p.Assigned != want || p.Idle != p.Members-want {
			t.Errorf("%d members: %d assigned, %d idle, want %d and %d", p.Members, p.Assigned, p.Idle, want, p.Members-want)
		}
	}
	if r.Points[0].Efficiency != 1 {
		t.Errorf("the first point's efficiency is %v, want 1 by definition", r.Points[0].Efficiency)
	}
	rb := r.Rebalance
	if rb == nil {
		t.Fatal("no rebalance figures")
	}
	if rb.JoinMS <= 0 || rb.LeaveMS <= 0 || rb.UniqueDocs <= 0 || rb.Duplicates != rb.Outputs-rb.UniqueDocs || rb.MaxCopies < 1 {
		t.Errorf("rebalance = %+v, want times > 0, outputs counted per document", *rb)
	}
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<circle") != 3 {
		t.Errorf("plot is not an SVG with 3 points:\n%s", svg)
	}
}

func TestBenchScaleUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "scale", "--members", "0"},
		{"bench", "scale", "--members", "1,x"},
		{"bench", "scale", "--members", "1,100000"},
		{"bench", "scale", "--members", ""},
		{"bench", "scale", "--partitions", "0"},
		{"bench", "scale", "--window", "0s"},
		{"bench", "scale", "--latency", "-1s"},
		{"bench", "scale", "--rebalance-members", "-1"},
		{"bench", "scale", "--docs", "-5"},
		{"bench", "scale", "extra"},
		{"bench", "member", "--group", "g"},
		{"bench", "member", "--broker", "127.0.0.1:1", "--group", "g", "--max-docs", "0"},
	} {
		code, _, errs := runCLI(t, "", args...)
		checkOneLineError(t, code, 2, errs, "")
	}
}
