package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/bench"
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
	var r bench.PipelineResult
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

// TestBenchPipelineTelemetry runs `bench pipeline --telemetry` on a small
// backlog: the telemetry phases must have exported every span they made to
// the broker process's OTLP receiver. No timing is asserted.
func TestBenchPipelineTelemetry(t *testing.T) {
	t.Setenv("NERSTREAM_TEST_MAIN", "1")
	const docs = 300
	start := time.Now()
	code, out, errs := runCLI(t, "", "bench", "pipeline", "--docs", "300", "--partitions", "3", "--telemetry", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	t.Logf("took %v; stderr %q\n%s", time.Since(start), errs, out)
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"raw_msgs_per_s", "pipeline_msgs_per_s", "ratio",
		"telemetry_msgs_per_s", "telemetry_after_join_msgs_per_s", "telemetry_ratio", "telemetry_with_flush_msgs_per_s",
		"pipeline_cpu_us_per_doc", "telemetry_cpu_us_per_doc", "telemetry_peak_rss_mb",
		"otlp_requests", "otlp_trace_requests", "otlp_metric_requests", "otlp_bytes", "spans_expected", "spans_exported"} {
		v, ok := raw[k].(float64)
		if !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, raw[k])
		}
	}
	for _, k := range []string{"telemetry_cost_pct", "telemetry_with_flush_cost_pct", "telemetry_cpu_cost_pct", "telemetry_flush_ms", "spans_dropped"} {
		if _, ok := raw[k].(float64); !ok {
			t.Errorf("%s = %v, want a number", k, raw[k])
		}
	}
	var r bench.PipelineResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	tb := r.BenchTelemetry
	if tb == nil {
		t.Fatal("no telemetry figures")
	}
	if r.Rounds != 2 || r.Order != "pipeline,telemetry,telemetry-2,pipeline-2,raw" || len(r.Phases) != 5 {
		t.Errorf("rounds %d, order %q, %d phases", r.Rounds, r.Order, len(r.Phases))
	}
	if tb.Exporter != "otlp-http" || tb.SamplingRatio != 1 || tb.OTLPReceiver != "broker process" || !tb.InputTraceparent {
		t.Errorf("exporter %q, sampling %v, receiver %q, traceparent %v", tb.Exporter, tb.SamplingRatio, tb.OTLPReceiver, tb.InputTraceparent)
	}
	if tb.TelemetryRatio <= 0 || tb.TelemetryRatio > 10 {
		t.Errorf("telemetry_ratio %v", tb.TelemetryRatio)
	}
	// Two telemetry phases: a process and a send span per document each,
	// and an infer span per model call.
	if tb.SpansExported < docs || tb.SpansByName["process"] < 2*docs || tb.SpansByName["send"] < 2*docs || tb.SpansByName["infer"] < 2 {
		t.Errorf("spans exported %d, by name %v; want a process and a send span per document in each of 2 phases", tb.SpansExported, tb.SpansByName)
	}
	// Every process span continues the input's trace.
	if tb.SpansWithParent["process"] != tb.SpansByName["process"] || tb.SpansWithParent["send"] != tb.SpansByName["send"] {
		t.Errorf("spans with a parent %v, of %v", tb.SpansWithParent, tb.SpansByName)
	}
	if tb.SpansExported < tb.SpansExpected || tb.SpansDropped != 0 {
		t.Errorf("spans: %d expected, %d exported, %d dropped", tb.SpansExpected, tb.SpansExported, tb.SpansDropped)
	}
	if tb.OTLPTraceRequests < 2 || tb.OTLPMetricRequests < 2 || tb.OTLPBytes < int64(tb.SpansExported)*50 {
		t.Errorf("receiver: %d trace and %d metric requests, %d bytes", tb.OTLPTraceRequests, tb.OTLPMetricRequests, tb.OTLPBytes)
	}
	var plain, traced int
	for _, p := range r.Phases {
		if p.Committed != docs {
			t.Errorf("phase %s committed %d, want %d", p.Phase, p.Committed, docs)
		}
		switch {
		case strings.HasPrefix(p.Phase, "telemetry"):
			traced++
			if p.SpansExported < p.SpansExpected || p.OTLPRequests == 0 {
				t.Errorf("phase %s: %d spans expected, %d exported, %d requests", p.Phase, p.SpansExpected, p.SpansExported, p.OTLPRequests)
			}
		case strings.HasPrefix(p.Phase, "pipeline"):
			plain++
			if p.SpansExported != 0 || p.OTLPRequests != 0 {
				t.Errorf("phase %s exported %d spans", p.Phase, p.SpansExported)
			}
		}
	}
	if plain != 2 || traced != 2 {
		t.Errorf("%d plain and %d telemetry phases, want 2 each", plain, traced)
	}
	if r.PipelineCommitted != docs || r.RawCommitted != docs {
		t.Errorf("committed: pipeline %d, raw %d", r.PipelineCommitted, r.RawCommitted)
	}
	if strings.Contains(errs, "level=ERROR") {
		t.Errorf("errors logged: %s", errs)
	}
}

func TestBenchPipelineUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "pipeline", "--docs", "0"},
		{"bench", "pipeline", "--rounds", "-1"},
		{"bench", "pipeline", "--max-docs", "64", "--max-in-flight", "32"},
		{"bench", "pipeline", "extra"},
	} {
		code, _, errs := runCLI(t, "", args...)
		checkOneLineError(t, code, 2, errs, "")
	}
}

// TestBenchPipelineLogs runs `bench pipeline --logs` with the tiny
// synthetic model on a small log-like stream: a phase without the cache and
// one with it, the cache's figures from the same run, its bytes within its
// bound. No timing is asserted. Bad settings exit 2 with one line.
func TestBenchPipelineLogs(t *testing.T) {
	t.Setenv("NERSTREAM_TEST_MAIN", "1")
	for _, args := range [][]string{
		{"--logs"}, // no model
		{"--logs", "--model", "synth:tiny", "--cache-entries", "0", "--cache-bytes", "0"},
		{"--logs", "--model", "synth:tiny", "--cache-bytes", "-5"},
		{"--logs", "--model", "synth:tiny", "--log-fillings", "0"},
		{"--logs", "--model", "synth:tiny", "--log-fillings", "-3"},
		{"--logs", "--model", "synth:tiny", "--log-fillings", "99999999999"},
	} {
		code, _, errs := runCLI(t, "", append([]string{"bench", "pipeline", "--docs", "10"}, args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") > 1 || !strings.Contains(errs, "--logs") && !strings.Contains(errs, "cache") && !strings.Contains(errs, "--log-fillings") {
			t.Errorf("%q: exit %d, stderr %q, want 2 and one line", args, code, errs)
		}
	}
	const docs = 150
	// Three fillings per template, not the default, so that the count of
	// misses proves the broker process drew the stream the flag asked for.
	code, out, errs := runCLI(t, "", "bench", "pipeline", "--logs", "--model", "synth:tiny", "--max-new-tokens", "4",
		"--docs", "150", "--partitions", "2", "--cache-bytes", "1048576", "--timeout", "5m", "--log-fillings", "3")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var r bench.PipelineResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	c := r.Cache
	if c == nil {
		t.Fatalf("no cache figures:\n%s", out)
	}
	t.Logf("%+v", *c)
	if c.OffDocsPerS <= 0 || c.OnDocsPerS <= 0 || c.Speedup <= 0 || c.DistinctTexts <= 0 || c.DistinctTexts >= docs {
		t.Errorf("figures %+v", *c)
	}
	// Each document asks 3 types once in the cache phase.
	if c.Hits+c.Misses != 3*docs || c.Misses < int64(3*c.DistinctTexts) || c.HitRatio <= 0 {
		t.Errorf("hits %d, misses %d for %d documents of %d distinct texts", c.Hits, c.Misses, docs, c.DistinctTexts)
	}
	// The bound holds the stream's answers: nothing evicted, so each
	// distinct text missed once per type (single flight), which also
	// proves that the stream the members read is the one counted here.
	if c.Evictions != 0 || c.Misses != int64(3*c.DistinctTexts) {
		t.Errorf("%d misses, %d evictions, for %d distinct texts of 3 types", c.Misses, c.Evictions, c.DistinctTexts)
	}
	if c.Fillings != 3 || math.Abs(c.Bound-1/(1-c.HitRatio)) > 1e-9 || math.Abs(c.OfBound-c.Speedup/c.Bound) > 1e-9 {
		t.Errorf("fillings %d, bound %v, of bound %v at hit ratio %v and speedup %v", c.Fillings, c.Bound, c.OfBound, c.HitRatio, c.Speedup)
	}
	if !c.WithinBound || c.Bytes > 1048576 || c.Bytes <= 0 {
		t.Errorf("cache bytes %d of %d, within bound %v", c.Bytes, c.MaxBytes, c.WithinBound)
	}
	phases := []string{}
	for _, p := range r.Phases {
		phases = append(phases, p.Phase)
		if p.Phase != "raw" && p.Committed != docs {
			t.Errorf("phase %s committed %d of %d", p.Phase, p.Committed, docs)
		}
	}
	if strings.Join(phases, ",") != "pipeline,cache,raw" {
		t.Errorf("phases %q", phases)
	}
}
