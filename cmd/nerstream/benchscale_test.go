package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
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

// TestBenchScaleCrash runs the crash phase in-process: 3 members on 4
// partitions, two rounds, each killing a member by SIGKILL. It proves the
// events from what the processes and the coordinator report, not from
// timing: the victim died of SIGKILL (not a graceful exit), the
// coordinator dropped it and its partitions went to the survivors, no
// round wrote more duplicates than a member may hold uncommitted
// (batch.max_in_flight), and every committed input record has an output.
func TestBenchScaleCrash(t *testing.T) {
	t.Setenv("NERSTREAM_TEST_MAIN", "1")
	code, out, errs := runCLI(t, "", "bench", "scale", "--partitions", "4", "--members", "1", "--window", "500ms",
		"--rebalance-members", "0", "--crash-members", "3", "--crash-rounds", "2", "--crash-session-timeout", "2s",
		"--docs", "12000", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	t.Logf("stderr %q\n%s", errs, out)
	var r bench.ScaleResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	c := r.Crash
	if c == nil {
		t.Fatal("no crash figures")
	}
	if c.Members != 3 || c.Rounds != 2 || len(c.Kills) != 2 || c.SessionTimeoutMS != 2000 || c.MaxInFlight <= 0 {
		t.Fatalf("crash = %+v, want 3 members, 2 rounds with their kills, a 2 s session, max in flight", *c)
	}
	victims := map[string]bool{}
	var dups int64
	for i, k := range c.Kills {
		if !k.SIGKILL || !strings.Contains(k.Exit, "killed") {
			t.Errorf("kill %d: exit %q, sigkill %v: the victim did not die of SIGKILL", i, k.Exit, k.SIGKILL)
		}
		victims[k.Victim] = true
		if len(k.Partitions) == 0 {
			t.Errorf("kill %d: the victim %s held no partition", i, k.Victim)
		}
		var moved []int
		for id, ps := range k.TakenBy {
			if id == k.Victim || id == "" {
				t.Errorf("kill %d: partitions %v still with %q after the rebalance", i, ps, id)
			}
			moved = append(moved, ps...)
		}
		slices.Sort(moved)
		if !slices.Equal(moved, k.Partitions) {
			t.Errorf("kill %d: survivors took %v, want the victim's %v", i, moved, k.Partitions)
		}
		if k.ExpelledMS <= 0 || k.RecoveryMS < k.ExpelledMS || k.RejoinMS <= 0 {
			t.Errorf("kill %d: expelled %v ms, recovered %v ms, rejoin %v ms: want expelled > 0, recovery after it, rejoin > 0", i, k.ExpelledMS, k.RecoveryMS, k.RejoinMS)
		}
		if k.Duplicates < 0 || k.Duplicates > int64(c.MaxInFlight) {
			t.Errorf("kill %d: %d duplicates, more than batch.max_in_flight %d allows", i, k.Duplicates, c.MaxInFlight)
		}
		dups += k.Duplicates
	}
	if len(victims) != 2 {
		t.Errorf("victims %v, want two different members", victims)
	}
	if c.Lost != 0 || c.Committed <= 0 || c.UniqueInputs < c.Committed {
		t.Errorf("lost %d of %d committed inputs (%d with an output), want none lost", c.Lost, c.Committed, c.UniqueInputs)
	}
	if c.Outputs+c.DeadLetters != c.UniqueInputs+dups+c.DuplicatesBefore {
		t.Errorf("%d outputs + %d dead letters, want %d inputs + %d duplicates", c.Outputs, c.DeadLetters, c.UniqueInputs, dups+c.DuplicatesBefore)
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
		{"bench", "scale", "--crash-members", "-1"},
		{"bench", "scale", "--crash-members", "1"},
		{"bench", "scale", "--crash-members", "100000"},
		{"bench", "scale", "--crash-members", "x"},
		{"bench", "scale", "--crash-members", "3", "--crash-rounds", "0"},
		{"bench", "scale", "--crash-members", "3", "--crash-session-timeout", "100ms"},
		{"bench", "scale", "--crash-session-timeout", "-1s"},
		{"bench", "scale", "extra"},
		{"bench", "member", "--group", "g"},
		{"bench", "member", "--broker", "127.0.0.1:1", "--group", "g", "--max-docs", "0"},
		{"bench", "member", "--broker", "127.0.0.1:1", "--group", "g", "--session-timeout", "0s"},
		{"bench", "member", "--broker", "127.0.0.1:1", "--group", "g", "--session-timeout", "soon"},
	} {
		code, _, errs := runCLI(t, "", args...)
		checkOneLineError(t, code, 2, errs, "")
	}
}
