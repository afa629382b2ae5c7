package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBenchPipeline runs `bench pipeline` in-process on a small backlog.
// Its broker is this test binary re-executed as `bench broker`, which
// TestMain turns into nerstream's main when NERSTREAM_TEST_MAIN=1 is set.
// No timing is asserted: only that both phases processed every document
// and that every figure is there.
func TestBenchPipeline(t *testing.T) {
	t.Setenv("NERSTREAM_TEST_MAIN", "1")
	start := time.Now()
	code, out, errs := runCLI(t, "", "bench", "pipeline", "--docs", "2000", "--partitions", "3", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	t.Logf("took %v; stderr %q\n%s", time.Since(start), errs, out)
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"docs", "partitions", "max_docs", "max_in_flight", "workers", "raw_batch",
		"raw_msgs_per_s", "pipeline_msgs_per_s", "ratio",
		"raw_after_join_msgs_per_s", "pipeline_after_join_msgs_per_s", "after_join_ratio",
		"raw_peak_rss_mb", "peak_rss_mb", "heap_peak_mb", "start_rss_mb", "raw_cpu_s", "pipeline_cpu_s", "raw_docs", "pipeline_docs", "raw_committed", "pipeline_committed"} {
		v, ok := raw[k].(float64)
		if !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, raw[k])
		}
	}
	var r pipelineBench
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Docs != 2000 || r.Partitions != 3 {
		t.Errorf("docs %d, partitions %d", r.Docs, r.Partitions)
	}
	// Every document went through both phases and was committed. A
	// rebalance could write some twice, hence >=.
	if r.RawCommitted != 2000 || r.PipelineCommitted != 2000 {
		t.Errorf("committed: raw %d, pipeline %d, want 2000 each", r.RawCommitted, r.PipelineCommitted)
	}
	if r.RawDocs < 2000 || r.PipelineDocs < 2000 || r.PipelineDeadLetters != 0 {
		t.Errorf("written: raw %d, pipeline %d (dead letters %d), want 2000 each", r.RawDocs, r.PipelineDocs, r.PipelineDeadLetters)
	}
	if r.MeanValueB < 150 || r.MeanValueB > 250 {
		t.Errorf("mean document %v bytes, want about 200", r.MeanValueB)
	}
	if r.RSSPeakFrom != "vmhwm" && r.RSSPeakFrom != "sampled" {
		t.Errorf("rss_peak_from %q", r.RSSPeakFrom)
	}
	if strings.Contains(errs, "level=ERROR") {
		t.Errorf("errors logged: %s", errs)
	}
}

func TestBenchPipelineUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "pipeline", "--docs", "0"},
		{"bench", "pipeline", "--max-docs", "64", "--max-in-flight", "32"},
		{"bench", "pipeline", "extra"},
	} {
		code, _, errs := runCLI(t, "", args...)
		checkOneLineError(t, code, 2, errs, "")
	}
}

func TestBenchDoc(t *testing.T) {
	for _, size := range []int{60, 200, 1000} {
		v := benchDoc(12345, size)
		var d struct{ ID, Text string }
		if err := json.Unmarshal(v, &d); err != nil || d.ID != "doc-12345" || d.Text == "" {
			t.Fatalf("size %d: %s (%v)", size, v, err)
		}
		if len(v) < size*3/4 || len(v) > size+16 {
			t.Errorf("size %d: %d bytes: %s", size, len(v), v)
		}
	}
}
