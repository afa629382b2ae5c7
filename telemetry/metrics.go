package telemetry

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are nerstream's instruments, one catalog so that every name
// starts with "nerstream." (nerstream_ in Prometheus) and the README's list
// has one source. A nil *Metrics records nothing, so code under test needs
// no meter.
//
// The names, with their Prometheus forms:
//
//	nerstream.records.consumed        counter   nerstream_records_consumed_total{topic}
//	nerstream.records.produced        counter   nerstream_records_produced_total{topic}
//	nerstream.records.dead_lettered   counter   nerstream_records_dead_lettered_total{topic,reason}
//	nerstream.batch.size              histogram nerstream_batch_size (documents per model batch)
//	nerstream.record.latency          histogram nerstream_record_latency_seconds (record timestamp to acknowledged output)
//	nerstream.model.latency           histogram nerstream_model_latency_seconds (one model batch)
//	nerstream.model.tokens            counter   nerstream_model_tokens_total{kind=input|output}
//	nerstream.model.tokens_per_second histogram nerstream_model_tokens_per_second (input and output tokens of a batch over its latency)
//	nerstream.entities.below_min_score counter  nerstream_entities_below_min_score_total (entities dropped by model.min_score)
//	nerstream.documents.in_flight     gauge     nerstream_documents_in_flight
//	nerstream.consumer.lag            gauge     nerstream_consumer_lag{topic,partition}
//	nerstream.engine.queue_depth      gauge     nerstream_engine_queue_depth (prompts waiting or decoding)
//	nerstream.cache.hits              counter   nerstream_cache_hits_total (prompts answered by the result cache)
//	nerstream.cache.misses            counter   nerstream_cache_misses_total (prompts the engine was asked)
//	nerstream.cache.evictions         counter   nerstream_cache_evictions_total
//	nerstream.cache.hit_ratio         gauge     nerstream_cache_hit_ratio (hits over hits and misses, since start)
//	nerstream.cache.entries           gauge     nerstream_cache_entries
//	nerstream.cache.bytes             gauge     nerstream_cache_bytes (as the cache counts them, within model.cache.bytes)
//	nerstream.ready                   gauge     nerstream_ready{check} (1 ready, 0 failing: [ObserveHealth])
//	nerstream.engine.workers          gauge     nerstream_engine_workers{device} ([ObserveWorkers])
//
// The record counters label the input topic for consumed and dead-lettered
// records (where the record came from) and the output topic for produced
// ones (where it went). The whole stream's token rate is
// rate(nerstream_model_tokens_total[1m]).
type Metrics struct {
	consumed, produced, deadLettered metric.Int64Counter
	batchSize                        metric.Int64Histogram
	recordLatency, modelLatency      metric.Float64Histogram
	tokens                           metric.Int64Counter
	tokenRate                        metric.Float64Histogram
	belowMinScore                    metric.Int64Counter

	inputTokens, outputTokens metric.AddOption
	// topics caches one attribute option per topic (and per topic and
	// reason): building them on every record would allocate.
	topics sync.Map // string → metric.AddOption

	inFlight   atomic.Pointer[func() int64]
	lag        atomic.Pointer[func(observe func(topic string, partition int, lag int64))]
	queueDepth atomic.Pointer[func() int64]
	cache      atomic.Pointer[func() CacheStats]
}

// CacheStats are the result cache's counters (model.CacheStats), as the
// cache metrics read them.
type CacheStats struct {
	Hits, Misses, Evictions, Entries, Bytes int64
}

// latencyBuckets suit both a model batch and a record's trip, from a few
// milliseconds on a GPU to minutes behind a backlog.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// NewMetrics creates the instruments on meter.
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	m := &Metrics{
		inputTokens:  metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "input"))),
		outputTokens: metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "output"))),
	}
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{record}"))
		errs = append(errs, err)
		return c
	}
	m.consumed = counter("nerstream.records.consumed", "Records fetched from the input topics.")
	m.produced = counter("nerstream.records.produced", "Output records acknowledged by the brokers: annotations and dead letters.")
	m.deadLettered = counter("nerstream.records.dead_lettered", "Input records that became dead letters, by reason.")
	var err error
	m.batchSize, err = meter.Int64Histogram("nerstream.batch.size",
		metric.WithDescription("Documents per model batch."), metric.WithUnit("{document}"),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
	errs = append(errs, err)
	m.recordLatency, err = meter.Float64Histogram("nerstream.record.latency",
		metric.WithDescription("From an input record's timestamp to the acknowledgement of its output."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...))
	errs = append(errs, err)
	m.modelLatency, err = meter.Float64Histogram("nerstream.model.latency",
		metric.WithDescription("Duration of one model batch."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...))
	errs = append(errs, err)
	m.tokens, err = meter.Int64Counter("nerstream.model.tokens",
		metric.WithDescription("Prompt (input) and generated (output) tokens."), metric.WithUnit("{token}"))
	errs = append(errs, err)
	m.tokenRate, err = meter.Float64Histogram("nerstream.model.tokens_per_second",
		metric.WithDescription("Input and output tokens of one model batch over its latency."),
		metric.WithExplicitBucketBoundaries(10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000))
	errs = append(errs, err)

	m.belowMinScore, err = meter.Int64Counter("nerstream.entities.below_min_score",
		metric.WithDescription("Entities dropped for a score under model.min_score."), metric.WithUnit("{entity}"))
	errs = append(errs, err)

	inFlight, err := meter.Int64ObservableGauge("nerstream.documents.in_flight",
		metric.WithDescription("Records fetched and not yet acknowledged (bounded by batch.max_in_flight)."), metric.WithUnit("{document}"))
	errs = append(errs, err)
	lag, err := meter.Int64ObservableGauge("nerstream.consumer.lag",
		metric.WithDescription("Records behind the partition's high-water mark, from the last fetch and the last commit."), metric.WithUnit("{record}"))
	errs = append(errs, err)
	queue, err := meter.Int64ObservableGauge("nerstream.engine.queue_depth",
		metric.WithDescription("Prompts in the model engine, waiting or decoding."), metric.WithUnit("{prompt}"))
	errs = append(errs, err)
	cacheCounter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("{prompt}"))
		errs = append(errs, err)
		return c
	}
	hits := cacheCounter("nerstream.cache.hits", "Prompts the result cache answered: stored, or computed once for several in flight.")
	misses := cacheCounter("nerstream.cache.misses", "Prompts the result cache passed to the engine.")
	evictions := cacheCounter("nerstream.cache.evictions", "Answers the result cache dropped to stay within its entries and bytes.")
	hitRatio, err := meter.Float64ObservableGauge("nerstream.cache.hit_ratio",
		metric.WithDescription("Result cache hits over hits and misses, since start."))
	errs = append(errs, err)
	cacheEntries, err := meter.Int64ObservableGauge("nerstream.cache.entries",
		metric.WithDescription("Answers in the result cache."), metric.WithUnit("{prompt}"))
	errs = append(errs, err)
	cacheBytes, err := meter.Int64ObservableGauge("nerstream.cache.bytes",
		metric.WithDescription("Bytes the result cache holds, as it counts them against model.cache.bytes."), metric.WithUnit("By"))
	errs = append(errs, err)
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if f := m.inFlight.Load(); f != nil {
			o.ObserveInt64(inFlight, (*f)())
		}
		if f := m.queueDepth.Load(); f != nil {
			o.ObserveInt64(queue, (*f)())
		}
		if f := m.cache.Load(); f != nil {
			c := (*f)()
			o.ObserveInt64(hits, c.Hits)
			o.ObserveInt64(misses, c.Misses)
			o.ObserveInt64(evictions, c.Evictions)
			o.ObserveInt64(cacheEntries, c.Entries)
			o.ObserveInt64(cacheBytes, c.Bytes)
			if n := c.Hits + c.Misses; n > 0 {
				o.ObserveFloat64(hitRatio, float64(c.Hits)/float64(n))
			}
		}
		if f := m.lag.Load(); f != nil {
			(*f)(func(topic string, partition int, n int64) {
				o.ObserveInt64(lag, n, metric.WithAttributes(attribute.String("topic", topic), attribute.String("partition", strconv.Itoa(partition))))
			})
		}
		return nil
	}, inFlight, lag, queue, hits, misses, evictions, hitRatio, cacheEntries, cacheBytes)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) topic(topic string) metric.AddOption {
	if o, ok := m.topics.Load(topic); ok {
		return o.(metric.AddOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("topic", topic)))
	m.topics.Store(topic, o)
	return o
}

func (m *Metrics) topicReason(topic, reason string) metric.AddOption {
	key := topic + "\x00" + reason
	if o, ok := m.topics.Load(key); ok {
		return o.(metric.AddOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("topic", topic), attribute.String("reason", reason)))
	m.topics.Store(key, o)
	return o
}

// Consumed counts n records fetched from topic.
func (m *Metrics) Consumed(ctx context.Context, topic string, n int) {
	if m != nil {
		m.consumed.Add(ctx, int64(n), m.topic(topic))
	}
}

// Produced counts n output records acknowledged on topic.
func (m *Metrics) Produced(ctx context.Context, topic string, n int) {
	if m != nil {
		m.produced.Add(ctx, int64(n), m.topic(topic))
	}
}

// DeadLettered counts a record of the input topic that became a dead
// letter for reason.
func (m *Metrics) DeadLettered(ctx context.Context, topic, reason string) {
	if m != nil {
		m.deadLettered.Add(ctx, 1, m.topicReason(topic, reason))
	}
}

// RecordLatency records one record's trip, from its timestamp to the
// acknowledgement of its output.
func (m *Metrics) RecordLatency(ctx context.Context, d time.Duration) {
	if m != nil {
		m.recordLatency.Record(ctx, d.Seconds())
	}
}

// ModelBatch records one model batch: its documents, its duration and its
// tokens.
func (m *Metrics) ModelBatch(ctx context.Context, docs int, d time.Duration, inputTokens, outputTokens int) {
	if m == nil {
		return
	}
	m.batchSize.Record(ctx, int64(docs))
	m.modelLatency.Record(ctx, d.Seconds())
	m.tokens.Add(ctx, int64(inputTokens), m.inputTokens)
	m.tokens.Add(ctx, int64(outputTokens), m.outputTokens)
	if s := d.Seconds(); s > 0 && inputTokens+outputTokens > 0 {
		m.tokenRate.Record(ctx, float64(inputTokens+outputTokens)/s)
	}
}

// BelowMinScore counts n entities dropped for a score under model.min_score.
func (m *Metrics) BelowMinScore(ctx context.Context, n int) {
	if m != nil && n > 0 {
		m.belowMinScore.Add(ctx, int64(n))
	}
}

// ObserveInFlight sets the source of nerstream.documents.in_flight.
func (m *Metrics) ObserveInFlight(f func() int64) {
	if m != nil {
		m.inFlight.Store(&f)
	}
}

// ObserveLag sets the source of nerstream.consumer.lag: f calls observe
// once for each partition this process holds.
func (m *Metrics) ObserveLag(f func(observe func(topic string, partition int, lag int64))) {
	if m != nil {
		m.lag.Store(&f)
	}
}

// ObserveEngineQueue sets the source of nerstream.engine.queue_depth.
func (m *Metrics) ObserveEngineQueue(f func() int64) {
	if m != nil {
		m.queueDepth.Store(&f)
	}
}

// ObserveCache sets the source of the nerstream.cache.* metrics.
func (m *Metrics) ObserveCache(f func() CacheStats) {
	if m != nil {
		m.cache.Store(&f)
	}
}
