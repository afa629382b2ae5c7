package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/telemetry"
)

// TestTraceAcrossTheStream produces records with known trace contexts,
// and follows them through a member to their annotation and dead letter:
// the output headers continue the trace, and the spans in between have the
// messaging attributes and the parent and link relations of the package
// doc of pipeline.
func TestTraceAcrossTheStream(t *testing.T) {
	c := startBroker(t, 1)
	brokers := c.ListenAddrs()
	exp := tracetest.NewInMemoryExporter()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Options{SpanExporter: exp, ServiceName: "nerstream-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	obs, err := newObservability(tel, telemetry.NewHealth())
	if err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(brokers)
	m, err := newMember(cfg, &instantRecognizer{}, "test-double", slog.New(slog.NewTextHandler(testLogWriter{t, "member"}, nil)), obs)
	if err != nil {
		t.Fatal(err)
	}

	const (
		goodTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		goodSpan  = "00f067aa0ba902b7"
		badTrace  = "0af7651916cd43dd8448eb211c80319c"
		badSpan   = "b7ad6b7169203331"
	)
	produceRaw(t, brokers,
		kafka.Message{Key: []byte("doc-1"), Value: []byte(`{"id":"doc-1","text":"Ada wrote the first program."}`), Headers: []kafka.Header{
			{Key: "traceparent", Value: []byte("00-" + goodTrace + "-" + goodSpan + "-01")},
			{Key: "baggage", Value: []byte("tenant=acme")},
		}},
		kafka.Message{Key: []byte("bad"), Value: []byte(`not json`), Headers: []kafka.Header{
			{Key: "traceparent", Value: []byte("00-" + badTrace + "-" + badSpan + "-01")},
		}},
	)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.run(rctx) }()
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The annotation continues the producer's trace, with its baggage.
	anns := readTopic(t, brokers, outTopic, 3)
	if len(anns) != 1 {
		t.Fatalf("%d annotations, want 1", len(anns))
	}
	annTrace, annSpan := parseTraceparent(t, anns[0].Headers["traceparent"])
	if annTrace != goodTrace || annSpan == goodSpan {
		t.Errorf("annotation traceparent %q: want trace %s and a span of nerstream's", anns[0].Headers["traceparent"], goodTrace)
	}
	if anns[0].Headers["baggage"] != "tenant=acme" {
		t.Errorf("annotation baggage %q", anns[0].Headers["baggage"])
	}
	// The dead letter keeps its input's headers, but one traceparent: nerstream's.
	dlq := readTopic(t, brokers, dlqTopic, 3)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	n := 0
	for _, h := range dlq[0].HeaderList {
		if strings.EqualFold(h.Key, "traceparent") {
			n++
		}
	}
	dlqTrace, dlqSpan := parseTraceparent(t, dlq[0].Headers["traceparent"])
	if n != 1 || dlqTrace != badTrace || dlqSpan == badSpan {
		t.Errorf("dead letter has %d traceparent headers, last %q: want one, of trace %s", n, dlq[0].Headers["traceparent"], badTrace)
	}

	spans := exp.GetSpans()
	find := func(name, traceID string) tracetest.SpanStub {
		t.Helper()
		for _, s := range spans {
			if s.Name == name && s.SpanContext.TraceID().String() == traceID {
				return s
			}
		}
		t.Fatalf("no span %q in trace %s among %d spans", name, traceID, len(spans))
		return tracetest.SpanStub{}
	}
	process := find("process "+inTopic, goodTrace)
	if process.Parent.SpanID().String() != goodSpan || process.SpanKind != trace.SpanKindConsumer {
		t.Errorf("process span: parent %s kind %v, want the producer's span %s and consumer", process.Parent.SpanID(), process.SpanKind, goodSpan)
	}
	checkAttrs(t, process, map[string]string{
		"messaging.system": "kafka", "messaging.destination.name": inTopic, "messaging.destination.partition.id": "0",
		"messaging.kafka.offset": "0", "messaging.consumer.group.name": cfg.Kafka.GroupID, "messaging.kafka.message.key": "doc-1",
		"messaging.operation.name": "process",
	})
	send := find("send "+outTopic, goodTrace)
	if send.Parent.SpanID() != process.SpanContext.SpanID() || send.SpanKind != trace.SpanKindProducer {
		t.Errorf("send span: parent %s kind %v, want the process span %s and producer", send.Parent.SpanID(), send.SpanKind, process.SpanContext.SpanID())
	}
	if send.SpanContext.SpanID().String() != annSpan {
		t.Errorf("the annotation carries span %s, not its send span %s", annSpan, send.SpanContext.SpanID())
	}
	checkAttrs(t, send, map[string]string{"messaging.system": "kafka", "messaging.destination.name": outTopic, "messaging.operation.name": "send"})

	var infer *tracetest.SpanStub
	for i, s := range spans {
		if s.Name == "infer" && linksTo(s.Links, process.SpanContext) {
			infer = &spans[i]
		}
	}
	if infer == nil {
		t.Fatal("no infer span links to the record's span")
	}
	if !linksTo(process.Links, infer.SpanContext) {
		t.Error("the record's span does not link back to its infer span")
	}
	checkAttrs(t, *infer, map[string]string{"gen_ai.request.model": "test-double", "gen_ai.operation.name": "text_completion", "gen_ai.usage.input_tokens": "", "gen_ai.usage.output_tokens": ""})

	bad := find("process "+inTopic, badTrace)
	if bad.Status.Code != codes.Error || !strings.Contains(bad.Status.Description, "invalid_json") {
		t.Errorf("dead letter's span status %+v, want an error naming invalid_json", bad.Status)
	}
	if s := find("send "+dlqTopic, badTrace); s.SpanContext.SpanID().String() != dlqSpan {
		t.Errorf("the dead letter carries span %s, not its send span %s", dlqSpan, s.SpanContext.SpanID())
	}
	if r := process.Resource; r == nil || !strings.Contains(r.String(), "service.name=nerstream-test") {
		t.Errorf("resource %v", r)
	}
}

func parseTraceparent(t *testing.T, v string) (traceID, spanID string) {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 {
		t.Fatalf("traceparent %q", v)
	}
	return parts[1], parts[2]
}

func linksTo(links []sdktrace.Link, sc trace.SpanContext) bool {
	for _, l := range links {
		if l.SpanContext.SpanID() == sc.SpanID() && l.SpanContext.TraceID() == sc.TraceID() {
			return true
		}
	}
	return false
}

// checkAttrs checks the span's attributes; an empty want only asks that
// the attribute is there.
func checkAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, kv := range s.Attributes {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || (v != "" && g != v) {
			t.Errorf("span %q: %s = %q (present %v), want %q", s.Name, k, g, ok, v)
		}
	}
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestReadinessAndMetrics runs `nerstream run` as its own process, started
// before its broker exists: /readyz says 503 while there is no broker, 200
// once the broker is up and the member has joined, and 503 again once the
// broker is gone. Meanwhile /metrics shows the records counted.
func TestReadinessAndMetrics(t *testing.T) {
	port := freePort(t)
	brokers := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	cfg := streamConfig(brokers)
	cfg.Model.Path = "synth:tiny"
	cfg.Model.MaxNewTokens = 4
	cfg.Model.Threads = 1
	cfg.HTTP.ReadinessInterval = 100 * time.Millisecond
	cmd := exec.Command(os.Args[0], "run", "--config", writeConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MAIN=1")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("run's stderr:\n%s", stderr.String())
		}
	})

	// The server's address is in the log line that announces it.
	addrRE := regexp.MustCompile(`"msg":"http: serving[^}]*"address":"([^"]+)"`)
	var base string
	waitUntil(t, 30*time.Second, "the server's address in the log", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			return true
		}
		return false
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	// No broker yet: not ready, saying why.
	time.Sleep(300 * time.Millisecond) // a few readiness intervals
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "producer:") || !strings.Contains(body, "consumer_group:") {
		t.Fatalf("/readyz without a broker: %d %q, want 503 naming the producer and the consumer group", code, body)
	}

	c := startBroker(t, 3, kfake.Ports(port))
	const n = 30
	produceDocs(t, brokers, 0, n)
	waitUntil(t, 60*time.Second, "/readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	waitUntil(t, 60*time.Second, "every record counted", func() bool {
		return metricValue(t, base, `nerstream_records_consumed_total{topic="docs"}`) == n &&
			metricValue(t, base, `nerstream_records_produced_total{topic="entities"}`) == n
	})
	produceDocs(t, brokers, n, n)
	waitUntil(t, 60*time.Second, "the counters to move on", func() bool {
		return metricValue(t, base, `nerstream_records_consumed_total{topic="docs"}`) == 2*n &&
			metricValue(t, base, `nerstream_records_produced_total{topic="entities"}`) == 2*n
	})
	_, metrics := get(t, base+"/metrics")
	for _, name := range []string{"nerstream_batch_size_bucket", "nerstream_record_latency_seconds_bucket", "nerstream_model_latency_seconds_bucket",
		"nerstream_model_tokens_total", "nerstream_model_tokens_per_second_bucket", "nerstream_documents_in_flight", "nerstream_consumer_lag{",
		"nerstream_engine_queue_depth", "go_goroutines"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if v := metricValue(t, base, `nerstream_model_tokens_total{kind="input"}`); v <= 0 {
		t.Errorf("input tokens %v", v)
	}

	// The broker goes away.
	c.Close()
	waitUntil(t, 30*time.Second, "/readyz 503 after the broker is lost", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the broker is lost: %d; the process is alive", code)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue is the value of one series of /metrics (name and labels as
// exposed), or -1 when it is absent.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

var _ = json.Valid
