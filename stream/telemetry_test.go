package stream

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/telemetry"
)

// TestTraceAcrossTheStream produces records with known trace contexts,
// and follows them through a member to their annotation and dead letter:
// the output headers continue the trace, and the spans in between have the
// messaging attributes and the parent and link relations of the package
// doc of pipeline.
func TestTraceAcrossTheStream(t *testing.T) {
	c := kafkatest.StartBroker(t, 1)
	brokers := c.ListenAddrs()
	exp := tracetest.NewInMemoryExporter()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Options{SpanExporter: exp, ServiceName: "nerstream-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	cfg := kafkatest.StreamConfig(brokers)
	m, err := New(cfg, nil, WithRecognizer(&kafkatest.InstantRecognizer{}), WithModelName("test-double"),
		WithLogger(slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: "member"}, nil))), WithTelemetry(tel, telemetry.NewHealth()))
	if err != nil {
		t.Fatal(err)
	}

	const (
		goodTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		goodSpan  = "00f067aa0ba902b7"
		badTrace  = "0af7651916cd43dd8448eb211c80319c"
		badSpan   = "b7ad6b7169203331"
	)
	kafkatest.ProduceRaw(t, brokers,
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
	go func() { done <- m.Run(rctx) }()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The annotation continues the producer's trace, with its baggage.
	anns := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
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
	dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3)
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
	process := find("process "+kafkatest.InTopic, goodTrace)
	if process.Parent.SpanID().String() != goodSpan || process.SpanKind != trace.SpanKindConsumer {
		t.Errorf("process span: parent %s kind %v, want the producer's span %s and consumer", process.Parent.SpanID(), process.SpanKind, goodSpan)
	}
	checkAttrs(t, process, map[string]string{
		"messaging.system": "kafka", "messaging.destination.name": kafkatest.InTopic, "messaging.destination.partition.id": "0",
		"messaging.kafka.offset": "0", "messaging.consumer.group.name": cfg.Kafka.GroupID, "messaging.kafka.message.key": "doc-1",
		"messaging.operation.name": "process",
	})
	send := find("send "+kafkatest.OutTopic, goodTrace)
	if send.Parent.SpanID() != process.SpanContext.SpanID() || send.SpanKind != trace.SpanKindProducer {
		t.Errorf("send span: parent %s kind %v, want the process span %s and producer", send.Parent.SpanID(), send.SpanKind, process.SpanContext.SpanID())
	}
	if send.SpanContext.SpanID().String() != annSpan {
		t.Errorf("the annotation carries span %s, not its send span %s", annSpan, send.SpanContext.SpanID())
	}
	checkAttrs(t, send, map[string]string{"messaging.system": "kafka", "messaging.destination.name": kafkatest.OutTopic, "messaging.operation.name": "send"})

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

	bad := find("process "+kafkatest.InTopic, badTrace)
	if bad.Status.Code != codes.Error || !strings.Contains(bad.Status.Description, "invalid_json") {
		t.Errorf("dead letter's span status %+v, want an error naming invalid_json", bad.Status)
	}
	if s := find("send "+kafkatest.DLQTopic, badTrace); s.SpanContext.SpanID().String() != dlqSpan {
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
