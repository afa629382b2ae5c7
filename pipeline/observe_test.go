package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// observed is a pipeline's telemetry, recorded in memory.
type observed struct {
	spans  *tracetest.SpanRecorder
	tracer trace.Tracer
	reader *sdkmetric.ManualReader
	m      *telemetry.Metrics
	health *telemetry.Health
}

func newObserved(t *testing.T) *observed {
	t.Helper()
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	o.tracer = tp.Tracer("test")
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	var err error
	if o.m, err = telemetry.NewMetrics(mp.Meter("test")); err != nil {
		t.Fatal(err)
	}
	o.health = telemetry.NewHealth(telemetry.CheckModel, telemetry.CheckProducer)
	return o
}

// value is the sum of the int64 sum or gauge points of the named metric
// whose attributes include attrs, and whether any point matched.
func (o *observed) value(t *testing.T, name string, attrs ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sum int64
	found := false
	match := func(set attribute.Set) bool {
		for _, kv := range attrs {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum, found = sum+p.Value, true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum, found = sum+p.Value, true
					}
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum, found = sum+int64(p.Count), true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum, found = sum+int64(p.Count), true
					}
				}
			}
		}
	}
	return sum, found
}

// healthSink is a memSink that fails its first write and notes the
// readiness its second write sees.
type healthSink struct {
	memSink
	health  *telemetry.Health
	mu      sync.Mutex
	reasons []string
	calls   int
}

func (s *healthSink) Write(ctx context.Context, outs []Output) error {
	s.mu.Lock()
	s.calls++
	if s.calls == 2 {
		_, s.reasons = s.health.Ready()
	}
	s.mu.Unlock()
	return s.memSink.Write(ctx, outs)
}

func TestSpansMetricsAndHealth(t *testing.T) {
	o := newObserved(t)
	o.health.Set(telemetry.CheckModel, nil)
	sink := &healthSink{memSink: memSink{fail: 1}, health: o.health}
	rec := funcRecognizer(func(_ context.Context, docs []record.Document) ([]model.Annotation, error) {
		anns := make([]model.Annotation, len(docs))
		for i, d := range docs {
			anns[i] = model.Annotation{ID: d.ID, PromptTokens: 10, GeneratedTokens: 2}
		}
		return anns, nil
	})
	h := start(t, Options{Recognizer: rec, Sink: sink, Tracer: o.tracer, Metrics: o.m, Health: o.health, GroupName: "g", ModelName: "m.gguf", Batch: Batch{MaxDocs: 4, MaxInFlight: 16}})

	claim := newMemClaim(0, 10, func(i int) string {
		if i == 3 {
			return "invalid_json"
		}
		return ""
	})
	// Record 0 comes from a traced producer.
	producer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0xf0, 7}, TraceFlags: trace.FlagsSampled, Remote: true})
	first := <-claim.records
	first.TraceContext = trace.ContextWithRemoteSpanContext(context.Background(), producer)
	first.Key = []byte("key-0")
	rest := []Input{first}
	for range 9 {
		rest = append(rest, <-claim.records)
	}
	for _, in := range rest {
		in.HighWaterMark = 10
		claim.records <- in
	}
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 10 }, claim)

	spans := o.spans.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	process := byName["process in"]
	if len(process) != 10 {
		t.Fatalf("%d process spans, want 10; spans %v", len(process), names(spans))
	}
	processByOffset := map[int64]sdktrace.ReadOnlySpan{}
	for _, s := range process {
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %v", s.SpanKind())
		}
		a := attrs(s)
		for k, want := range map[string]string{"messaging.system": "kafka", "messaging.destination.name": "in",
			"messaging.destination.partition.id": "0", "messaging.consumer.group.name": "g", "messaging.operation.type": "process"} {
			if a[k] != want {
				t.Errorf("process span %s = %q, want %q", k, a[k], want)
			}
		}
		off := attrInt(s, "messaging.kafka.offset")
		processByOffset[off] = s
	}
	p0 := processByOffset[0]
	if p0.Parent().SpanID() != producer.SpanID() || p0.SpanContext().TraceID() != producer.TraceID() {
		t.Errorf("record 0's span has parent %v, want the producer's %v", p0.Parent(), producer)
	}
	if attrs(p0)["messaging.kafka.message.key"] != "key-0" {
		t.Errorf("record 0's key attribute: %v", attrs(p0))
	}
	if s := processByOffset[3].Status(); s.Code != codes.Error || !strings.Contains(s.Description, "invalid_json") {
		t.Errorf("dead letter's span status %+v", s)
	}
	if s := processByOffset[1].Status(); s.Code == codes.Error {
		t.Errorf("annotated record's span status %+v", s)
	}

	// Each infer span links to its records, and they link back.
	infer := byName["infer"]
	linked := map[trace.SpanID]trace.SpanID{} // process span → infer span
	inputTokens := int64(0)
	for _, s := range infer {
		if attrs(s)["gen_ai.request.model"] != "m.gguf" || attrs(s)["gen_ai.operation.name"] != "text_completion" {
			t.Errorf("infer span attributes %v", attrs(s))
		}
		inputTokens += attrInt(s, "gen_ai.usage.input_tokens")
		for _, l := range s.Links() {
			linked[l.SpanContext.SpanID()] = s.SpanContext().SpanID()
		}
	}
	if inputTokens != 90 {
		t.Errorf("infer spans count %d input tokens, want 90", inputTokens)
	}
	for off, s := range processByOffset {
		inferID, ok := linked[s.SpanContext().SpanID()]
		if off == 3 {
			if ok {
				t.Errorf("the rejected record reached an infer span")
			}
			continue
		}
		if !ok || !slices.ContainsFunc(s.Links(), func(l sdktrace.Link) bool { return l.SpanContext.SpanID() == inferID }) {
			t.Errorf("record %d: no link both ways with an infer span", off)
		}
	}

	// Each output carries the context of its send span, a child of its
	// record's span.
	sends := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range append(byName["send out"], byName["send dlq"]...) {
		sends[s.SpanContext().SpanID()] = s
	}
	outs := sink.snapshot()
	if len(outs) != 10 || len(sends) != 10 {
		t.Fatalf("%d outputs, %d send spans", len(outs), len(sends))
	}
	for _, out := range outs {
		sc := trace.SpanContextFromContext(out.TraceContext)
		s, ok := sends[sc.SpanID()]
		if !ok {
			t.Fatalf("output %q carries %v, no send span's", out.Value, sc)
		}
		if s.SpanKind() != trace.SpanKindProducer || attrs(s)["messaging.destination.name"] != out.Topic {
			t.Errorf("send span %s: kind %v attrs %v", s.Name(), s.SpanKind(), attrs(s))
		}
		parent := s.Parent().SpanID()
		if !slices.ContainsFunc(process, func(p sdktrace.ReadOnlySpan) bool { return p.SpanContext().SpanID() == parent }) {
			t.Errorf("send span's parent %v is no record's span", parent)
		}
	}

	for _, c := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  int64
	}{
		{"nerstream.records.consumed", []attribute.KeyValue{attribute.String("topic", "in")}, 10},
		{"nerstream.records.produced", []attribute.KeyValue{attribute.String("topic", "out")}, 9},
		{"nerstream.records.produced", []attribute.KeyValue{attribute.String("topic", "dlq")}, 1},
		{"nerstream.records.dead_lettered", []attribute.KeyValue{attribute.String("topic", "in"), attribute.String("reason", "invalid_json")}, 1},
		{"nerstream.model.tokens", []attribute.KeyValue{attribute.String("kind", "input")}, 90},
		{"nerstream.model.tokens", []attribute.KeyValue{attribute.String("kind", "output")}, 18},
		{"nerstream.record.latency", nil, 10},
		{"nerstream.documents.in_flight", nil, 0},
	} {
		if got, ok := o.value(t, c.name, c.attrs...); !ok || got != c.want {
			t.Errorf("%s%v = %d (found %v), want %d", c.name, c.attrs, got, ok, c.want)
		}
	}
	if n, _ := o.value(t, "nerstream.batch.size"); n < 3 {
		t.Errorf("%d model batches recorded, want at least 3 of at most 4 documents", n)
	}

	// The failed first write made the producer unready until a write
	// succeeded.
	if len(sink.reasons) != 1 || !strings.HasPrefix(sink.reasons[0], "producer: writes failing") {
		t.Errorf("readiness during the write retry: %q", sink.reasons)
	}
	if ready, reasons := o.health.Ready(); !ready {
		t.Errorf("not ready at the end: %q", reasons)
	}
}

// TestLagAndModelHealth holds a batch at the model, then checks the lag and
// documents in flight, and that a failing model makes the process unready.
func TestLagAndModelHealth(t *testing.T) {
	o := newObserved(t)
	o.health.Set(telemetry.CheckModel, nil)
	o.health.Set(telemetry.CheckProducer, nil)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			return nil, context.DeadlineExceeded // a model failure, retried
		}
		<-release
		return instant(ctx, docs)
	})
	// The batch closes on its 8 documents only, so all 8 are in it and in
	// flight when the model is called.
	h := start(t, Options{Recognizer: rec, Sink: &memSink{}, Metrics: o.m, Health: o.health, Batch: Batch{MaxDocs: 8, MaxInFlight: 8, Linger: time.Hour}})
	claim := newMemClaim(0, 8, nil)
	for range 8 {
		in := <-claim.records
		in.HighWaterMark = 20
		claim.records <- in
	}
	done := make(chan struct{})
	go func() {
		h.consumeUntil(t, func() bool { return claim.lastCommit() == 8 }, claim)
		close(done)
	}()
	waitFor(t, "the second model call (the probe after a failure, held)", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 2 }, nil)
	if lag, ok := o.value(t, "nerstream.consumer.lag", attribute.String("topic", "in"), attribute.String("partition", "0")); !ok || lag != 20 {
		t.Errorf("lag = %d (found %v), want 20: nothing committed, high-water mark 20", lag, ok)
	}
	if n, _ := o.value(t, "nerstream.documents.in_flight"); n != 8 {
		t.Errorf("in flight = %d, want 8", n)
	}
	if ready, reasons := o.health.Ready(); ready || len(reasons) != 1 || !strings.HasPrefix(reasons[0], "model: inference failing") {
		t.Errorf("ready %v %q while the model fails", ready, reasons)
	}
	close(release)
	<-done
	if ready, reasons := o.health.Ready(); !ready {
		t.Errorf("not ready after the model recovered: %q", reasons)
	}
}

// waitFor waits until cond holds: what is the event it waits for, and
// state, when set, says where things stand if it never comes.
func waitFor(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "waited 20s in vain for " + what
			if state != nil {
				msg += ": " + state()
			}
			t.Fatal(msg)
		}
		time.Sleep(time.Millisecond)
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func attrInt(s sdktrace.ReadOnlySpan, key string) int64 {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.AsInt64()
		}
	}
	return -1
}

// TestNoDocumentTextInLogs fails documents in every way the pipeline logs
// (model failures, retries, dead letters, an encoder error, write retries)
// and checks that no line at info level or above holds their text.
func TestNoDocumentTextInLogs(t *testing.T) {
	const secret = "Ada-Lovelace-private-note"
	var buf syncBuf
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var calls atomic.Int32
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		if calls.Add(1) <= 2 {
			return nil, errors.New("engine failed (test double)")
		}
		anns, _ := instant(ctx, docs)
		for i := range anns {
			anns[i].Err = errors.New("document failed (test double)")
		}
		return anns, nil
	})
	h := start(t, Options{Recognizer: rec, Sink: &memSink{fail: 2}, Encoder: textEncoder{}, Logger: log, Batch: Batch{MaxDocs: 2, MaxInFlight: 8}})
	claim := newMemClaim(0, 4, nil)
	for range 4 {
		in := <-claim.records
		in.Doc.Text = secret + " " + in.Doc.Text
		in.Value = []byte(in.Doc.Text)
		claim.records <- in
	}
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 4 }, claim)
	out := buf.String()
	for _, want := range []string{"inference failed; dead letter", "model failed; retrying", "model failed; holding the batch", "write failed; retrying"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q line: the test did not reach what it checks\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("document text in the logs:\n%s", out)
	}
}

// syncBuf is a strings.Builder safe for a logger's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
