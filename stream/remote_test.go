package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/server"
	"github.com/nerstream/nerstream/telemetry"
)

// faultyWorker is nerstream serve over the tiny model (a real
// OpenAI-compatible peer) behind a fault layer, a test double of a
// failing GPU server: it answers HTTP 500 to any completion request whose
// body holds poison, and to every request while down is set.
type faultyWorker struct {
	srv    *httptest.Server
	poison string
	down   atomic.Bool
	faults atomic.Int64
}

func startFaultyWorker(t *testing.T, poison string) *faultyWorker {
	t.Helper()
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	api, err := server.New(server.Options{MaxNewTokens: 4, Types: []string{"person"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.SetModel(m.Engine, "tiny"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range api.Routes() {
		mux.Handle(p, h)
	}
	w := &faultyWorker{poison: poison}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if w.down.Load() || (w.poison != "" && strings.HasSuffix(r.URL.Path, "/completions") && bytes.Contains(body, []byte(w.poison))) {
			w.faults.Add(1)
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusInternalServerError)
			rw.Write([]byte(`{"error":{"message":"CUDA error: illegal memory access (test double)"}}`))
			return
		}
		mux.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// open opens the openai engine over the worker, with quick retries.
func (w *faultyWorker) open(t *testing.T) *engines.Model {
	t.Helper()
	m, err := engines.Open(context.Background(), "openai:"+w.srv.URL+"/v1", engines.Options{OpenAI: openaiOptions()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestStreamPoisonDocumentOverOpenAI: issue 16's reproduction, a server
// that answers HTTP 500 whenever a prompt holds one document's text. That
// batch was held and retried 51 times in 75 s: nothing annotated, nothing
// dead-lettered, the committed offset stuck at -1. Now the poison document
// is an inference_failed dead letter after retry.max_attempts, every other
// document is annotated, nothing is lost, and the offsets reach the log
// end.
//
// Every output comes exactly once unless a write was retried: delivery is
// at-least-once (DESIGN.md, Delivery), and a produce request that timed out
// on a loaded machine may have been written before it is sent again, by
// kafka-go (the writer's Retries) or by the pipeline (WriteRetries). Only
// then are duplicates allowed; without a retry, one is a bug.
func TestStreamPoisonDocumentOverOpenAI(t *testing.T) {
	const n = 24
	w := startFaultyWorker(t, "Ada wrote note 7.")
	m := w.open(t)
	c := kafkatest.StartBroker(t, 2)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.MaxNewTokens = 4
	cfg.Batch.MaxDocs = 8
	cfg.Retry.MaxAttempts = 3
	s, err := New(cfg, m.Engine, WithModelName("tiny"), WithLogger(slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: "member"}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 2, 2*time.Minute)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	retried := s.Stats().WriteRetries + s.writer.Retries()
	if w.faults.Load() == 0 {
		t.Fatal("the worker never failed: the test proves nothing")
	}
	ids := outputIDs(t, brokers)
	if ids["doc-7"] != 0 {
		t.Errorf("doc-7, the poison document, annotated %d times", ids["doc-7"])
	}
	dups := 0
	for i := range n {
		id := fmt.Sprintf("doc-%d", i)
		if k := ids[id]; i != 7 && k == 0 {
			t.Errorf("%s lost: not annotated", id)
		} else if k > 1 {
			dups += k - 1
		}
		delete(ids, id)
	}
	if len(ids) != 0 {
		t.Errorf("annotations of documents never sent: %v", ids)
	}
	dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3)
	for _, d := range dlq {
		if !strings.Contains(string(d.Value), `"doc-7"`) || d.Headers["nerstream-error"] != record.ReasonInferenceFailed {
			t.Fatalf("dead letter %+v, want doc-7 alone, inference_failed", d)
		}
	}
	if len(dlq) == 0 {
		t.Fatal("doc-7 was not dead-lettered")
	}
	dups += len(dlq) - 1
	t.Logf("%d produce requests retried, %d duplicates", retried, dups)
	if dups > 0 && retried == 0 {
		t.Errorf("%d duplicate outputs (annotations or dead letters) though no write was retried", dups)
	}
}

// TestStreamOutageOverOpenAI: a server that fails every request. Nothing
// is dead-lettered or committed, readiness is false, and once the server
// recovers every document is annotated and the offsets reach the end.
func TestStreamOutageOverOpenAI(t *testing.T) {
	const n = 12
	w := startFaultyWorker(t, "")
	m := w.open(t)
	w.down.Store(true)
	c := kafkatest.StartBroker(t, 2)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.MaxNewTokens = 4
	cfg.Retry.MaxAttempts = 2
	health := telemetry.NewHealth()
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "nerstream-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	s, err := New(cfg, m.Engine, WithModelName("tiny"), WithTelemetry(tel, health),
		WithLogger(slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: "member"}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Wait until the outage has been met many times over.
	deadline := time.Now().Add(time.Minute)
	for w.faults.Load() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d failed requests in a minute", w.faults.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ready, reasons := health.Ready(); ready || !strings.Contains(strings.Join(reasons, " "), "model") {
		t.Errorf("ready %v %q during the outage", ready, reasons)
	}
	if got, _ := kafkatest.Committed(brokers, cfg.Kafka.GroupID, 2); got[0] > 0 || got[1] > 0 {
		t.Errorf("committed %v during the outage", got)
	}
	if dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3); len(dlq) != 0 {
		t.Fatalf("%d dead letters during an outage", len(dlq))
	}
	w.down.Store(false)
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 2, 2*time.Minute)
	if ready, reasons := health.Ready(); !ready && strings.Contains(strings.Join(reasons, " "), "model") {
		t.Errorf("not ready after the recovery: %q", reasons)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dups := kafkatest.CheckAllIDs(t, outputIDs(t, brokers), n); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	if dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3); len(dlq) != 0 {
		t.Fatalf("%d dead letters after the outage", len(dlq))
	}
	var a struct{ Model string }
	if out := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3); len(out) == 0 || json.Unmarshal(out[0].Value, &a) != nil || a.Model != "tiny" {
		t.Errorf("annotations %d, model %q", len(out), a.Model)
	}
}

// openaiOptions are quick retries for the tests' engines.
func openaiOptions() openai.Options {
	return openai.Options{Retries: 1, BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Cooldown: 200 * time.Millisecond}
}

// outputIDs counts each document id in the output topic (the tiny model's
// entities are random, so only the ids are checked).
func outputIDs(t *testing.T, brokers []string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3) {
		var a struct{ ID string }
		if err := json.Unmarshal(r.Value, &a); err != nil || a.ID != r.Key {
			t.Fatalf("output record %q (key %q): %v", r.Value, r.Key, err)
		}
		ids[a.ID]++
	}
	return ids
}
