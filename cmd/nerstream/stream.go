package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/producers"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// This file wires the streaming processor from its parts: consumers (group
// membership, fetch, decode), pipeline (batching, acknowledgement, commits),
// producers (records, writes) and model. DESIGN.md keeps those packages
// apart, so the adapters between their types live here.

// member is one member of the consumer group with everything it runs.
type member struct {
	cfg    config.Config
	obs    observability
	group  *consumers.Group
	writer *producers.Writer
	sink   *writerSink
	pipe   *pipeline.Pipeline
}

// observability is what a member reports to. The zero value records
// nothing and passes no trace context on.
type observability struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	metrics    *telemetry.Metrics
	health     *telemetry.Health
}

// newObservability is the member's reporting through tel, with readiness
// in health.
func newObservability(tel *telemetry.Telemetry, health *telemetry.Health) (observability, error) {
	m, err := telemetry.NewMetrics(tel.Meter())
	if err != nil {
		return observability{}, err
	}
	return observability{tracer: tel.Tracer(), propagator: tel.Propagator(), metrics: m, health: health}, nil
}

// newMember wires a member from a checked configuration and a recognizer.
// modelName is written into each annotation.
func newMember(cfg config.Config, rec pipeline.Recognizer, modelName string, log *slog.Logger, obs observability) (*member, error) {
	format, err := consumers.ParseFormat(cfg.Input.Format)
	if err != nil {
		return nil, usageError{err}
	}
	tlsCfg, mech, err := kafkaSecurity(cfg.Kafka)
	if err != nil {
		return nil, usageError{err}
	}
	group, err := consumers.NewGroup(consumers.GroupOptions{
		Brokers:           cfg.Kafka.Brokers,
		GroupID:           cfg.Kafka.GroupID,
		ClientID:          cfg.Kafka.ClientID,
		Topics:            cfg.Input.Topics,
		StartAtEnd:        cfg.Kafka.StartOffset == "latest",
		SessionTimeout:    cfg.Kafka.SessionTimeout,
		HeartbeatInterval: cfg.Kafka.HeartbeatInterval,
		RebalanceTimeout:  cfg.Kafka.RebalanceTimeout,
		FetchMaxBytes:     cfg.Input.FetchMaxBytes,
		FetchMaxWait:      cfg.Input.FetchMaxWait,
		Decode: consumers.DecodeOptions{Format: format, Limits: consumers.Limits{
			MaxBytes: cfg.Input.MaxBytes,
			MaxTypes: cfg.Model.MaxEntityTypes,
		}},
		Logger:     log,
		Propagator: obs.propagator,
		Health:     obs.health,
		TLS:        tlsCfg,
		SASL:       mech,
	})
	if err != nil {
		return nil, usageError{err}
	}
	writer, err := producers.NewWriter(producers.Options{
		Brokers:      cfg.Kafka.Brokers,
		ClientID:     cfg.Kafka.ClientID,
		Compression:  cfg.Output.Compression,
		BatchTimeout: cfg.Output.BatchTimeout,
		CreateTopics: cfg.Output.CreateTopics,
		Propagator:   obs.propagator,
		TLS:          tlsCfg,
		SASL:         mech,
	})
	if err != nil {
		return nil, usageError{err}
	}
	sink := &writerSink{w: writer}
	pipe, err := pipeline.New(pipeline.Options{
		Recognizer:   rec,
		Sink:         sink,
		Encoder:      recordEncoder{topic: cfg.Output.Topic, deadLetters: cfg.Output.DeadLetterTopic, model: modelName},
		MaxDocs:      cfg.Batch.MaxDocs,
		MaxBytes:     cfg.Batch.MaxBytes,
		Linger:       cfg.Batch.Linger,
		MaxInFlight:  cfg.Batch.MaxInFlight,
		Workers:      cfg.Batch.Workers,
		Retry:        pipeline.Retry{MaxAttempts: cfg.Retry.MaxAttempts, Initial: cfg.Retry.InitialBackoff, Max: cfg.Retry.MaxBackoff},
		DrainTimeout: cfg.ShutdownTimeout,
		Logger:       log,
		Tracer:       obs.tracer,
		Metrics:      obs.metrics,
		Health:       obs.health,
		GroupName:    cfg.Kafka.GroupID,
		ModelName:    modelName,
	})
	if err != nil {
		writer.Close()
		return nil, usageError{err}
	}
	return &member{cfg: cfg, obs: obs, group: group, writer: writer, sink: sink, pipe: pipe}, nil
}

// run consumes until ctx ends, then shuts down in order: the claims stop
// fetching and drain within shutdown_timeout, the member commits what is
// acknowledged and leaves the group, and the writer flushes.
func (m *member) run(ctx context.Context) error {
	pctx, stop := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { _ = m.pipe.Run(pctx); close(pdone) }()
	if m.obs.health != nil {
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go m.watchProducer(wctx)
	}
	gdone := make(chan error, 1)
	go func() {
		gdone <- m.group.Run(ctx, func(gctx context.Context, c *consumers.Claim) error {
			return m.pipe.Consume(gctx, claimSource{c}, c.Start)
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
		case <-time.After(m.cfg.ShutdownTimeout + shutdownGrace):
			stop()
			return fmt.Errorf("shutdown took longer than shutdown_timeout (%s) + %s; work not committed will be redelivered", m.cfg.ShutdownTimeout, shutdownGrace)
		}
	}
	stop()
	<-pdone
	cerr := make(chan error, 1)
	go func() { cerr <- m.writer.Close() }()
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

// watchProducer keeps the producer's readiness current while no write
// shows it: before the first write, and while the stream is idle. It asks
// the brokers for the output topics' metadata every
// http.readiness_interval. It leaves alone a failure that a write
// reported, which only a successful write clears.
func (m *member) watchProducer(ctx context.Context) {
	interval := m.cfg.HTTP.ReadinessInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !m.sink.failing.Load() && time.Since(time.Unix(0, m.sink.lastOK.Load())) >= interval {
			err := m.writer.Check(ctx, m.cfg.Output.Topic, m.cfg.Output.DeadLetterTopic)
			if ctx.Err() != nil {
				return
			}
			if err == nil && m.sink.failing.Load() {
				continue // a write failed meanwhile: its error stands
			}
			m.obs.health.Set(telemetry.CheckProducer, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// shutdownGrace is what a stop may take beyond shutdown_timeout: the last
// commits, leaving the group, closing the writer.
const shutdownGrace = 5 * time.Second

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

// recordEncoder builds the output records of DESIGN.md with the producers
// package.
type recordEncoder struct {
	topic, deadLetters, model string
}

// maxRecordBytes bounds an output record's key, value and headers together:
// the writer refuses a record over its batch limit (1 MiB), and a write that
// can never succeed would hold its partition back for good. The headroom is
// for the record's framing.
const maxRecordBytes = producers.DefaultBatchBytes - 4<<10

// headerValueOmitted is set on a dead letter whose original was too large
// to write: it holds the original's size in bytes (key, value and headers),
// and the source headers say where the original is.
const headerValueOmitted = "nerstream-value-omitted"

func recordBytes(key, value []byte, headers []record.Header) int {
	n := len(key) + len(value)
	for _, h := range headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func (e recordEncoder) Annotation(in *pipeline.Input, ann *model.Annotation) (pipeline.Output, error) {
	rec := ann.Record(e.model, in.Doc.Metadata)
	rec.Source = &record.Source{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
	m, err := producers.AnnotationMessage(e.topic, rec)
	if err != nil {
		return pipeline.Output{}, err
	}
	if n := recordBytes(m.Key, m.Value, nil); n > maxRecordBytes {
		return pipeline.Output{}, fmt.Errorf("annotation of %d bytes is over the record limit of %d", n, maxRecordBytes)
	}
	return pipeline.Output{Topic: m.Topic, Key: m.Key, Value: m.Value}, nil
}

func (e recordEncoder) DeadLetter(in *pipeline.Input, reason string) pipeline.Output {
	src := record.Source{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
	m := producers.DeadLetter(e.deadLetters, src, in.Key, in.Value, in.Headers, reason)
	if n := recordBytes(m.Key, m.Value, m.Headers); n > maxRecordBytes {
		// Too large to write: keep the reason and the source, which
		// point at the original, and drop the rest.
		m = producers.DeadLetter(e.deadLetters, src, nil, nil,
			[]record.Header{{Key: headerValueOmitted, Value: fmt.Appendf(nil, "%d", n)}}, reason)
	}
	return pipeline.Output{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}
}

// recognizerOptions maps the model section to the recognizer's options.
func recognizerOptions(m config.Model) model.RecognizerOptions {
	return model.RecognizerOptions{
		Prompt: model.PromptOptions{
			Variant:          model.Variant(m.Prompt.Variant),
			Dataset:          m.Prompt.Dataset,
			SupervisedFormat: m.Prompt.SupervisedFormat,
			Definitions:      m.Prompt.Definitions,
		},
		Parse:         model.ParseMode(m.Parse),
		Types:         m.EntityTypes,
		MaxNewTokens:  m.MaxNewTokens,
		MaxTypes:      m.MaxEntityTypes,
		WindowTokens:  m.WindowTokens,
		OverlapTokens: m.OverlapTokens,
	}
}

// synthPrefix names a synthetic model in place of a file: "synth:tiny".
const synthPrefix = "synth:"

// openModel loads the model at path, or writes and loads a synthetic one
// for "synth:PRESET" (random weights: its entities are meaningless). It
// returns the engine and the name that annotations carry.
func openModel(path string, opts llama.Options) (*llama.Engine, string, error) {
	preset, ok := strings.CutPrefix(path, synthPrefix)
	if !ok {
		eng, err := loadEngine(path, opts)
		return eng, filepath.Base(path), err
	}
	if _, err := gguf.PresetShapes(preset); err != nil {
		return nil, "", usagef("model %q: %v", path, err)
	}
	dir, err := os.MkdirTemp("", "nerstream-synth-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir) // llama.cpp has read the file once loaded
	file := filepath.Join(dir, preset+".gguf")
	f, err := os.Create(file)
	if err != nil {
		return nil, "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = gguf.Synth(w, gguf.SynthOptions{Preset: preset, Type: gguf.TypeF16, Seed: 1})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", fmt.Errorf("writing the synthetic model: %w", err)
	}
	eng, err := llama.Load(file, opts)
	if err != nil {
		return nil, "", err
	}
	return eng, "synthetic-" + preset + " (random weights: entities are meaningless)", nil
}
