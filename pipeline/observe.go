package pipeline

import (
	"context"
	"strconv"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// This file holds the pipeline's spans and the consumer lag. The spans
// follow OpenTelemetry's messaging conventions:
//
//   - "process {topic}", kind consumer, one per record, from its fetch to
//     the acknowledgement of its output; the child of the producer's span
//     when the record's headers carry one. A dead letter sets its status
//     to error with the reason.
//   - "infer", one per model call, linked to each record's span (and each
//     record's span links back to it), with gen_ai.* attributes.
//   - "send {topic}", kind producer, one per output record, the child of
//     its record's span; its context goes into the output's headers.

// The gen_ai attributes of the infer span. OpenTelemetry's GenAI
// conventions are still in development, and the Go semconv v1.43.0
// package has none of them, so the keys are spelled here.
const (
	genAIOperationName   = attribute.Key("gen_ai.operation.name")
	genAIRequestModel    = attribute.Key("gen_ai.request.model")
	genAIUsageInput      = attribute.Key("gen_ai.usage.input_tokens")
	genAIUsageOutput     = attribute.Key("gen_ai.usage.output_tokens")
	genAITextCompletion  = "text_completion"
	operationNameProcess = "process"
	operationNameSend    = "send"
)

// spanNames and the attributes that every span of one claim shares are
// built once per claim: at tens of thousands of records a second, building
// them per record is a measurable part of tracing's cost.
type claimSpans struct {
	process     string               // "process {topic}"
	processAttr []attribute.KeyValue // the claim's own, then scratch room
	sends       map[string]sendSpans // by output topic; the emitter's alone
}

type sendSpans struct {
	name  string
	attrs []attribute.KeyValue
}

func (p *Pipeline) newClaimSpans(topic string, partition int) claimSpans {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationName(operationNameProcess),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(partition)),
	}
	if p.opts.GroupName != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(p.opts.GroupName))
	}
	return claimSpans{process: "process " + topic, processAttr: attrs, sends: map[string]sendSpans{}}
}

// startProcess starts the record's process span. Only the claim's fetch
// goroutine calls it.
func (p *Pipeline) startProcess(it *item) (context.Context, trace.Span) {
	parent := it.in.TraceContext
	if parent == nil {
		parent = context.Background()
	}
	cs := &it.claim.spans
	ctx, span := p.opts.Tracer.Start(parent, cs.process, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		// The span copies the attributes, so the claim's slice serves
		// as scratch room past its shared part.
		n := len(cs.processAttr)
		attrs := append(cs.processAttr, semconv.MessagingKafkaOffset(int(it.in.Offset)))
		if len(it.in.Key) > 0 && utf8.Valid(it.in.Key) {
			attrs = append(attrs, semconv.MessagingKafkaMessageKey(string(it.in.Key)))
		}
		span.SetAttributes(attrs...)
		cs.processAttr = attrs[:n]
	}
	return ctx, span
}

// startInfer starts the span of one model call over items, linked both
// ways to the records' spans.
func (p *Pipeline) startInfer(ctx context.Context, items []*item) (context.Context, trace.Span) {
	links := make([]trace.Link, 0, len(items))
	for _, it := range items {
		if sc := it.span.SpanContext(); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := p.opts.Tracer.Start(ctx, "infer", trace.WithLinks(links...))
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetAttributes(
		genAIOperationName.String(genAITextCompletion),
		genAIRequestModel.String(p.opts.ModelName),
		semconv.MessagingBatchMessageCount(len(items)),
	)
	back := trace.Link{SpanContext: span.SpanContext()}
	for _, it := range items {
		it.span.AddLink(back)
	}
	return ctx, span
}

func endInfer(span trace.Span, inputTokens, outputTokens int) {
	if span.IsRecording() {
		span.SetAttributes(genAIUsageInput.Int(inputTokens), genAIUsageOutput.Int(outputTokens))
	}
}

func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// startSend starts the span of the item's output record; the returned
// context is the one its headers carry. Only the claim's emitter calls it.
func (p *Pipeline) startSend(it *item) (context.Context, trace.Span) {
	cs := &it.claim.spans
	ss, ok := cs.sends[it.out.Topic]
	if !ok {
		ss = sendSpans{name: "send " + it.out.Topic, attrs: []attribute.KeyValue{
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationName(operationNameSend),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(it.out.Topic),
		}}
		cs.sends[it.out.Topic] = ss
	}
	ctx, span := p.opts.Tracer.Start(it.ctx, ss.name, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(ss.attrs...)
	}
	return ctx, span
}

// acknowledged ends the item's span and counts it, once its output is
// acknowledged.
func (p *Pipeline) acknowledged(it *item, now time.Time) {
	m := p.opts.Metrics
	if it.reason != "" {
		m.DeadLettered(it.ctx, it.in.Topic, it.reason)
		it.span.SetAttributes(semconv.ErrorTypeKey.String(it.reason))
		it.span.SetStatus(codes.Error, "dead letter: "+it.reason)
	}
	start := it.in.Time
	if start.IsZero() || start.After(now) {
		start = it.fetched
	}
	m.RecordLatency(it.ctx, now.Sub(start))
	it.span.End()
}

// countProduced counts the acknowledged outputs of one write, once per run
// of one topic rather than once per record.
func (p *Pipeline) countProduced(items []*item) {
	if p.opts.Metrics == nil {
		return
	}
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && items[j].out.Topic == items[i].out.Topic {
			j++
		}
		p.opts.Metrics.Produced(context.Background(), items[i].out.Topic, j-i)
		i = j
	}
}

// endAbandoned ends the span of a record dropped uncommitted when its claim
// ended: it will be redelivered.
func endAbandoned(span trace.Span) {
	span.AddEvent("abandoned: the claim ended; the record is not committed and will be redelivered")
	span.End()
}

// fetchedAt notes a fetched record for the lag.
func (c *claim) fetchedAt(offset, highWaterMark int64) {
	if highWaterMark > 0 {
		c.hwm.Store(highWaterMark)
	}
	// With no committed offset yet, the lag counts from the first record.
	c.committed.CompareAndSwap(-1, offset)
}

// observeLag reports each live claim's lag: the records between its
// committed offset and the high-water mark of its last fetch.
func (p *Pipeline) observeLag(observe func(topic string, partition int, lag int64)) {
	p.claims.Range(func(k, _ any) bool {
		c := k.(*claim)
		hwm, committed := c.hwm.Load(), c.committed.Load()
		if hwm > 0 && committed >= 0 {
			observe(c.topic, c.partition, max(hwm-committed, 0))
		}
		return true
	})
}
