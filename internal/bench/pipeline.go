package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/stream"
	"github.com/nerstream/nerstream/telemetry"
)

// `nerstream bench pipeline` measures what nerstream's streaming path
// costs over a plain kafka-go consume → produce loop, on the same embedded
// broker and the same backlog, with a model that answers at once.
//
// The broker (kfake) runs in a child process, `nerstream bench broker`
// (hidden), so that the backlog it stores does not count in this process's
// resident set: peak_rss_mb is nerstream's own memory.
//
// Two phases read the whole backlog, each as its own consumer group:
//   - pipeline: newMember, the code path of `nerstream run`, with
//     echoRecognizer in place of the model;
//   - raw: one goroutine per assigned partition, each fetching what is
//     available (up to --raw-batch records), writing it with one shared
//     kafka.Writer (the settings of producers.NewWriter) and committing
//     through the generation.
//
// A phase ends when the group's committed offsets reach the log end on
// every partition, polled every --poll (5ms: a backlog of 10,000 takes a
// quarter of a second, so 20ms steps would be steps of 8%). Its
// *_msgs_per_s is documents over the whole phase, group join included;
// *_after_join_msgs_per_s starts at the first record in hand instead.
//
// With --telemetry, telemetry phases alternate with the pipeline phases
// (--rounds of each, A B B A …): the same member with the observability of
// `nerstream run` (telemetry.Setup with the OTLP/HTTP exporter, every trace
// sampled, and a Health), exporting to an OTLP receiver that the broker
// process serves, so that its CPU is not this process's, as a collector's
// would not be. Every input record then carries a traceparent header, in
// every phase, so that each process span has a remote parent and the plain
// phases read the same records. The receiver counts the spans it gets: the
// batch span processor drops spans when its queue is full, and dropped
// spans would make telemetry look cheaper than it is.

// Topics of the benchmark's broker.
const (
	bpInputTopic    = "bench-docs"
	bpRawOutTopic   = "bench-raw-out"
	bpOutTopic      = "bench-entities"
	bpDeadTopic     = "bench-entities-dlq"
	bpSampleEvery   = 50 * time.Millisecond
	bpHeartbeat     = 200 * time.Millisecond
	bpRawGroup      = "bench-raw"
	bpPipelineGroup = "bench-pipeline"
)

// PipelineResult is what `nerstream bench pipeline` prints.
type PipelineResult struct {
	Docs        int     `json:"docs"`
	Partitions  int     `json:"partitions"`
	DocBytes    int     `json:"doc_bytes"`
	MeanValueB  float64 `json:"mean_value_bytes"`
	MaxDocs     int     `json:"max_docs"`
	MaxInFlight int     `json:"max_in_flight"`
	Workers     int     `json:"workers"`
	LingerMS    float64 `json:"linger_ms"`
	RawBatch    int     `json:"raw_batch"`
	Order       string  `json:"order"`
	PollMS      float64 `json:"poll_ms"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	NumCPU      int     `json:"num_cpu"`

	RawMsgsPerS       float64 `json:"raw_msgs_per_s"`
	PipelineMsgsPerS  float64 `json:"pipeline_msgs_per_s"`
	Ratio             float64 `json:"ratio"`
	RawAfterJoin      float64 `json:"raw_after_join_msgs_per_s"`
	PipelineAfterJoin float64 `json:"pipeline_after_join_msgs_per_s"`
	AfterJoinRatio    float64 `json:"after_join_ratio"`
	RawSeconds        float64 `json:"raw_seconds"`
	PipelineSeconds   float64 `json:"pipeline_seconds"`
	RawJoinMS         float64 `json:"raw_join_ms"`
	PipelineJoinMS    float64 `json:"pipeline_join_ms"`

	RawDocs             int64 `json:"raw_docs"`
	PipelineDocs        int64 `json:"pipeline_docs"`
	PipelineDeadLetters int64 `json:"pipeline_dead_letters"`
	RecognizerCalls     int64 `json:"recognizer_calls"`
	RawCommitted        int64 `json:"raw_committed"`
	PipelineCommitted   int64 `json:"pipeline_committed"`

	// CPU seconds of this process and of the broker process during each
	// phase (from start to the last commit).
	RawCPUS            float64 `json:"raw_cpu_s"`
	PipelineCPUS       float64 `json:"pipeline_cpu_s"`
	RawBrokerCPUS      float64 `json:"raw_broker_cpu_s"`
	PipelineBrokerCPUS float64 `json:"pipeline_broker_cpu_s"`

	// *StartRSSMB is the resident set as a phase starts (after a GC that
	// returns free memory to the OS): the process at rest.
	RawStartRSSMB float64 `json:"raw_start_rss_mb"`
	StartRSSMB    float64 `json:"start_rss_mb"`
	RawPeakRSSMB  float64 `json:"raw_peak_rss_mb"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	RawHeapPeakMB float64 `json:"raw_heap_peak_mb"`
	HeapPeakMB    float64 `json:"heap_peak_mb"`
	// RSSPeakFrom is "vmhwm" when /proc/self/clear_refs reset the peak
	// before each phase, or "sampled" (VmRSS every 50ms) when it could not.
	RSSPeakFrom string `json:"rss_peak_from"`

	// Rounds is the number of plain pipeline phases (and of telemetry
	// phases); with more than one, the pipeline_* figures are their
	// medians. Phases are every phase's own figures, in order.
	Rounds int           `json:"rounds"`
	Phases []phaseReport `json:"phases"`

	// With --telemetry.
	*BenchTelemetry
	// With --logs.
	Cache *BenchCache `json:"cache,omitempty"`
}

// PipelineOptions are the settings of [Pipeline] (the flags of `nerstream
// bench pipeline`).
type PipelineOptions struct {
	Docs, Partitions, DocBytes    int
	MaxDocs, MaxInFlight, Workers int
	// RawBatch is the records one raw-loop write gathers at most; 0 is
	// MaxDocs.
	RawBatch int
	// RawFirst runs the raw phase first instead of last.
	RawFirst bool
	// Telemetry adds telemetry phases (see the file's comment).
	Telemetry bool
	// Logs seeds the log-like stream (logs.go) instead of the uniform
	// documents, and adds a phase with the result cache (Cache) after
	// each pipeline phase, which runs without. It needs a Model.
	Logs bool
	// LogFillings is the slot fillings per template of the log-like
	// stream; 0 is DefaultLogFillings.
	LogFillings int
	Cache       model.CacheOptions
	// Rounds is the pipeline (and telemetry) phases; 0 is 1, or 2 with
	// Telemetry.
	Rounds int
	// Model, when set, answers in the pipeline phases in place of the
	// instant echo model; MaxNewTokens bounds its answers.
	Model        model.Engine
	MaxNewTokens int
	// Timeout limits one phase; Poll is how often the committed offsets
	// are read.
	Timeout, Poll time.Duration
	// CPUProfile, when set, is the prefix of a CPU profile per phase.
	CPUProfile string
	// Stderr receives the broker process's errors and the member's
	// warnings.
	Stderr io.Writer
}

// Pipeline measures the stream against the raw loop (see the file's
// comment). The broker runs in a child process: this executable, started
// as `bench broker`, which must answer as [RunBroker] (nerstream does).
func Pipeline(ctx context.Context, o PipelineOptions) (*PipelineResult, error) {
	if o.Docs <= 0 || o.Partitions <= 0 || o.DocBytes < 40 || o.Timeout <= 0 || o.Poll <= 0 || o.Rounds < 0 {
		return nil, fmt.Errorf("%w: docs, partitions, timeout and poll must be > 0, rounds >= 0, and doc bytes >= 40", ErrOptions)
	}
	if o.RawBatch <= 0 {
		o.RawBatch = o.MaxDocs
	}
	if o.Rounds == 0 {
		o.Rounds = 1
		if o.Telemetry {
			o.Rounds = 2
		}
	}
	cfg := config.Default()
	cfg.Kafka.GroupID = bpPipelineGroup
	cfg.Kafka.HeartbeatInterval = bpHeartbeat
	cfg.Input.Topics = []string{bpInputTopic}
	cfg.Output.Topic = bpOutTopic
	cfg.Output.DeadLetterTopic = bpDeadTopic
	cfg.Model.Types = []string{"person", "organization", "location"}
	cfg.Batch.MaxDocs, cfg.Batch.MaxInFlight, cfg.Batch.Workers = o.MaxDocs, o.MaxInFlight, o.Workers
	cfg.Model.MaxNewTokens = cmp.Or(o.MaxNewTokens, cfg.Model.MaxNewTokens)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	var inner pipeline.Recognizer
	if o.Model != nil {
		rec, err := model.NewRecognizer(o.Model, cfg.Model.RecognizerOptions)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		inner = rec
	}
	// With --logs, the cache phases share one recognizer, so one cache:
	// the phases after the first find it full, as a long-running stream
	// would.
	var cachedRec *model.Recognizer
	if o.Logs {
		if o.Model == nil || o.Telemetry {
			return nil, fmt.Errorf("%w: --logs needs --model, and not --telemetry", ErrOptions)
		}
		if o.LogFillings < 0 || o.LogFillings > MaxLogFillings {
			return nil, fmt.Errorf("%w: --log-fillings must be from 1 to %d", ErrOptions, MaxLogFillings)
		}
		ro := cfg.Model.RecognizerOptions
		ro.Cache = o.Cache
		ro.Cache.Model = "bench"
		if !ro.Cache.Enabled() {
			return nil, fmt.Errorf("%w: --logs needs --cache-entries and --cache-bytes", ErrOptions)
		}
		rec, err := model.NewRecognizer(o.Model, ro)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOptions, err)
		}
		cachedRec = rec
	}

	broker, err := startBenchBroker(benchBrokerOptions{partitions: o.Partitions, docs: o.Docs, docBytes: o.DocBytes,
		traceparent: o.Telemetry, otlp: o.Telemetry, logs: o.Logs, fillings: o.LogFillings}, o.Stderr)
	if err != nil {
		return nil, err
	}
	defer broker.stop()
	ctx, cancel := broker.bound(ctx)
	defer cancel(nil)
	cfg.Kafka.Brokers = []string{broker.addr}

	cl := &kafka.Client{Addr: kafka.TCP(broker.addr), Timeout: 10 * time.Second, Transport: &kafka.Transport{ClientID: "nerstream-bench"}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	end, err := bpEndOffsets(ctx, cl, bpInputTopic, o.Partitions)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range end {
		total += e
	}
	if total != int64(o.Docs) {
		return nil, fmt.Errorf("the input topic holds %d records, want %d", total, o.Docs)
	}

	res := &PipelineResult{Docs: o.Docs, Partitions: o.Partitions, DocBytes: o.DocBytes, MeanValueB: broker.meanBytes,
		MaxDocs: cfg.Batch.MaxDocs, MaxInFlight: cfg.Batch.MaxInFlight, Workers: cfg.Batch.Workers,
		LingerMS: float64(cfg.Batch.Linger) / float64(time.Millisecond), RawBatch: o.RawBatch, Rounds: o.Rounds,
		PollMS: float64(o.Poll) / float64(time.Millisecond), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), RSSPeakFrom: "vmhwm"}
	log := slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The phases, in order: the pipeline phases (with --telemetry, rounds
	// of plain and telemetry phases, alternating A B B A … so that a drift
	// of the machine over the run weighs on both alike), and the raw phase
	// last, or first with --raw-first.
	var kinds []string
	for r := range o.Rounds {
		switch {
		case o.Logs:
			kinds = append(kinds, bpKindPipeline, bpKindCache)
		case !o.Telemetry:
			kinds = append(kinds, bpKindPipeline)
		case r%2 == 0:
			kinds = append(kinds, bpKindPipeline, bpKindTelemetry)
		default:
			kinds = append(kinds, bpKindTelemetry, bpKindPipeline)
		}
	}
	if o.RawFirst {
		kinds = append([]string{bpKindRaw}, kinds...)
	} else {
		kinds = append(kinds, bpKindRaw)
	}

	seen := map[string]int{}
	var order []string
	var plain, traced, cached []phaseReport
	var raw phaseReport
	res.Phases = make([]phaseReport, 0, len(kinds))
	for _, kind := range kinds {
		seen[kind]++
		label := kind
		if seen[kind] > 1 {
			label += "-" + strconv.Itoa(seen[kind])
		}
		order = append(order, label)
		opts := phaseOpts{timeout: o.Timeout, poll: o.Poll, cpuProfile: profilePath(o.CPUProfile, label), brokerPID: broker.cmd.Process.Pid, model: inner}
		switch kind {
		case bpKindRaw:
			m, err := runPhase(ctx, cl, bpRawGroup, end, opts, func(pctx context.Context, mark func(), abort func(error)) (func() (int64, error), error) {
				return startRawLoop(pctx, broker.addr, o.RawBatch, cfg, mark, abort), nil
			})
			if err != nil {
				return nil, fmt.Errorf("raw phase: %w", err)
			}
			raw = newPhaseReport(label, o.Docs, m)
			raw.Group = bpRawGroup
			res.Phases = append(res.Phases, raw)
		case bpKindPipeline:
			r, err := runPipelinePhase(ctx, cl, cfg, label, o.Docs, end, opts, log, nil, broker)
			if err != nil {
				return nil, fmt.Errorf("%s phase: %w", label, err)
			}
			plain = append(plain, r)
			res.Phases = append(res.Phases, r)
		case bpKindCache:
			opts.model = cachedRec
			r, err := runPipelinePhase(ctx, cl, cfg, label, o.Docs, end, opts, log, nil, broker)
			if err != nil {
				return nil, fmt.Errorf("%s phase: %w", label, err)
			}
			cached = append(cached, r)
			res.Phases = append(res.Phases, r)
		case bpKindTelemetry:
			r, err := runPipelinePhase(ctx, cl, cfg, label, o.Docs, end, opts, log, telemetryPhaseOptions(broker.otlpAddr), broker)
			if err != nil {
				return nil, fmt.Errorf("%s phase: %w", label, err)
			}
			traced = append(traced, r)
			res.Phases = append(res.Phases, r)
		}
	}
	res.Order = strings.Join(order, ",")

	// The pipeline_* figures are the medians of the plain pipeline phases
	// (the one phase's own figures when there is one), but for the peaks,
	// the highest, and the counts, the smallest, so that a phase that fell
	// short shows.
	pick := func(f func(phaseReport) float64) float64 { return medianOf(plain, f) }
	res.PipelineMsgsPerS = pick(func(r phaseReport) float64 { return r.MsgsPerS })
	res.PipelineAfterJoin = pick(func(r phaseReport) float64 { return r.AfterJoin })
	res.PipelineSeconds = pick(func(r phaseReport) float64 { return r.Seconds })
	res.PipelineJoinMS = pick(func(r phaseReport) float64 { return r.JoinMS })
	res.PipelineCPUS = pick(func(r phaseReport) float64 { return r.CPUS })
	res.PipelineBrokerCPUS = pick(func(r phaseReport) float64 { return r.BrokerCPUS })
	res.StartRSSMB = pick(func(r phaseReport) float64 { return r.StartRSSMB })
	res.PeakRSSMB = maxOf(plain, func(r phaseReport) float64 { return r.PeakRSSMB })
	res.HeapPeakMB = maxOf(plain, func(r phaseReport) float64 { return r.HeapPeakMB })
	res.RecognizerCalls = int64(pick(func(r phaseReport) float64 { return float64(r.RecognizerCalls) }))
	res.PipelineDocs, res.PipelineCommitted = plain[0].Docs, plain[0].Committed
	for _, r := range plain {
		res.PipelineDocs, res.PipelineCommitted = min(res.PipelineDocs, r.Docs), min(res.PipelineCommitted, r.Committed)
		res.PipelineDeadLetters = max(res.PipelineDeadLetters, r.DeadLetters)
	}
	res.RawDocs, res.RawCommitted = raw.Docs, raw.Committed
	res.RawSeconds, res.RawJoinMS = raw.Seconds, raw.JoinMS
	res.RawMsgsPerS, res.RawAfterJoin = raw.MsgsPerS, raw.AfterJoin
	res.RawStartRSSMB, res.RawPeakRSSMB, res.RawHeapPeakMB = raw.StartRSSMB, raw.PeakRSSMB, raw.HeapPeakMB
	res.RawCPUS, res.RawBrokerCPUS = raw.CPUS, raw.BrokerCPUS
	for _, r := range res.Phases {
		if !r.rssReset {
			res.RSSPeakFrom = "sampled"
		}
	}
	res.Ratio = res.PipelineMsgsPerS / res.RawMsgsPerS
	res.AfterJoinRatio = res.PipelineAfterJoin / res.RawAfterJoin
	if o.Logs {
		res.Cache = cacheFigures(o, plain, cached, cachedRec.Cache().Stats())
	}
	if o.Telemetry {
		tb, err := telemetryFigures(ctx, plain, traced, broker)
		if err != nil {
			return nil, err
		}
		res.BenchTelemetry = tb
	}
	return res, nil
}

// Kinds of phase.
const (
	bpKindRaw       = "raw"
	bpKindPipeline  = "pipeline"
	bpKindTelemetry = "telemetry"
	bpKindCache     = "cache"
)

// phaseReport is one phase's figures, in the output's "phases".
type phaseReport struct {
	Phase       string  `json:"phase"` // raw, pipeline, pipeline-2, telemetry, …
	Group       string  `json:"group"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	AfterJoin   float64 `json:"after_join_msgs_per_s"`
	Seconds     float64 `json:"seconds"`
	JoinMS      float64 `json:"join_ms"`
	CPUS        float64 `json:"cpu_s"`
	CPUUSPerDoc float64 `json:"cpu_us_per_doc"`
	BrokerCPUS  float64 `json:"broker_cpu_s"`
	StartRSSMB  float64 `json:"start_rss_mb"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	HeapPeakMB  float64 `json:"heap_peak_mb"`
	Docs        int64   `json:"docs"`
	Committed   int64   `json:"committed"`

	DeadLetters     int64 `json:"dead_letters,omitempty"`
	RecognizerCalls int64 `json:"recognizer_calls,omitempty"`

	// Telemetry phases only. FlushMS is Telemetry.Shutdown after the
	// member stopped (the spans still queued and the metrics, exported),
	// FlushCPUS this process's CPU meanwhile: neither is in seconds nor in
	// cpu_s. SpansExpected is a process span per record fetched, a send
	// span per output and an infer span per model call; SpansExported is
	// what the receiver decoded during the phase and its flush.
	FlushMS         float64          `json:"flush_ms,omitempty"`
	FlushCPUS       float64          `json:"flush_cpu_s,omitempty"`
	SpansExpected   int64            `json:"spans_expected,omitempty"`
	SpansExported   int64            `json:"spans_exported,omitempty"`
	SpansByName     map[string]int64 `json:"spans_by_name,omitempty"`
	SpansWithParent map[string]int64 `json:"spans_with_parent,omitempty"`
	OTLPRequests    int64            `json:"otlp_requests,omitempty"`
	OTLPBytes       int64            `json:"otlp_bytes,omitempty"`

	docsIn   int // the backlog
	rssReset bool
}

func newPhaseReport(label string, docs int, m phaseMeasure) phaseReport {
	r := phaseReport{Phase: label, docsIn: docs, rssReset: m.rssReset,
		MsgsPerS: float64(docs) / m.total.Seconds(), AfterJoin: float64(docs) / (m.total - m.join).Seconds(),
		Seconds: m.total.Seconds(), JoinMS: float64(m.join) / float64(time.Millisecond),
		CPUS: m.cpu, CPUUSPerDoc: m.cpu / float64(docs) * 1e6, BrokerCPUS: m.brokerCPU,
		StartRSSMB: m.startRSS, PeakRSSMB: m.peakRSS, HeapPeakMB: m.heapPeak, Docs: m.docs, Committed: m.committed}
	return r
}

// medianOf is the median of f over rs; 0 when rs is empty.
func medianOf(rs []phaseReport, f func(phaseReport) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// maxOf is the largest f over rs; 0 when rs is empty.
func maxOf(rs []phaseReport, f func(phaseReport) float64) float64 {
	var m float64
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

// runPipelinePhase runs newMember, the code path of `nerstream run`, over
// the backlog of docs as consumer group bench-LABEL. With tel set, it
// first sets up telemetry as `nerstream run` does (telemetry.Setup, a
// Health, the member's observability) and, once the member has stopped,
// shuts it down, which exports what is still queued; the receiver's counts
// before and after are the phase's exports.
func runPipelinePhase(ctx context.Context, cl *kafka.Client, cfg config.Config, label string, docs int, end map[int]int64, opts phaseOpts,
	log *slog.Logger, tel *telemetry.Options, broker *benchBroker) (phaseReport, error) {
	group := "bench-" + label // bench-pipeline (bpPipelineGroup), bench-telemetry-2, …
	cfg.Kafka.GroupID = group
	var (
		obs    []stream.Option
		t      *telemetry.Telemetry
		before otlpStats
		err    error
	)
	if tel != nil {
		if before, err = broker.otlpStats(ctx); err != nil {
			return phaseReport{}, err
		}
		if t, err = telemetry.Setup(ctx, *tel); err != nil {
			return phaseReport{}, err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bpFlushTimeout)
			defer cancel()
			_ = t.Shutdown(sctx) // a no-op once the phase has shut it down
		}()
		health := telemetry.NewHealth(telemetry.CheckModel, telemetry.CheckConsumerGroup, telemetry.CheckProducer)
		health.Set(telemetry.CheckModel, nil)
		obs = append(obs, stream.WithTelemetry(t, health))
	}
	var (
		st       pipeline.Stats
		calls    int64
		flush    time.Duration
		flushCPU float64
	)
	m, err := runPhase(ctx, cl, group, end, opts, func(pctx context.Context, mark func(), _ func(error)) (func() (int64, error), error) {
		rec := &echoRecognizer{types: cfg.Model.Types, first: mark, model: opts.model}
		mem, err := stream.New(cfg, nil, append(obs, stream.WithRecognizer(rec), stream.WithModelName("bench-echo"), stream.WithLogger(log))...)
		if err != nil {
			return nil, err
		}
		done := make(chan error, 1)
		go func() { done <- mem.Run(pctx) }()
		return func() (int64, error) {
			err := <-done
			st, calls = mem.Stats(), rec.calls.Load()
			if t != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bpFlushTimeout)
				cpu0, t0 := selfCPUSeconds(), time.Now()
				serr := t.Shutdown(sctx)
				flush, flushCPU = time.Since(t0), selfCPUSeconds()-cpu0
				cancel()
				if err == nil && serr != nil {
					err = serr
				}
			}
			return st.Annotated + st.DeadLetters, err
		}, nil
	})
	if err != nil {
		return phaseReport{}, err
	}
	r := newPhaseReport(label, docs, m)
	r.Group, r.DeadLetters, r.RecognizerCalls = group, st.DeadLetters, calls
	if tel != nil {
		after, err := broker.otlpStats(ctx)
		if err != nil {
			return phaseReport{}, err
		}
		r.FlushMS, r.FlushCPUS = float64(flush)/float64(time.Millisecond), flushCPU
		r.SpansExpected = st.Fetched + st.Annotated + st.DeadLetters + calls
		r.SpansExported = after.Spans - before.Spans
		r.SpansByName, r.SpansWithParent = diffCounts(after.SpansByName, before.SpansByName), diffCounts(after.SpansWithParent, before.SpansWithParent)
		r.OTLPRequests, r.OTLPBytes = after.Requests-before.Requests, after.Bytes-before.Bytes
	}
	return r, nil
}

// diffCounts is after − before, without the zeros.
func diffCounts(after, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

// bpFlushTimeout bounds a telemetry phase's Shutdown.
const bpFlushTimeout = 30 * time.Second

// telemetryPhaseOptions are the telemetry of a telemetry phase, the
// telemetry section as `nerstream run` passes it to telemetry.Setup: every trace
// sampled, spans and metrics over OTLP/HTTP to the receiver at addr.
// The batch span processor keeps the telemetry package's settings (queue
// 16,384, batches of 2,048, unless OTEL_BSP_* say otherwise); metrics are
// pushed on the default schedule (60 s, or OTEL_METRIC_EXPORT_INTERVAL), so
// within a phase only at Shutdown.
func telemetryPhaseOptions(addr string) *telemetry.Options {
	one := 1.0
	return &telemetry.Options{
		Exporter:      telemetry.ExporterOTLPHTTP,
		Endpoint:      "http://" + addr,
		Insecure:      true,
		SamplingRatio: &one,
		ServiceName:   "nerstream-bench",
	}
}

// BenchTelemetry is what `bench pipeline --telemetry` adds to the output.
type BenchTelemetry struct {
	Exporter      string  `json:"telemetry_exporter"`
	SamplingRatio float64 `json:"telemetry_sampling_ratio"`
	// OTLPReceiver says where the receiver ran: "broker process" (its CPU
	// is in *_broker_cpu_s, not in this process's).
	OTLPReceiver string `json:"otlp_receiver"`
	// InputTraceparent: every input record carries a sampled W3C
	// traceparent, in every phase, so that the process spans have remote
	// parents.
	InputTraceparent bool `json:"input_traceparent"`

	// The medians of the telemetry phases; the ratios are over the
	// medians of the plain pipeline phases (pipeline_*).
	TelemetryMsgsPerS       float64 `json:"telemetry_msgs_per_s"`
	TelemetryAfterJoin      float64 `json:"telemetry_after_join_msgs_per_s"`
	TelemetryRatio          float64 `json:"telemetry_ratio"`
	TelemetryCostPct        float64 `json:"telemetry_cost_pct"`
	TelemetryAfterJoinRatio float64 `json:"telemetry_after_join_ratio"`
	// With the flush: the phase's time plus its Shutdown's, a bound that
	// charges the spans still queued at the end to the phase.
	TelemetryFlushMS          float64 `json:"telemetry_flush_ms"`
	TelemetryWithFlushMsgsPS  float64 `json:"telemetry_with_flush_msgs_per_s"`
	TelemetryWithFlushCostPct float64 `json:"telemetry_with_flush_cost_pct"`
	// CPU of this process per document, and the extra that telemetry
	// costs (the flush's CPU included).
	PipelineCPUUSPerDoc  float64 `json:"pipeline_cpu_us_per_doc"`
	TelemetryCPUUSPerDoc float64 `json:"telemetry_cpu_us_per_doc"`
	TelemetryCPUCostPct  float64 `json:"telemetry_cpu_cost_pct"`
	TelemetryBrokerCPUS  float64 `json:"telemetry_broker_cpu_s"`
	TelemetryPeakRSSMB   float64 `json:"telemetry_peak_rss_mb"`
	TelemetryHeapPeakMB  float64 `json:"telemetry_heap_peak_mb"`

	// What the receiver got over the whole run.
	OTLPRequests       int64 `json:"otlp_requests"`
	OTLPTraceRequests  int64 `json:"otlp_trace_requests"`
	OTLPMetricRequests int64 `json:"otlp_metric_requests"`
	OTLPBytes          int64 `json:"otlp_bytes"`
	// Spans over all telemetry phases: expected (a process span per record
	// fetched, a send span per output, an infer span per model call),
	// exported (decoded by the receiver) and dropped (expected − exported:
	// the batch span processor drops spans when its queue is full, which
	// would make the cost look smaller than it is).
	SpansExpected int64            `json:"spans_expected"`
	SpansExported int64            `json:"spans_exported"`
	SpansDropped  int64            `json:"spans_dropped"`
	SpansByName   map[string]int64 `json:"spans_by_name"`
	// SpansWithParent: process spans with a parent (the input's
	// traceparent) and send spans (their process span).
	SpansWithParent map[string]int64 `json:"spans_with_parent"`
}

func telemetryFigures(ctx context.Context, plain, traced []phaseReport, broker *benchBroker) (*BenchTelemetry, error) {
	st, err := broker.otlpStats(ctx)
	if err != nil {
		return nil, err
	}
	tel := func(f func(phaseReport) float64) float64 { return medianOf(traced, f) }
	pl := func(f func(phaseReport) float64) float64 { return medianOf(plain, f) }
	b := &BenchTelemetry{Exporter: telemetry.ExporterOTLPHTTP, SamplingRatio: 1, OTLPReceiver: "broker process", InputTraceparent: true,
		OTLPRequests: st.Requests, OTLPTraceRequests: st.TraceRequests, OTLPMetricRequests: st.MetricRequests, OTLPBytes: st.Bytes,
		SpansByName: map[string]int64{}, SpansWithParent: map[string]int64{}}
	b.TelemetryMsgsPerS = tel(func(r phaseReport) float64 { return r.MsgsPerS })
	b.TelemetryAfterJoin = tel(func(r phaseReport) float64 { return r.AfterJoin })
	plainRate := pl(func(r phaseReport) float64 { return r.MsgsPerS })
	b.TelemetryRatio = b.TelemetryMsgsPerS / plainRate
	b.TelemetryCostPct = (1 - b.TelemetryRatio) * 100
	b.TelemetryAfterJoinRatio = b.TelemetryAfterJoin / pl(func(r phaseReport) float64 { return r.AfterJoin })
	b.TelemetryFlushMS = tel(func(r phaseReport) float64 { return r.FlushMS })
	b.TelemetryWithFlushMsgsPS = tel(func(r phaseReport) float64 { return float64(r.docsIn) / (r.Seconds + r.FlushMS/1000) })
	b.TelemetryWithFlushCostPct = (1 - b.TelemetryWithFlushMsgsPS/plainRate) * 100
	b.PipelineCPUUSPerDoc = pl(func(r phaseReport) float64 { return r.CPUUSPerDoc })
	b.TelemetryCPUUSPerDoc = tel(func(r phaseReport) float64 { return (r.CPUS + r.FlushCPUS) / float64(r.docsIn) * 1e6 })
	b.TelemetryCPUCostPct = (b.TelemetryCPUUSPerDoc/b.PipelineCPUUSPerDoc - 1) * 100
	b.TelemetryBrokerCPUS = tel(func(r phaseReport) float64 { return r.BrokerCPUS })
	b.TelemetryPeakRSSMB = maxOf(traced, func(r phaseReport) float64 { return r.PeakRSSMB })
	b.TelemetryHeapPeakMB = maxOf(traced, func(r phaseReport) float64 { return r.HeapPeakMB })
	for _, r := range traced {
		b.SpansExpected += r.SpansExpected
		b.SpansExported += r.SpansExported
		for k, v := range r.SpansByName {
			b.SpansByName[k] += v
		}
		for k, v := range r.SpansWithParent {
			b.SpansWithParent[k] += v
		}
	}
	b.SpansDropped = max(b.SpansExpected-b.SpansExported, 0)
	return b, nil
}

// phaseMeasure is what one phase measured.
type phaseMeasure struct {
	total, join       time.Duration
	cpu, brokerCPU    float64 // seconds
	docs, committed   int64
	startRSS          float64
	peakRSS, heapPeak float64
	rssReset          bool
}

// phaseOpts are the settings of one phase's measurement.
type phaseOpts struct {
	timeout, poll time.Duration
	cpuProfile    string // a file for the CPU profile, or ""
	brokerPID     int
	model         pipeline.Recognizer // with --model; nil: the echo
}

func profilePath(prefix, phase string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "." + phase + ".pprof"
}

// runPhase starts a consumer of the whole backlog with start, and times it
// until the group's committed offsets reach end on every partition. start
// gets a context that ends when the phase is over, a mark to call with the
// first record in hand, and an abort that ends the phase with an error; it
// returns a wait that returns, once that context has ended, the documents
// written and the consumer's error.
func runPhase(ctx context.Context, cl *kafka.Client, group string, end map[int]int64, opts phaseOpts,
	start func(ctx context.Context, mark func(), abort func(error)) (wait func() (int64, error), err error)) (phaseMeasure, error) {
	var m phaseMeasure
	runtime.GC()
	debug.FreeOSMemory()
	m.rssReset = resetPeakRSS()
	m.startRSS = procStatusMB("VmRSS:")
	samp := startMemSampler()
	stopProfile := func() {}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			samp.stop()
			return m, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			samp.stop()
			return m, err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var firstAt atomic.Int64 // ns since begin
	cpu0, broker0 := selfCPUSeconds(), procCPUSeconds(opts.brokerPID)
	begin := time.Now()
	mark := func() { firstAt.CompareAndSwap(0, int64(time.Since(begin))) }
	wait, err := start(pctx, mark, cancel)
	if err != nil {
		stopProfile()
		samp.stop()
		return m, err
	}
	committed, werr := bpWaitCommitted(pctx, cl, group, end, opts.timeout, opts.poll)
	if werr != nil && context.Cause(pctx) != nil {
		werr = context.Cause(pctx)
	}
	m.total = time.Since(begin)
	m.cpu, m.brokerCPU = selfCPUSeconds()-cpu0, procCPUSeconds(opts.brokerPID)-broker0
	stopProfile()
	m.join = time.Duration(firstAt.Load())
	for _, c := range committed {
		m.committed += c
	}
	cancel(nil)
	docs, err := wait()
	m.docs = docs
	heap, sampledRSS := samp.stop()
	m.heapPeak = heap
	if m.rssReset {
		m.peakRSS = peakRSSMB()
	} else {
		m.peakRSS = sampledRSS
	}
	if werr != nil {
		return m, werr
	}
	if err != nil {
		return m, err
	}
	if m.join <= 0 || m.join >= m.total {
		m.join = 0
	}
	return m, nil
}

// bpWaitCommitted polls the group's committed offsets until they reach end
// on every partition, and returns the last ones seen.
func bpWaitCommitted(ctx context.Context, cl *kafka.Client, group string, end map[int]int64, timeout, poll time.Duration) (map[int]int64, error) {
	ps := make([]int, 0, len(end))
	for p := range end {
		ps = append(ps, p)
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var got map[int]int64
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cl.OffsetFetch(rctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{bpInputTopic: ps}})
		cancel()
		if err == nil && resp.Error == nil {
			got = map[int]int64{}
			for _, p := range resp.Topics[bpInputTopic] {
				if p.Error == nil {
					got[p.Partition] = p.CommittedOffset
				}
			}
			done := true
			for p, e := range end {
				if got[p] < e {
					done = false
				}
			}
			if done {
				return got, nil
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("committed offsets %v did not reach the log end %v within %v", got, end, timeout)
		}
	}
}

// bpEndOffsets returns each partition's log end.
func bpEndOffsets(ctx context.Context, cl *kafka.Client, topic string, partitions int) (map[int]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := cl.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != partitions {
		return nil, fmt.Errorf("list offsets: %d partitions of %s, want %d", len(out), topic, partitions)
	}
	return out, nil
}

// startRawLoop runs the baseline: a plain kafka-go consume → produce loop
// in consumer group bench-raw. Its wait returns the records written.
func startRawLoop(ctx context.Context, addr string, batch int, cfg config.Config, mark func(), abort func(error)) func() (int64, error) {
	var (
		written  atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		abort(err)
	}
	dialer := &kafka.Dialer{ClientID: "nerstream-bench-raw", Timeout: 10 * time.Second, DualStack: true}
	transport := &kafka.Transport{ClientID: "nerstream-bench-raw"}
	// The settings of producers.NewWriter.
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		Compression:  kafka.Snappy,
		BatchTimeout: cfg.Output.BatchTimeout,
		BatchSize:    1000,
		BatchBytes:   1 << 20,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
		MaxAttempts:  3,
		Transport:    transport,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
			ID:                bpRawGroup,
			Brokers:           []string{addr},
			Dialer:            dialer,
			Topics:            []string{bpInputTopic},
			StartOffset:       kafka.FirstOffset,
			SessionTimeout:    cfg.Kafka.SessionTimeout,
			HeartbeatInterval: cfg.Kafka.HeartbeatInterval,
			RebalanceTimeout:  cfg.Kafka.RebalanceTimeout,
			JoinGroupBackoff:  time.Second,
		})
		if err != nil {
			fail(err)
			return
		}
		defer cg.Close()
		for {
			gen, err := cg.Next(ctx)
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			if err != nil {
				continue // kafka-go backs off and joins again
			}
			for _, a := range gen.Assignments[bpInputTopic] {
				gen.Start(func(gctx context.Context) {
					if err := rawPartition(gctx, gen, dialer, addr, a, batch, cfg, w, mark, &written); err != nil && gctx.Err() == nil {
						fail(err)
					}
				})
			}
		}
	}()
	return func() (int64, error) {
		<-done // cg.Close has waited for the partition loops
		err := w.Close()
		transport.CloseIdleConnections()
		if firstErr != nil {
			err = firstErr
		}
		return written.Load(), err
	}
}

// rawPartition copies one assigned partition to the raw output topic:
// fetch what is available (up to batch records, waiting at most the
// writer's batch timeout for more), write it synchronously, commit.
func rawPartition(ctx context.Context, gen *kafka.Generation, dialer *kafka.Dialer, addr string, a kafka.PartitionAssignment,
	batch int, cfg config.Config, w *kafka.Writer, mark func(), written *atomic.Int64) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        []string{addr},
		Topic:          bpInputTopic,
		Partition:      a.ID,
		Dialer:         dialer,
		MinBytes:       1,
		MaxBytes:       cfg.Input.FetchMaxBytes,
		MaxWait:        cfg.Input.FetchMaxWait,
		QueueCapacity:  100,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
	})
	defer r.Close()
	if err := r.SetOffset(a.Offset); err != nil {
		return err
	}
	msgs := make([]kafka.Message, 0, batch)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return err
		}
		mark()
		msgs = append(msgs[:0], kafka.Message{Topic: bpRawOutTopic, Key: m.Key, Value: m.Value})
		last := m.Offset
		gctx, cancel := context.WithTimeout(ctx, cfg.Output.BatchTimeout)
		for len(msgs) < batch {
			m, err := r.FetchMessage(gctx)
			if err != nil {
				break
			}
			msgs = append(msgs, kafka.Message{Topic: bpRawOutTopic, Key: m.Key, Value: m.Value})
			last = m.Offset
		}
		cancel()
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return err
		}
		written.Add(int64(len(msgs)))
		if err := gen.CommitOffsets(map[string]map[int]int64{bpInputTopic: {a.ID: last + 1}}); err != nil {
			return err
		}
	}
}

// echoRecognizer is the benchmark's model: it answers at once, with no
// entities, so that the pipeline's own cost is what is measured; or, with
// --model, it passes the documents to the real one.
type echoRecognizer struct {
	types []string
	first func() // called on every call; the phase keeps the first
	calls atomic.Int64
	model pipeline.Recognizer
}

func (r *echoRecognizer) Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
	r.first()
	r.calls.Add(1)
	if r.model != nil {
		return r.model.Recognize(ctx, docs)
	}
	anns := make([]model.Annotation, len(docs))
	for i, d := range docs {
		types := d.Types
		if len(types) == 0 {
			types = r.types
		}
		anns[i] = model.Annotation{ID: d.ID, Types: types}
	}
	return anns, nil
}

// memSampler records the peak Go heap (live and not yet swept objects) and
// the peak VmRSS every 50ms.
type memSampler struct {
	quit chan struct{}
	done chan struct{}
	heap uint64
	rss  float64
}

func startMemSampler() *memSampler {
	s := &memSampler{quit: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	take := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			s.heap = max(s.heap, sample[0].Value.Uint64())
		}
		s.rss = max(s.rss, procStatusMB("VmRSS:"))
	}
	take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(bpSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				take()
				return
			case <-t.C:
				take()
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peaks in MiB.
func (s *memSampler) stop() (heapMB, rssMB float64) {
	close(s.quit)
	<-s.done
	return float64(s.heap) / (1 << 20), s.rss
}

// resetPeakRSS resets VmHWM to the current resident set (Linux 4.0+).
func resetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.Write([]byte("5"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// procStatusMB reads one kB field of /proc/self/status in MiB; 0 when
// absent.
func procStatusMB(field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// selfCPUSeconds is the user and system CPU time of this process.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procCPUSeconds is the user and system CPU time of process pid, from
// /proc/PID/stat (in clock ticks, 100 a second on Linux); 0 when unknown.
func procCPUSeconds(pid int) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses: state
	// is the 3rd field of the line, utime the 14th, stime the 15th.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// benchBroker is the child process that runs the broker.
type benchBroker struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	exited    chan struct{} // closed once the process has exited
	addr      string
	meanBytes float64
	otlpAddr  string // the OTLP receiver's host:port, when there is one
}

// bound returns a context that ends, with a cause that says so, when
// the broker process exits before ctx ends.
func (b *benchBroker) bound(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-b.exited:
			cancel(errors.New("the broker process exited"))
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// benchBrokerOptions are the broker process's flags.
type benchBrokerOptions struct {
	partitions, docs, docBytes int
	traceparent                bool // a traceparent header on every record
	otlp                       bool // also run the OTLP receiver
	logs                       bool // the log-like stream
	fillings                   int  // its slot fillings per template; 0: the default
}

// startBenchBroker re-executes this binary as `bench broker` and waits for
// it to seed the backlog and print its address.
func startBenchBroker(o benchBrokerOptions, stderr io.Writer) (*benchBroker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable: %w", err)
	}
	args := []string{"bench", "broker", "--partitions", strconv.Itoa(o.partitions),
		"--docs", strconv.Itoa(o.docs), "--doc-bytes", strconv.Itoa(o.docBytes)}
	if o.traceparent {
		args = append(args, "--traceparent")
	}
	if o.otlp {
		args = append(args, "--otlp")
	}
	if o.logs {
		args = append(args, "--logs", "--log-fillings", strconv.Itoa(cmp.Or(o.fillings, DefaultLogFillings)))
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the broker process: %w", err)
	}
	// Wait closes stdout, so it starts once the line is read.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	b := &benchBroker{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.exited) }()
	var ready struct {
		Addr      string  `json:"addr"`
		MeanBytes float64 `json:"mean_value_bytes"`
		OTLPAddr  string  `json:"otlp_addr"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(line), &ready)
	}
	if err == nil && o.otlp && ready.OTLPAddr == "" {
		err = errors.New("no OTLP receiver")
	}
	if err != nil || ready.Addr == "" {
		b.stop()
		return nil, fmt.Errorf("the broker process did not start (%v, line %q)", err, strings.TrimSpace(line))
	}
	b.addr, b.meanBytes, b.otlpAddr = ready.Addr, ready.MeanBytes, ready.OTLPAddr
	return b, nil
}

// stop closes the child's stdin, which ends it, and kills it if it lingers.
func (b *benchBroker) stop() {
	b.stdin.Close()
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// otlpStats asks the broker process's OTLP receiver for its counts.
func (b *benchBroker) otlpStats(ctx context.Context) (otlpStats, error) {
	var st otlpStats
	if b.otlpAddr == "" {
		return st, errors.New("the broker process runs no OTLP receiver")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.otlpAddr+otlpStatsPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("reading the OTLP receiver's counts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("reading the OTLP receiver's counts: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the OTLP receiver's counts: %w", err)
	}
	return st, nil
}

// runBenchBroker is `nerstream bench broker` (hidden): kfake on loopback
// with the benchmark's topics and backlog, and with --otlp an OTLP/HTTP
// receiver. It prints {"addr": …} on one line once seeded and runs until
// its stdin closes.
// BrokerOptions are the settings of [RunBroker] (the flags of `nerstream
// bench broker`).
type BrokerOptions struct {
	Partitions, Docs, DocBytes int
	// Traceparent gives every document a W3C traceparent header (a
	// sampled trace of its own).
	Traceparent bool
	// OTLP also serves an OTLP/HTTP receiver on loopback that counts what
	// it gets and discards it.
	OTLP bool
	// Logs seeds the log-like stream (see [PipelineOptions.Logs]) with
	// LogFillings slot fillings per template (0: the default).
	Logs        bool
	LogFillings int
}

// RunBroker is the broker process of [Pipeline]: kfake on loopback with the
// benchmark's topics and backlog, and an OTLP receiver with o.OTLP. It
// writes {"addr": …} on one line to out once seeded and runs until in
// reaches its end (the parent closed it) or ctx ends.
func RunBroker(ctx context.Context, o BrokerOptions, in io.Reader, out io.Writer) error {
	if o.Partitions <= 0 || o.Docs < 0 || o.DocBytes <= 0 {
		return errors.New("bench: partitions and doc bytes must be > 0, docs >= 0")
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(o.Partitions), bpInputTopic, bpRawOutTopic, bpOutTopic, bpDeadTopic),
		// Below Kafka's 6 s floor, for bench scale's crash phase.
		kfake.GroupMinSessionTimeout(MinCrashSession),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	mean, err := seedBenchDocs(ctx, addr, o.Docs, o.DocBytes, o.Traceparent, o.Logs, o.LogFillings)
	if err != nil {
		return err
	}
	ready := map[string]any{"addr": addr, "mean_value_bytes": mean}
	if o.OTLP {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("OTLP receiver: %w", err)
		}
		srv := &http.Server{Handler: &otlpReceiver{}, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		ready["otlp_addr"] = ln.Addr().String()
	}
	line, _ := json.Marshal(ready)
	if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, in); close(stdinClosed) }()
	select {
	case <-stdinClosed:
	case <-ctx.Done():
	}
	return nil
}

// seedBenchDocs writes docs JSON documents of about docBytes bytes,
// round robin over the partitions, and returns their mean size. With
// traceparent, every record carries a traceparent header: a sampled trace
// of its own, as if each document came from a traced request.
func seedBenchDocs(ctx context.Context, addr string, docs, docBytes int, traceparent, logs bool, fillings int) (float64, error) {
	var stream *logStream
	if logs {
		stream = newLogStream(fillings)
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: bpInputTopic, Balancer: &kafka.RoundRobin{},
		BatchSize: 1000, BatchBytes: 4 << 20, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	var sum int
	msgs := make([]kafka.Message, 0, 5000)
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := w.WriteMessages(ctx, msgs...)
		msgs = msgs[:0]
		return err
	}
	for i := range docs {
		var v []byte
		if stream != nil {
			v = logDoc(i, stream.next())
		} else {
			v = benchDoc(i, docBytes)
		}
		sum += len(v)
		m := kafka.Message{Key: []byte("doc-" + strconv.Itoa(i)), Value: v}
		if traceparent {
			m.Headers = []kafka.Header{{Key: "traceparent", Value: benchTraceparent(i)}}
		}
		msgs = append(msgs, m)
		if len(msgs) == cap(msgs) {
			if err := flush(); err != nil {
				return 0, fmt.Errorf("seeding: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return 0, fmt.Errorf("seeding: %w", err)
	}
	return float64(sum) / float64(max(docs, 1)), nil
}

// benchTraceparent is document i's traceparent: version 00, a trace ID and
// a parent span ID of its own, sampled. The IDs are pseudo-random (a
// ratio sampler reads the trace ID's low 8 bytes as a random number) and
// the same from run to run.
func benchTraceparent(i int) []byte {
	var tid [16]byte
	var sid [8]byte
	binary.BigEndian.PutUint64(tid[:8], splitmix64(uint64(3*i)+1))
	binary.BigEndian.PutUint64(tid[8:], splitmix64(uint64(3*i)+2))
	binary.BigEndian.PutUint64(sid[:], splitmix64(uint64(3*i)+3)|1) // never zero
	return fmt.Appendf(nil, "00-%x-%x-01", tid, sid)
}

// splitmix64 is the SplitMix64 output function: a bijection of uint64
// that looks random.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// The paths of the OTLP receiver.
const (
	otlpTracesPath  = "/v1/traces"
	otlpMetricsPath = "/v1/metrics"
	otlpStatsPath   = "/stats"
)

// otlpStats are the OTLP receiver's counts since it started. Bytes are as
// received (compressed, if the exporter compresses).
type otlpStats struct {
	Requests       int64            `json:"requests"`
	TraceRequests  int64            `json:"trace_requests"`
	MetricRequests int64            `json:"metric_requests"`
	Bytes          int64            `json:"bytes"`
	TraceBytes     int64            `json:"trace_bytes"`
	MetricBytes    int64            `json:"metric_bytes"`
	Spans          int64            `json:"spans"`
	SpansByName    map[string]int64 `json:"spans_by_name"` // by the name's first word: process, infer, send
	// SpansWithParent counts, by name, the spans that have a parent: every
	// process span (whose parent is the input's traceparent) and every
	// send span (whose parent is its process span).
	SpansWithParent map[string]int64 `json:"spans_with_parent"`
	BadRequests     int64            `json:"bad_requests"`
}

// otlpReceiver stands in for an OpenTelemetry collector: it accepts OTLP/
// HTTP exports (protobuf, gzip or not) on /v1/traces and /v1/metrics,
// counts them, counts the spans (walking the protobuf, which costs far less
// than decoding it), answers 200 with an empty body, and keeps nothing.
// GET /stats returns the counts as JSON.
type otlpReceiver struct {
	mu sync.Mutex
	st otlpStats
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == otlpStatsPath:
		o.mu.Lock()
		data, err := json.Marshal(o.st)
		o.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
		return
	case r.Method == http.MethodPost && (r.URL.Path == otlpTracesPath || r.URL.Path == otlpMetricsPath):
	default:
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	wire := len(body)
	if err == nil && strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
			body, err = io.ReadAll(zr)
		}
	}
	var spans int64
	var names, parented map[string]int64
	if err == nil && r.URL.Path == otlpTracesPath {
		spans, names, parented, err = countOTLPSpans(body)
	}
	o.mu.Lock()
	if err != nil {
		o.st.BadRequests++
		o.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.st.Requests++
	o.st.Bytes += int64(wire)
	if r.URL.Path == otlpTracesPath {
		o.st.TraceRequests++
		o.st.TraceBytes += int64(wire)
		o.st.Spans += spans
		if o.st.SpansByName == nil {
			o.st.SpansByName, o.st.SpansWithParent = map[string]int64{}, map[string]int64{}
		}
		for k, v := range names {
			o.st.SpansByName[k] += v
		}
		for k, v := range parented {
			o.st.SpansWithParent[k] += v
		}
	} else {
		o.st.MetricRequests++
		o.st.MetricBytes += int64(wire)
	}
	o.mu.Unlock()
	// An empty ExportTraceServiceResponse / ExportMetricsServiceResponse:
	// everything accepted.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// countOTLPSpans counts the spans of an ExportTraceServiceRequest by the
// first word of their name, and those with a parent. The messages it walks:
//
//	ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
//	ResourceSpans { repeated ScopeSpans scope_spans = 2; … }
//	ScopeSpans    { repeated Span spans = 2; … }
//	Span          { bytes parent_span_id = 4; string name = 5; … }
func countOTLPSpans(b []byte) (n int64, names, parented map[string]int64, err error) {
	names, parented = map[string]int64{}, map[string]int64{}
	only := func(want protowire.Number, f func([]byte) error) func(protowire.Number, []byte) error {
		return func(num protowire.Number, v []byte) error {
			if num != want {
				return nil
			}
			return f(v)
		}
	}
	err = protoFields(b, only(1, func(rs []byte) error {
		return protoFields(rs, only(2, func(ss []byte) error {
			return protoFields(ss, only(2, func(span []byte) error {
				var name []byte
				var parent bool
				err := protoFields(span, func(num protowire.Number, v []byte) error {
					switch num {
					case 4:
						parent = len(v) > 0
					case 5:
						name = v
						if i := bytes.IndexByte(v, ' '); i >= 0 {
							name = v[:i]
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				n++
				names[string(name)]++
				if parent {
					parented[string(name)]++
				}
				return nil
			}))
		}))
	}))
	return n, names, parented, err
}

// protoFields calls f with the number and value of every length-delimited
// field of the protobuf message b, and checks that the others are well
// formed.
func protoFields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}

// benchDoc is document i: {"id":"doc-i","text":"…"} of about size bytes,
// the text made of benchWords (which hold capitalised names).
func benchDoc(i, size int) []byte {
	id := "doc-" + strconv.Itoa(i)
	room := size - len(`{"id":"","text":""}`) - len(id)
	var b strings.Builder
	for k := 0; b.Len() < room; k++ {
		w := benchWords[(i*31+k*7+k*k)%len(benchWords)]
		if b.Len() > 0 {
			if b.Len()+1+len(w) > room && b.Len() > room/2 {
				break
			}
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	b.WriteByte('.')
	v, _ := json.Marshal(struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}{id, b.String()})
	return v
}
