// Package stream is nerstream's streaming processor as a library: one member
// of a Kafka consumer group that annotates the documents of its input topics
// with a UniNER model and writes annotations and dead letters, committing
// only what the brokers have acknowledged (DESIGN.md, "Delivery").
//
//	s, err := stream.New(cfg, engine, stream.WithLogger(log))
//	if err != nil { … }
//	err = s.Run(ctx) // until ctx ends, then a graceful stop
//
// It wires the parts that DESIGN.md keeps apart: consumers (group
// membership, fetch, decode), pipeline (batching, acknowledgement,
// commits), producers (records, writes) and model (the recognizer over the
// engine), and owns what lies between them:
//
//   - Records. An annotation is [model.Annotation.Record] with its source,
//     keyed by the document id; a dead letter is the input record with the
//     nerstream-* headers (producers.DeadLetter). An output over the
//     writer's record limit is never written as it is, since a write that
//     can never succeed would hold its partition for good: an oversized
//     annotation becomes an encode_failed dead letter, and an oversized
//     dead letter keeps only its reason, its source and the header
//     nerstream-value-omitted (the original's size).
//   - Readiness. The model is ready once the engine is given; the
//     consumer group while the member holds a generation; the producer
//     while writes succeed, and, while the stream is idle, while the
//     brokers answer a metadata request every http.readiness_interval.
//   - Shutdown. When Run's context ends, the claims stop fetching and
//     drain within shutdown_timeout, the member commits what is
//     acknowledged and leaves the group, and the writer flushes; Run
//     returns within shutdown_timeout plus 5s whatever happens.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/producers"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// Option configures a [Stream].
type Option func(*options)

type options struct {
	log        *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	metrics    *telemetry.Metrics
	health     *telemetry.Health
	modelName  string
	recognizer pipeline.Recognizer
	err        error // an option that failed
}

// WithLogger sends the member's log lines (group events, retries, its start
// and stop) to log. Default: none.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithTelemetry records spans and metrics with tel, continues the traces of
// the input records and passes them on to the outputs, and reports
// readiness to health (which may be nil). Default: none; trace context is
// then not passed on.
func WithTelemetry(tel *telemetry.Telemetry, health *telemetry.Health) Option {
	return func(o *options) {
		o.tracer, o.propagator, o.health = tel.Tracer(), tel.Propagator(), health
		o.metrics, o.err = telemetry.NewMetrics(tel.Meter())
	}
}

// WithModelName is what annotations call the model. Default: model.path's
// file name, else "unknown".
func WithModelName(name string) Option { return func(o *options) { o.modelName = name } }

// WithRecognizer annotates with r instead of a recognizer over the engine,
// which may then be nil: for test doubles and benchmarks.
func WithRecognizer(r pipeline.Recognizer) Option { return func(o *options) { o.recognizer = r } }

// Stream is one member of the consumer group with everything it runs.
type Stream struct {
	cfg    config.Config
	opts   options
	group  *consumers.Group
	writer *producers.Writer
	sink   *writerSink
	pipe   *pipeline.Pipeline
}

// New wires a member from a configuration and an engine. It contacts no
// broker: Run does. Its errors are all about the configuration or the
// options (including TLS and password files that cannot be read).
func New(cfg config.Config, eng model.Engine, opts ...Option) (*Stream, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return nil, fmt.Errorf("stream: %w", o.err)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if o.recognizer == nil {
		if eng == nil {
			return nil, errors.New("stream: no engine")
		}
		rec, err := model.NewRecognizer(eng, cfg.Model.RecognizerOptions)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		o.recognizer = rec
	}
	// The result cache's metrics read the recognizer's cache, before
	// WithFields wraps it.
	var cache *model.Cache
	if r, ok := o.recognizer.(interface{ Cache() *model.Cache }); ok {
		cache = r.Cache()
	}
	// A document with several texts (input.fields.text) is annotated
	// text by text, in the same call.
	o.recognizer = model.WithFields(o.recognizer)
	enc := encoder{topic: cfg.Output.Topic, deadLetters: cfg.Output.DeadLetterTopic, model: o.modelName}
	if cfg.Output.Mode == producers.ModeEnrich {
		var err error
		if enc.enrich, err = cfg.Output.Enrich.Enricher(); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
	}
	if o.modelName == "" {
		o.modelName = "unknown"
		if cfg.Model.Path != "" {
			o.modelName = filepath.Base(cfg.Model.Path)
		}
	}
	group, err := consumers.NewGroup(consumers.GroupOptions{
		Kafka:      cfg.Kafka,
		Input:      cfg.Input,
		MaxTypes:   cfg.Model.MaxTypes,
		Logger:     o.log,
		Propagator: o.propagator,
		Health:     o.health,
	})
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	tlsCfg, mech, err := cfg.Kafka.Security()
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	writer, err := producers.NewWriter(producers.Options{
		Brokers:      cfg.Kafka.Brokers,
		ClientID:     cfg.Kafka.ClientID,
		Compression:  cfg.Output.Compression,
		BatchTimeout: cfg.Output.BatchTimeout,
		CreateTopics: cfg.Output.CreateTopics,
		Propagator:   o.propagator,
		TLS:          tlsCfg,
		SASL:         mech,
	})
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	sink := &writerSink{w: writer}
	pipe, err := pipeline.New(pipeline.Options{
		Recognizer:   o.recognizer,
		Sink:         sink,
		Encoder:      enc,
		Batch:        cfg.Batch,
		Retry:        cfg.Retry,
		DrainTimeout: cfg.ShutdownTimeout,
		Logger:       o.log,
		Tracer:       o.tracer,
		Metrics:      o.metrics,
		Health:       o.health,
		GroupName:    cfg.Kafka.GroupID,
		ModelName:    o.modelName,
	})
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("stream: %w", err)
	}
	if q, ok := eng.(interface{ QueueDepth() int64 }); ok {
		o.metrics.ObserveEngineQueue(q.QueueDepth)
	}
	if c := cache; c != nil {
		o.metrics.ObserveCache(func() telemetry.CacheStats {
			s := c.Stats()
			return telemetry.CacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Entries: int64(s.Entries), Bytes: s.Bytes}
		})
	}
	o.health.Set(telemetry.CheckModel, nil)
	return &Stream{cfg: cfg, opts: o, group: group, writer: writer, sink: sink, pipe: pipe}, nil
}

// shutdownGrace is what a stop may take beyond shutdown_timeout: the last
// commits, leaving the group, closing the writer.
const shutdownGrace = 5 * time.Second

// Run consumes until ctx ends, then shuts down in order: the claims stop
// fetching and drain within shutdown_timeout, the member commits what is
// acknowledged and leaves the group, and the writer flushes. It returns nil
// after a clean stop.
func (s *Stream) Run(ctx context.Context) error {
	cfg := s.cfg
	s.opts.log.Info("nerstream: running", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.GroupID, "topics", cfg.Input.Topics, "model", s.opts.modelName)
	defer func() {
		st := s.pipe.Stats()
		s.opts.log.Info("nerstream: stopped", "fetched", st.Fetched, "annotated", st.Annotated, "dead_letters", st.DeadLetters, "abandoned", st.Abandoned)
	}()
	pctx, stop := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { _ = s.pipe.Run(pctx); close(pdone) }()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if s.opts.health != nil {
		go s.watchProducer(wctx)
		go func() {
			<-wctx.Done()
			if ctx.Err() != nil {
				s.opts.health.Set("shutdown", errors.New("stopping"))
			}
		}()
	}
	gdone := make(chan error, 1)
	go func() {
		gdone <- s.group.Run(ctx, func(gctx context.Context, c *consumers.Claim) error {
			return s.pipe.Consume(gctx, claimSource{c}, c.Start)
		})
	}()
	var err error
	select {
	case err = <-gdone:
	case <-ctx.Done():
		// The drain is bounded by shutdown_timeout; leaving the group and
		// the last commits get a little more, then we go regardless (what
		// is not committed is redelivered).
		select {
		case err = <-gdone:
		case <-time.After(cfg.ShutdownTimeout + shutdownGrace):
			stop()
			return fmt.Errorf("shutdown took longer than shutdown_timeout (%s) + %s; work not committed will be redelivered", cfg.ShutdownTimeout, shutdownGrace)
		}
	}
	stop()
	<-pdone
	cerr := make(chan error, 1)
	go func() { cerr <- s.writer.Close() }()
	select {
	case e := <-cerr:
		if err == nil && e != nil {
			err = fmt.Errorf("closing the writer: %w", e)
		}
	case <-time.After(shutdownGrace):
		if err == nil {
			err = errors.New("closing the writer timed out")
		}
	}
	return err
}

// Stats returns the pipeline's counters so far.
func (s *Stream) Stats() pipeline.Stats { return s.pipe.Stats() }

// watchProducer keeps the producer's readiness current while no write
// shows it: before the first write, and while the stream is idle. It asks
// the brokers for the output topics' metadata every
// http.readiness_interval. It leaves alone a failure that a write
// reported, which only a successful write clears.
func (s *Stream) watchProducer(ctx context.Context) {
	interval := s.cfg.HTTP.ReadinessInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !s.sink.failing.Load() && time.Since(time.Unix(0, s.sink.lastOK.Load())) >= interval {
			err := s.writer.Check(ctx, s.cfg.Output.Topic, s.cfg.Output.DeadLetterTopic)
			if ctx.Err() != nil {
				return
			}
			if err == nil && s.sink.failing.Load() {
				continue // a write failed meanwhile: its error stands
			}
			s.opts.health.Set(telemetry.CheckProducer, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// claimSource is a consumers.Claim seen as a pipeline.Claim.
type claimSource struct{ c *consumers.Claim }

func (s claimSource) Next(ctx context.Context) (pipeline.Input, error) {
	m, err := s.c.Next(ctx)
	if err != nil {
		return pipeline.Input{}, err
	}
	in := pipeline.Input{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Headers: m.Headers, Doc: m.Doc,
		Time: m.Time, HighWaterMark: m.HighWaterMark, TraceContext: m.TraceContext,
	}
	if m.Err != nil {
		in.Reject = m.Err.Reason
	}
	return in, nil
}

func (s claimSource) Commit(offset int64) error { return s.c.Commit(offset) }

// writerSink is a producers.Writer seen as a pipeline.Sink. It notes how
// writes fare, for the producer's readiness.
type writerSink struct {
	w       *producers.Writer
	failing atomic.Bool  // the last write failed
	lastOK  atomic.Int64 // when a write last succeeded, Unix nanoseconds
}

func (s *writerSink) Write(ctx context.Context, outs []pipeline.Output) error {
	msgs := make([]producers.Message, len(outs))
	for i, o := range outs {
		msgs[i] = producers.Message{Topic: o.Topic, Key: o.Key, Value: o.Value, Headers: o.Headers, TraceContext: o.TraceContext}
	}
	err := s.w.Write(ctx, msgs)
	s.failing.Store(err != nil)
	if err == nil {
		s.lastOK.Store(time.Now().UnixNano())
	}
	return err
}

// encoder builds the output records of DESIGN.md with the producers
// package.
type encoder struct {
	topic, deadLetters, model string
	// enrich, when set, writes enriched events (output.mode enrich)
	// rather than annotation records.
	enrich *producers.Enricher
}

// maxRecordBytes bounds an output record's key, value and headers together:
// the writer refuses a record over its batch limit (1 MiB), and a write that
// can never succeed would hold its partition back for good. The headroom is
// for the record's framing.
const maxRecordBytes = producers.DefaultBatchBytes - 4<<10

// HeaderValueOmitted is set on a dead letter whose original was too large
// to write: it holds the original's size in bytes (key, value and headers),
// and the source headers say where the original is.
const HeaderValueOmitted = "nerstream-value-omitted"

func recordBytes(key, value []byte, headers []record.Header) int {
	n := len(key) + len(value)
	for _, h := range headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func (e encoder) Annotation(in *pipeline.Input, ann *model.Annotation) (pipeline.Output, error) {
	var m producers.Message
	var err error
	if e.enrich != nil {
		// The input's key and headers, unless input.fields.key names
		// the key.
		key := in.Key
		if in.Doc.Key != "" {
			key = []byte(in.Doc.Key)
		}
		m, err = producers.EnrichedMessage(e.topic, e.enrich, key, in.Doc.Event, in.Headers, ann.Entities)
	} else {
		rec := ann.Record(e.model, in.Doc.Metadata)
		rec.Source = &record.Source{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
		m, err = producers.AnnotationMessage(e.topic, rec)
		if in.Doc.Key != "" {
			m.Key = []byte(in.Doc.Key)
		}
	}
	if err != nil {
		return pipeline.Output{}, err
	}
	if n := recordBytes(m.Key, m.Value, m.Headers); n > maxRecordBytes {
		return pipeline.Output{}, fmt.Errorf("output record of %d bytes is over the record limit of %d", n, maxRecordBytes)
	}
	return pipeline.Output{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}, nil
}

func (e encoder) DeadLetter(in *pipeline.Input, reason string) pipeline.Output {
	src := record.Source{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
	m := producers.DeadLetter(e.deadLetters, src, in.Key, in.Value, in.Headers, reason)
	if n := recordBytes(m.Key, m.Value, m.Headers); n > maxRecordBytes {
		// Too large to write: keep the reason and the source, which
		// point at the original, and drop the rest.
		m = producers.DeadLetter(e.deadLetters, src, nil, nil,
			[]record.Header{{Key: HeaderValueOmitted, Value: fmt.Appendf(nil, "%d", n)}}, reason)
	}
	return pipeline.Output{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}
}
