package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nerstream/nerstream/internal/backoff"
	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// Options configure a [Pipeline]. Zero values take the defaults.
type Options struct {
	// Recognizer, Sink and Encoder are required.
	Recognizer Recognizer
	Sink       Sink
	Encoder    Encoder
	// Batch shapes the micro-batches and bounds the work in flight.
	Batch Batch
	// Retry is how model and sink failures are retried.
	Retry Retry
	// MaxWrite bounds the outputs of one Sink.Write. Default: 500.
	MaxWrite int
	// DrainTimeout is how long a claim whose context ended may go on
	// writing and committing the work in flight. Default:
	// [DefaultDrainTimeout].
	DrainTimeout time.Duration
	// Logger receives warnings (retries) and debug lines. Lines about one
	// record are logged with its span's context, so that a handler can add
	// the trace id. Default: none.
	Logger *slog.Logger
	// Tracer records a "process {topic}" span per record, an "infer" span
	// per model call and a "send {topic}" span per output (see the
	// package doc). Default: none; the input's trace context still passes
	// to the outputs.
	Tracer trace.Tracer
	// Metrics records the records, batches, latencies, tokens, documents in
	// flight and consumer lag. Default: none.
	Metrics *telemetry.Metrics
	// Health hears of model failures (telemetry.CheckModel), of sink
	// failures (telemetry.CheckProducer) and of commit failures
	// (telemetry.CheckCommit), and of their recovery. Default: none.
	Health *telemetry.Health
	// GroupName (the consumer group) and ModelName label the spans.
	GroupName, ModelName string
}

// DefaultDrainTimeout is [Options.DrainTimeout]'s default, and that of the
// shutdown_timeout setting, which sets it.
const DefaultDrainTimeout = 10 * time.Second

// Batch configures micro-batching and the bound on work in flight (the
// batch section of the configuration).
type Batch struct {
	// MaxDocs closes a micro-batch at this many documents. Default: 32.
	MaxDocs int `yaml:"max_docs"`
	// MaxBytes closes a micro-batch at this many bytes of text. Default:
	// 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// Linger closes a micro-batch this long after its first document, so
	// that a quiet stream is not held back. Default: 20ms.
	Linger time.Duration `yaml:"linger"`
	// MaxInFlight bounds the documents fetched but not yet acknowledged,
	// over all partitions; fetching pauses at the bound (back-pressure,
	// bounded memory, and a bound on duplicates after a crash). While
	// commits fail, it also bounds the records written and not
	// committed: past it, the partitions whose commits fail write no
	// more. Default: 256.
	MaxInFlight int `yaml:"max_in_flight"`
	// Workers is how many micro-batches go to the model at once. Default:
	// 2, so that the next batch forms while one runs.
	Workers int `yaml:"workers"`
}

// DefaultBatch returns the batch settings that zero values stand for.
func DefaultBatch() Batch {
	return Batch{MaxDocs: 32, MaxBytes: 1 << 20, Linger: 20 * time.Millisecond, MaxInFlight: 256, Workers: 2}
}

// Validate reports every problem of the settings, at their YAML keys.
func (b Batch) Validate() error {
	var p problems.List
	problems.Positive(&p, "max_docs", b.MaxDocs)
	problems.Positive(&p, "max_bytes", b.MaxBytes)
	problems.Positive(&p, "linger", b.Linger)
	if b.MaxInFlight < b.MaxDocs {
		p.Addf("max_in_flight", "must be at least max_docs (%d)", b.MaxDocs)
	}
	problems.Positive(&p, "workers", b.Workers)
	return p.Err()
}

// Retry configures the retries of failed model calls and writes (the retry
// section of the configuration).
type Retry struct {
	// MaxAttempts bounds the model calls that fail on one document (an
	// error in its annotation, or a call over it alone that fails while a
	// probe passes); after the last, the record becomes a dead letter with
	// reason inference_failed. A call that fails as a whole while the
	// probe fails too (the engine or the GPU tier down) does not count: it
	// is retried without end, holding the records uncommitted. Default: 3.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait after the first failure; it doubles up to
	// MaxBackoff. Default: 100ms. Broker failures and whole-model outages
	// use the same back-off but are retried without end: they never
	// become dead letters.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the wait between tries. Default: 5s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// DefaultRetry returns the retry settings that zero values stand for.
func DefaultRetry() Retry {
	return Retry{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
}

// Validate reports every problem of the settings, at their YAML keys.
func (r Retry) Validate() error {
	var p problems.List
	problems.Positive(&p, "max_attempts", r.MaxAttempts)
	problems.Positive(&p, "initial_backoff", r.InitialBackoff)
	if r.MaxBackoff < r.InitialBackoff {
		p.Addf("max_backoff", "must be at least initial_backoff")
	}
	return p.Err()
}

// delay is the wait before try attempt+1, after attempt failures.
func (r Retry) delay(attempt int) time.Duration {
	return backoff.Policy{Initial: r.InitialBackoff, Max: r.MaxBackoff}.Delay(attempt - 1)
}

// Stats count what the pipeline did since it started.
type Stats struct {
	// Fetched is the records taken from claims.
	Fetched int64
	// Annotated and DeadLetters are the outputs acknowledged by the sink.
	Annotated, DeadLetters int64
	// Abandoned is the records dropped uncommitted when a claim ended.
	Abandoned int64
	// ModelRetries, WriteRetries and CommitFailures count failures that
	// were retried.
	ModelRetries, WriteRetries, CommitFailures int64
	// InFlight is the records fetched and not yet acknowledged or
	// abandoned.
	InFlight int64
}

// Pipeline is the processing shared by every claim of one member.
type Pipeline struct {
	opts  Options
	log   *slog.Logger
	slots chan struct{} // one token per document in flight
	in    chan *item    // to the batcher
	work  chan []*item  // to the workers

	fetched, annotated, deadLetters, abandoned atomic.Int64
	modelRetries, writeRetries, commitFails    atomic.Int64

	// uncommitted counts the records written, over every claim, whose
	// offsets are not committed yet; while a claim's commits fail and it
	// reaches Batch.MaxInFlight, that claim writes no more (see emit).
	uncommitted atomic.Int64
	// commitMu guards failingClaims, the claims whose last commit failed,
	// and the commit readiness check that follows it.
	commitMu      sync.Mutex
	failingClaims int

	claims sync.Map // *claim → struct{}: the live claims, for the lag
}

// item is one record on its way through.
type item struct {
	in    Input
	claim *claim
	size  int
	tries int // model calls so far; only the worker that holds it touches it
	// ctx holds the record's process span, which span ends when its
	// output is acknowledged or it is abandoned.
	ctx     context.Context
	span    trace.Span
	fetched time.Time
	// out and reason are set once, by finish, before done is closed.
	done   chan struct{}
	out    Output
	reason string // why the record is a dead letter; "" for an annotation
}

// finish settles the item with its output: an annotation, or a dead letter
// when reason is set. Each item is settled once: by fetch when its decode
// was rejected, else by the worker that holds it.
func (it *item) finish(out Output, reason string) {
	it.out, it.reason = out, reason
	close(it.done)
}

// deadLetter settles the item as a dead letter.
func (p *Pipeline) deadLetter(it *item, reason string) {
	it.finish(p.opts.Encoder.DeadLetter(&it.in, reason), reason)
}

func (it *item) settled() bool {
	select {
	case <-it.done:
		return true
	default:
		return false
	}
}

// New checks the options and returns a pipeline; [Pipeline.Run] must run for
// claims to make progress.
func New(opts Options) (*Pipeline, error) {
	if opts.Recognizer == nil || opts.Sink == nil || opts.Encoder == nil {
		return nil, errors.New("pipeline: Recognizer, Sink and Encoder are required")
	}
	opts = defaults.Fill(opts, Options{Batch: DefaultBatch(), Retry: DefaultRetry(), MaxWrite: 500, DrainTimeout: DefaultDrainTimeout})
	var bad problems.List
	bad.Add("batch", opts.Batch.Validate())
	bad.Add("retry", opts.Retry.Validate())
	if opts.MaxWrite < 0 || opts.DrainTimeout < 0 {
		bad.Addf("", "MaxWrite and DrainTimeout must not be negative")
	}
	if err := bad.Err(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	p := &Pipeline{
		opts:  opts,
		log:   log,
		slots: make(chan struct{}, opts.Batch.MaxInFlight),
		in:    make(chan *item),
		work:  make(chan []*item),
	}
	opts.Health.Set(telemetry.CheckCommit, nil)
	opts.Metrics.ObserveInFlight(func() int64 { return int64(len(p.slots)) })
	opts.Metrics.ObserveLag(p.observeLag)
	return p, nil
}

// Stats returns the counters so far.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Fetched:        p.fetched.Load(),
		Annotated:      p.annotated.Load(),
		DeadLetters:    p.deadLetters.Load(),
		Abandoned:      p.abandoned.Load(),
		ModelRetries:   p.modelRetries.Load(),
		WriteRetries:   p.writeRetries.Load(),
		CommitFailures: p.commitFails.Load(),
		InFlight:       int64(len(p.slots)),
	}
}

// Run batches and recognizes documents until ctx ends. Claims make progress
// only while it runs; end it after the last claim has returned.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range p.opts.Batch.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case b := <-p.work:
					p.process(ctx, b)
				}
			}
		})
	}
	p.batch(ctx)
	wg.Wait()
	return nil
}

// batch gathers items into micro-batches and hands them to the workers.
func (p *Pipeline) batch(ctx context.Context) {
	var (
		cur    []*item
		bytes  int
		timer  = time.NewTimer(time.Hour)
		ready  bool // cur is closed and waits for a worker
		timerC <-chan time.Time
	)
	timer.Stop()
	for {
		var work chan []*item
		var in chan *item = p.in
		if ready {
			work, in = p.work, nil
		}
		select {
		case <-ctx.Done():
			return
		case it := <-in:
			if len(cur) == 0 {
				timer.Reset(p.opts.Batch.Linger)
				timerC = timer.C
			}
			cur = append(cur, it)
			bytes += it.size
			if len(cur) >= p.opts.Batch.MaxDocs || bytes >= p.opts.Batch.MaxBytes {
				ready = true
			}
		case <-timerC:
			timerC = nil
			ready = len(cur) > 0
		case work <- cur:
			timer.Stop()
			timerC = nil
			cur, bytes, ready = nil, 0, false
		}
	}
}

// process runs one micro-batch through the model, retrying failures, and
// settles every item with an annotation or a dead letter.
func (p *Pipeline) process(ctx context.Context, batch []*item) {
	defer func() {
		// A panic in the recognizer or the encoder must not take the
		// process down, to be met again by the same record after a
		// restart: the batch's unsettled records become dead letters.
		if r := recover(); r != nil {
			p.log.Error("recognizer panicked; the batch becomes dead letters", "docs", len(batch), "panic", fmt.Sprint(r))
			for _, it := range batch {
				if !it.settled() && !it.claim.abandoned() {
					p.deadLetter(it, record.ReasonInferenceFailed)
				}
			}
		}
	}()
	outage := 0 // model calls in a row that failed as a whole
	for len(batch) > 0 {
		live := batch[:0:0]
		for _, it := range batch {
			if it.claim.abandoned() {
				continue
			}
			it.tries++
			live = append(live, it)
		}
		if len(live) == 0 {
			return
		}
		anns, err := p.recognize(ctx, live)
		if ctx.Err() != nil {
			return // shutting down: claims abandon what is left
		}
		if err != nil {
			// The model failed as a whole. Either the engine is down (an
			// engine closed, a GPU tier down or unreachable), and no
			// document is at fault; or a document of the batch fails
			// the engine (a poison document), and the others must not
			// wait behind it. A probe (a canned document) tells which.
			for _, it := range live {
				it.tries--
			}
			p.opts.Health.Set(telemetry.CheckModel, fmt.Errorf("inference failing: %w", err))
			if perr := p.probe(ctx); perr == nil {
				p.opts.Health.Set(telemetry.CheckModel, nil) // the engine works
				if len(live) > 1 {
					// The engine works: narrow the batch down, each
					// half on its own, until the guilty documents are
					// alone and the others are through.
					p.log.Warn("model failed on a batch that a probe passes; retrying its documents apart", "docs", len(live), "err", err)
					half := len(live) / 2
					p.process(ctx, live[:half])
					p.process(ctx, live[half:])
					return
				}
				// The one document fails the engine that works: it
				// spends an attempt, as an error of its own would.
				it := live[0]
				it.tries++
				if it.tries >= p.opts.Retry.MaxAttempts {
					p.log.WarnContext(it.ctx, "inference failed on this document alone; dead letter", "topic", it.in.Topic, "partition", it.in.Partition, "offset", it.in.Offset, "tries", it.tries, "err", err)
					p.deadLetter(it, record.ReasonInferenceFailed)
					return
				}
				p.modelRetries.Add(1)
				d := p.opts.Retry.delay(it.tries)
				p.log.Warn("model failed on one document; retrying it", "in", d, "tries", it.tries, "err", err)
				if backoff.Sleep(ctx, d) != nil {
					return
				}
				batch = live
				continue
			}
			outage++
			p.modelRetries.Add(int64(len(live)))
			d := p.opts.Retry.delay(outage)
			p.log.Warn("model failed; holding the batch and retrying", "docs", len(live), "in", d, "failures", outage, "err", err)
			if backoff.Sleep(ctx, d) != nil {
				return
			}
			batch = live
			continue
		}
		outage = 0
		var again []*item
		var retryErr error
		for i, it := range live {
			docErr := anns[i].Err
			var ie *record.InputError
			switch {
			case docErr == nil:
				out, encErr := p.opts.Encoder.Annotation(&it.in, &anns[i])
				if encErr != nil {
					p.log.WarnContext(it.ctx, "annotation not encodable", "topic", it.in.Topic, "partition", it.in.Partition, "offset", it.in.Offset, "err", encErr)
					p.deadLetter(it, record.ReasonEncodeFailed)
					continue
				}
				it.finish(out, "")
			case errors.As(docErr, &ie):
				p.deadLetter(it, ie.Reason)
			case it.tries >= p.opts.Retry.MaxAttempts:
				p.log.WarnContext(it.ctx, "inference failed; dead letter", "topic", it.in.Topic, "partition", it.in.Partition, "offset", it.in.Offset, "tries", it.tries, "err", docErr)
				p.deadLetter(it, record.ReasonInferenceFailed)
			default:
				again = append(again, it)
				retryErr = docErr
			}
		}
		if len(again) == 0 {
			p.opts.Health.Set(telemetry.CheckModel, nil)
			return
		}
		p.opts.Health.Set(telemetry.CheckModel, fmt.Errorf("inference failing: %w", retryErr))
		p.modelRetries.Add(int64(len(again)))
		d := p.opts.Retry.delay(again[0].tries)
		p.log.Warn("model failed; retrying", "docs", len(again), "in", d, "err", retryErr)
		if backoff.Sleep(ctx, d) != nil {
			return
		}
		batch = again
	}
}

// probeDoc is the canned document of [Pipeline.probe]: short, plain, one
// type.
var probeDoc = record.Document{ID: "nerstream-probe", Text: "Ada Lovelace lived in London.", Types: []string{"person"}}

// probe asks the recognizer about a canned document: nil when the engine
// answers it, so that a batch that failed as a whole failed for its
// documents, not for the engine.
func (p *Pipeline) probe(ctx context.Context) error {
	anns, err := p.opts.Recognizer.Recognize(ctx, []record.Document{probeDoc})
	switch {
	case err != nil:
		return err
	case len(anns) != 1:
		return fmt.Errorf("recognizer returned %d annotations for the probe", len(anns))
	}
	return anns[0].Err
}

// recognize is one model call over the items, in an infer span linked to
// each record's span.
func (p *Pipeline) recognize(ctx context.Context, items []*item) ([]model.Annotation, error) {
	docs := make([]record.Document, len(items))
	for i, it := range items {
		docs[i] = it.in.Doc
	}
	ctx, span := p.startInfer(ctx, items)
	defer span.End()
	start := time.Now()
	anns, err := p.opts.Recognizer.Recognize(ctx, docs)
	if err == nil && len(anns) != len(docs) {
		err = fmt.Errorf("recognizer returned %d annotations for %d documents", len(anns), len(docs))
	}
	if err != nil {
		recordError(span, err)
		return nil, err
	}
	var in, out, dropped int
	for i := range anns {
		in += anns[i].PromptTokens
		out += anns[i].GeneratedTokens
		dropped += anns[i].BelowMinScore
	}
	p.opts.Metrics.ModelBatch(ctx, len(docs), time.Since(start), in, out)
	p.opts.Metrics.BelowMinScore(ctx, dropped)
	endInfer(span, in, out)
	return anns, nil
}

// claim is the state of one claimed partition inside Consume.
type claim struct {
	c     Claim
	queue chan *item // fetched items in offset order, to the emitter
	// abandon ends when the drain is over: items not yet settled are
	// dropped.
	abandon context.Context
	// topic and partition (set by fetch before the claim joins
	// Pipeline.claims), the high-water mark of the last fetch and the
	// committed offset (-1 until known) make the consumer lag.
	topic          string
	partition      int
	hwm, committed atomic.Int64
	spans          claimSpans // set with topic
}

func (c *claim) abandoned() bool { return c.abandon.Err() != nil }

// Consume processes one claimed partition until ctx ends, then drains: it
// writes and commits the work in flight within Options.DrainTimeout and
// abandons the rest. It returns nil after a drain, or the claim's error
// when fetching failed otherwise.
func (p *Pipeline) Consume(ctx context.Context, c Claim, start int64) error {
	abandon, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
			t := time.AfterFunc(p.opts.DrainTimeout, stop)
			<-abandon.Done()
			t.Stop()
		case <-abandon.Done():
		}
	}()
	cl := &claim{c: c, queue: make(chan *item, p.opts.Batch.MaxInFlight), abandon: abandon}
	cl.committed.Store(max(start, -1))
	defer p.claims.Delete(cl) // fetch, which adds it, has returned by then
	fetchErr := make(chan error, 1)
	go func() { fetchErr <- p.fetch(ctx, cl) }()
	p.emit(cl, start)
	stop()
	if err := <-fetchErr; err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// fetch takes records from the claim while ctx lasts, each with an
// in-flight slot, and closes the queue when it stops.
//
// The record is fetched before its slot is taken, so that an idle
// partition, waiting in Next, holds no slot that a busy one could use. A
// record fetched when the claim ends is dropped untracked: it was never
// committed, so the next owner reads it again.
func (p *Pipeline) fetch(ctx context.Context, cl *claim) error {
	defer close(cl.queue)
	for attempt := 1; ; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in, err := cl.c.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A failed fetch (a broker restarting) is retried here, not
			// by ending the generation for every partition.
			d := p.opts.Retry.delay(attempt)
			p.log.Warn("fetch failed; retrying", "in", d, "err", err)
			attempt++
			if backoff.Sleep(ctx, d) != nil {
				return ctx.Err()
			}
			continue
		}
		attempt = 1
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p.slots <- struct{}{}:
		}
		p.fetched.Add(1)
		if in.Doc.ID == "" {
			in.Doc.ID = in.Topic + "/" + strconv.Itoa(in.Partition) + "/" + strconv.FormatInt(in.Offset, 10)
		}
		it := &item{in: in, claim: cl, size: len(in.Doc.Text), fetched: time.Now(), done: make(chan struct{})}
		if cl.topic == "" {
			// The claim's partition is known from its first record.
			cl.topic, cl.partition = in.Topic, in.Partition
			cl.spans = p.newClaimSpans(in.Topic, in.Partition)
			p.claims.Store(cl, struct{}{})
		}
		it.ctx, it.span = p.startProcess(it)
		p.opts.Metrics.Consumed(it.ctx, in.Topic, 1)
		cl.fetchedAt(in.Offset, in.HighWaterMark)
		cl.queue <- it // never blocks: the queue holds MaxInFlight
		if in.Reject != "" {
			p.deadLetter(it, in.Reject)
			continue
		}
		select {
		case p.in <- it:
		case <-cl.abandon.Done():
			return nil
		}
	}
}

// emit writes the claim's settled items in offset order, one write at a
// time, and commits behind them. It returns when the queue is closed and
// empty, or when the claim is abandoned.
//
// A commit that fails is tried again, backing off as Options.Retry says,
// while the claim goes on writing; but once the records written and not
// committed reach Batch.MaxInFlight over all claims, a claim whose commits
// fail writes no more until one succeeds. So a member that crashes while
// its commits fail redelivers at most about twice MaxInFlight records (the
// written ones and those in flight), not everything since its last commit.
func (p *Pipeline) emit(cl *claim, start int64) {
	tr := newTracker(start)
	committed := start
	var pending []*item // taken from the queue, not yet written
	var unc int64       // records written since the last commit
	failures := 0       // commits failed in a row
	defer func() {
		p.uncommitted.Add(-unc)
		if failures > 0 {
			p.commitState(false, nil)
		}
	}()
	defer func() {
		// Whatever was not written is abandoned: give its slots back, and
		// whatever is still queued too.
		n := len(pending)
		for _, it := range pending {
			endAbandoned(it.span)
		}
		for it := range cl.queue {
			endAbandoned(it.span)
			n++
		}
		for range n {
			<-p.slots
		}
		p.abandoned.Add(int64(n))
	}()
	commit := func() {
		off := tr.committable()
		if off == committed {
			return
		}
		if err := cl.c.Commit(off); err != nil {
			p.commitFails.Add(1)
			if failures++; failures == 1 {
				p.commitState(true, err)
			}
			p.log.Warn("commit failed; will retry", "offset", off, "failures", failures, "err", err)
			return
		}
		committed = off
		cl.committed.Store(off)
		p.uncommitted.Add(-unc)
		unc = 0
		if failures > 0 {
			failures = 0
			p.commitState(false, nil)
		}
	}
	defer commit()
	for {
		// A failed commit is tried again while waiting.
		var retry <-chan time.Time
		if committed != tr.committable() {
			retry = time.After(p.opts.Retry.delay(max(failures, 1)))
		}
		// Take the head.
		if len(pending) == 0 {
			select {
			case it, ok := <-cl.queue:
				if !ok {
					return
				}
				tr.add(it.in.Offset)
				pending = append(pending, it)
			case <-cl.abandon.Done():
				return
			case <-retry:
				commit()
				continue
			}
		}
		select {
		case <-pending[0].done:
		case <-cl.abandon.Done():
			return
		case <-retry:
			commit()
			continue
		}
		// Take every settled item behind it, up to MaxWrite.
	more:
		for len(pending) < p.opts.MaxWrite {
			select {
			case it, ok := <-cl.queue:
				if !ok {
					break more
				}
				tr.add(it.in.Offset)
				pending = append(pending, it)
			default:
				break more
			}
		}
		n := 0
		for n < len(pending) && n < p.opts.MaxWrite && pending[n].settled() {
			n++
		}
		// Commits failing and the bound reached: write nothing more until
		// a commit succeeds. (Checked just before the write: claims that
		// pass it together overshoot by their settled records, which are
		// in flight, so by less than MaxInFlight.)
		if failures > 0 && retry != nil && p.uncommitted.Load() >= int64(p.opts.Batch.MaxInFlight) {
			select {
			case <-cl.abandon.Done():
				return
			case <-retry:
				commit()
			}
			continue
		}
		outs := make([]Output, n)
		sends := make([]trace.Span, n)
		for i, it := range pending[:n] {
			outs[i] = it.out
			outs[i].TraceContext, sends[i] = p.startSend(it)
		}
		if !p.write(cl, outs) {
			for _, s := range sends {
				endAbandoned(s)
			}
			return
		}
		var dlq int64
		now := time.Now()
		for i, it := range pending[:n] {
			tr.ack(it.in.Offset)
			sends[i].End()
			p.acknowledged(it, now)
			if it.reason != "" {
				dlq++
			}
			<-p.slots
		}
		p.countProduced(pending[:n])
		p.deadLetters.Add(dlq)
		p.annotated.Add(int64(n) - dlq)
		pending = pending[n:]
		unc += int64(n)
		p.uncommitted.Add(int64(n))
		commit()
	}
}

// commitState records that a claim's commits began failing with err
// (failing) or recovered or ended (not failing), and sets the commit
// readiness check: failing while any claim's commits fail.
func (p *Pipeline) commitState(failing bool, err error) {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if failing {
		p.failingClaims++
		p.opts.Health.Set(telemetry.CheckCommit, fmt.Errorf("commits failing: %w", err))
		return
	}
	if p.failingClaims--; p.failingClaims == 0 {
		p.opts.Health.Set(telemetry.CheckCommit, nil)
	}
}

// write writes outs until the sink acknowledges them or the claim is
// abandoned.
func (p *Pipeline) write(cl *claim, outs []Output) bool {
	for attempt := 1; ; attempt++ {
		err := p.opts.Sink.Write(cl.abandon, outs)
		if err == nil {
			p.opts.Health.Set(telemetry.CheckProducer, nil)
			return true
		}
		if cl.abandoned() {
			return false
		}
		p.opts.Health.Set(telemetry.CheckProducer, fmt.Errorf("writes failing: %w", err))
		p.writeRetries.Add(1)
		d := p.opts.Retry.delay(attempt)
		p.log.Warn("write failed; retrying", "records", len(outs), "in", d, "err", err)
		if backoff.Sleep(cl.abandon, d) != nil {
			return false
		}
	}
}
