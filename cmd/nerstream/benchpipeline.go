package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
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

// pipelineBench is what `nerstream bench pipeline` prints.
type pipelineBench struct {
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
}

func runBenchPipeline(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench pipeline", flag.ContinueOnError)
	docs := fset.Int("docs", 10000, "documents in the backlog")
	partitions := fset.Int("partitions", 6, "partitions of the input and output topics")
	docBytes := fset.Int("doc-bytes", 200, "bytes of one JSON document")
	maxDocs := fset.Int("max-docs", 32, "batch.max_docs")
	maxInFlight := fset.Int("max-in-flight", 256, "batch.max_in_flight")
	workers := fset.Int("workers", 2, "batch.workers")
	rawBatch := fset.Int("raw-batch", 0, "records one raw-loop write gathers at most (default: --max-docs)")
	rawFirst := fset.Bool("raw-first", false, "run the raw phase before the pipeline phase")
	timeout := fset.Duration("timeout", 10*time.Minute, "limit of one phase")
	poll := fset.Duration("poll", 5*time.Millisecond, "how often the committed offsets are read to see a phase's end")
	cpuProfile := fset.String("cpuprofile", "", "write a CPU profile of each phase to PREFIX.pipeline.pprof and PREFIX.raw.pprof")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *docs <= 0 || *partitions <= 0 || *docBytes < 40 || *timeout <= 0 || *poll <= 0 {
		return usagef("--docs, --partitions, --timeout and --poll must be > 0, and --doc-bytes >= 40")
	}
	if *rawBatch <= 0 {
		*rawBatch = *maxDocs
	}
	cfg := config.Default()
	cfg.Kafka.GroupID = bpPipelineGroup
	cfg.Kafka.HeartbeatInterval = bpHeartbeat
	cfg.Input.Topics = []string{bpInputTopic}
	cfg.Output.Topic = bpOutTopic
	cfg.Output.DeadLetterTopic = bpDeadTopic
	cfg.Model.EntityTypes = []string{"person", "organization", "location"}
	cfg.Batch.MaxDocs, cfg.Batch.MaxInFlight, cfg.Batch.Workers = *maxDocs, *maxInFlight, *workers
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}

	broker, err := startBenchBroker(*partitions, *docs, *docBytes, s.err)
	if err != nil {
		return err
	}
	defer broker.stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-broker.exited:
			cancel(errors.New("the broker process exited"))
		case <-ctx.Done():
		}
	}()
	cfg.Kafka.Brokers = []string{broker.addr}

	cl := &kafka.Client{Addr: kafka.TCP(broker.addr), Timeout: 10 * time.Second, Transport: &kafka.Transport{ClientID: "nerstream-bench"}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	end, err := bpEndOffsets(ctx, cl, bpInputTopic, *partitions)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range end {
		total += e
	}
	if total != int64(*docs) {
		return fmt.Errorf("the input topic holds %d records, want %d", total, *docs)
	}

	res := pipelineBench{Docs: *docs, Partitions: *partitions, DocBytes: *docBytes, MeanValueB: broker.meanBytes,
		MaxDocs: cfg.Batch.MaxDocs, MaxInFlight: cfg.Batch.MaxInFlight, Workers: cfg.Batch.Workers,
		LingerMS: float64(cfg.Batch.Linger) / float64(time.Millisecond), RawBatch: *rawBatch, Order: "pipeline,raw",
		PollMS: float64(*poll) / float64(time.Millisecond), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), RSSPeakFrom: "vmhwm"}
	if *rawFirst {
		res.Order = "raw,pipeline"
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelWarn}))

	opts := func(phase string) phaseOpts {
		return phaseOpts{timeout: *timeout, poll: *poll, cpuProfile: profilePath(*cpuProfile, phase), brokerPID: broker.cmd.Process.Pid}
	}
	var pm, rm phaseMeasure
	pipelinePhase := func() (err error) {
		pm, err = runPhase(ctx, cl, bpPipelineGroup, end, opts("pipeline"), func(pctx context.Context, mark func(), _ func(error)) (func() (int64, error), error) {
			rec := &echoRecognizer{types: cfg.Model.EntityTypes, first: mark}
			mem, err := newMember(cfg, rec, "bench-echo", log)
			if err != nil {
				return nil, err
			}
			done := make(chan error, 1)
			go func() { done <- mem.run(pctx) }()
			return func() (int64, error) {
				err := <-done
				st := mem.pipe.Stats()
				res.PipelineDeadLetters, res.RecognizerCalls = st.DeadLetters, rec.calls.Load()
				return st.Annotated + st.DeadLetters, err
			}, nil
		})
		if err != nil {
			return fmt.Errorf("pipeline phase: %w", err)
		}
		return nil
	}
	rawPhase := func() (err error) {
		rm, err = runPhase(ctx, cl, bpRawGroup, end, opts("raw"), func(pctx context.Context, mark func(), abort func(error)) (func() (int64, error), error) {
			return startRawLoop(pctx, broker.addr, *rawBatch, cfg, mark, abort), nil
		})
		if err != nil {
			return fmt.Errorf("raw phase: %w", err)
		}
		return nil
	}
	phases := []func() error{pipelinePhase, rawPhase}
	if *rawFirst {
		phases[0], phases[1] = phases[1], phases[0]
	}
	for _, phase := range phases {
		if err := phase(); err != nil {
			return err
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.PipelineDocs, res.PipelineCommitted = pm.docs, pm.committed
	res.PipelineSeconds, res.PipelineJoinMS = pm.total.Seconds(), ms(pm.join)
	res.PipelineMsgsPerS = float64(*docs) / pm.total.Seconds()
	res.PipelineAfterJoin = float64(*docs) / (pm.total - pm.join).Seconds()
	res.StartRSSMB, res.PeakRSSMB, res.HeapPeakMB = pm.startRSS, pm.peakRSS, pm.heapPeak
	res.PipelineCPUS, res.PipelineBrokerCPUS = pm.cpu, pm.brokerCPU
	res.RawDocs, res.RawCommitted = rm.docs, rm.committed
	res.RawSeconds, res.RawJoinMS = rm.total.Seconds(), ms(rm.join)
	res.RawMsgsPerS = float64(*docs) / rm.total.Seconds()
	res.RawAfterJoin = float64(*docs) / (rm.total - rm.join).Seconds()
	res.RawStartRSSMB, res.RawPeakRSSMB, res.RawHeapPeakMB = rm.startRSS, rm.peakRSS, rm.heapPeak
	res.RawCPUS, res.RawBrokerCPUS = rm.cpu, rm.brokerCPU
	if !pm.rssReset || !rm.rssReset {
		res.RSSPeakFrom = "sampled"
	}
	res.Ratio = res.PipelineMsgsPerS / res.RawMsgsPerS
	res.AfterJoinRatio = res.PipelineAfterJoin / res.RawAfterJoin
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
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
// entities, so that the pipeline's own cost is what is measured.
type echoRecognizer struct {
	types []string
	first func() // called on every call; the phase keeps the first
	calls atomic.Int64
}

func (r *echoRecognizer) Recognize(_ context.Context, docs []model.Document) ([]model.Annotation, error) {
	r.first()
	r.calls.Add(1)
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
}

// startBenchBroker re-executes this binary as `bench broker` and waits for
// it to seed the backlog and print its address.
func startBenchBroker(partitions, docs, docBytes int, stderr io.Writer) (*benchBroker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable: %w", err)
	}
	cmd := exec.Command(exe, "bench", "broker", "--partitions", strconv.Itoa(partitions),
		"--docs", strconv.Itoa(docs), "--doc-bytes", strconv.Itoa(docBytes))
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
	}
	if err == nil {
		err = json.Unmarshal([]byte(line), &ready)
	}
	if err != nil || ready.Addr == "" {
		b.stop()
		return nil, fmt.Errorf("the broker process did not start (%v, line %q)", err, strings.TrimSpace(line))
	}
	b.addr, b.meanBytes = ready.Addr, ready.MeanBytes
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

// runBenchBroker is `nerstream bench broker` (hidden): kfake on loopback
// with the benchmark's topics and backlog. It prints {"addr": …} on one
// line once seeded and runs until its stdin closes.
func runBenchBroker(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench broker", flag.ContinueOnError)
	partitions := fset.Int("partitions", 6, "partitions of each topic")
	docs := fset.Int("docs", 10000, "documents to seed")
	docBytes := fset.Int("doc-bytes", 200, "bytes of one JSON document")
	if _, err := parseFlags(fset, args); err != nil {
		return err
	}
	if *partitions <= 0 || *docs < 0 || *docBytes <= 0 {
		return usagef("--partitions and --doc-bytes must be > 0, --docs >= 0")
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(*partitions), bpInputTopic, bpRawOutTopic, bpOutTopic, bpDeadTopic),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	mean, err := seedBenchDocs(ctx, addr, *docs, *docBytes)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]any{"addr": addr, "mean_value_bytes": mean})
	if _, err := fmt.Fprintf(s.out, "%s\n", line); err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, s.in); close(stdinClosed) }()
	select {
	case <-stdinClosed:
	case <-ctx.Done():
	}
	return nil
}

// seedBenchDocs writes docs JSON documents of about docBytes bytes,
// round robin over the partitions, and returns their mean size.
func seedBenchDocs(ctx context.Context, addr string, docs, docBytes int) (float64, error) {
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
		v := benchDoc(i, docBytes)
		sum += len(v)
		msgs = append(msgs, kafka.Message{Key: []byte("doc-" + strconv.Itoa(i)), Value: v})
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
