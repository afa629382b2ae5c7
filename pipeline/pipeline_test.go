package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/backoff"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// memClaim is a test double of a Claim: an in-memory partition whose
// commits are recorded.
type memClaim struct {
	topic     string
	partition int
	records   chan Input
	mu        sync.Mutex
	commits   []int64
	failNext  int  // commits to fail
	broken    bool // every commit fails while set
	failed    int  // commits failed so far
	nextCalls int
}

// setBroken makes every commit fail (REBALANCE_IN_PROGRESS) while b.
func (c *memClaim) setBroken(b bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken = b
}

// failures is the number of failed commits so far.
func (c *memClaim) failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

func newMemClaim(partition, n int, reject func(i int) string) *memClaim {
	c := &memClaim{topic: "in", partition: partition, records: make(chan Input, n)}
	for i := range n {
		in := Input{Topic: "in", Partition: partition, Offset: int64(i), Value: []byte(strconv.Itoa(i)),
			Doc: record.Document{Text: fmt.Sprintf("doc %d of %d", i, partition)}}
		if reject != nil {
			in.Reject = reject(i)
		}
		c.records <- in
	}
	return c
}

func (c *memClaim) Next(ctx context.Context) (Input, error) {
	c.mu.Lock()
	c.nextCalls++
	c.mu.Unlock()
	select {
	case <-ctx.Done():
		return Input{}, ctx.Err()
	case in := <-c.records:
		return in, nil
	}
}

// calls is the number of Next calls so far.
func (c *memClaim) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextCalls
}

func (c *memClaim) Commit(off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failNext > 0 || c.broken {
		c.failNext = max(c.failNext-1, 0)
		c.failed++
		return errors.New("REBALANCE_IN_PROGRESS (test double)")
	}
	if n := len(c.commits); n > 0 && off < c.commits[n-1] {
		panic(fmt.Sprintf("commit moved backwards: %d after %d", off, c.commits[n-1]))
	}
	c.commits = append(c.commits, off)
	return nil
}

func (c *memClaim) lastCommit() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.commits) == 0 {
		return -1
	}
	return c.commits[len(c.commits)-1]
}

// memSink is a test double of a Sink that keeps what it acknowledged and
// can fail writes.
type memSink struct {
	mu      sync.Mutex
	outs    []Output
	fail    int // writes to fail
	writes  int
	ackHook func()
}

func (s *memSink) Write(ctx context.Context, outs []Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail > 0 {
		s.fail--
		return errors.New("NOT_LEADER_FOR_PARTITION (test double)")
	}
	s.outs = append(s.outs, outs...)
	return nil
}

func (s *memSink) snapshot() []Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.outs)
}

// textEncoder is a test double of an Encoder: the value is the document
// id, and dead letters go to "dlq" with the reason as a header.
type textEncoder struct{}

func (textEncoder) Annotation(in *Input, ann *model.Annotation) (Output, error) {
	return Output{Topic: "out", Key: []byte(ann.ID), Value: []byte(in.Doc.ID)}, nil
}

func (textEncoder) DeadLetter(in *Input, reason string) Output {
	return Output{Topic: "dlq", Key: in.Key, Value: in.Value, Headers: []record.Header{{Key: "nerstream-error", Value: []byte(reason)}}}
}

// funcRecognizer is a test double of a Recognizer.
type funcRecognizer func(ctx context.Context, docs []record.Document) ([]model.Annotation, error)

func (f funcRecognizer) Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
	return f(ctx, docs)
}

func instant(_ context.Context, docs []record.Document) ([]model.Annotation, error) {
	anns := make([]model.Annotation, len(docs))
	for i, d := range docs {
		anns[i].ID = d.ID
	}
	return anns, nil
}

type harness struct {
	p      *Pipeline
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Encoder == nil {
		opts.Encoder = textEncoder{}
	}
	opts.Retry.InitialBackoff = time.Millisecond
	opts.Retry.MaxBackoff = 5 * time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{p: p, cancel: cancel, done: make(chan struct{})}
	go func() { _ = p.Run(ctx); close(h.done) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// consumeUntil runs Consume on the claims until cond holds, then ends the
// claims' context and waits for the drain.
func (h *harness) consumeUntil(t *testing.T, cond func() bool, claims ...*memClaim) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() {
			if err := h.p.Consume(ctx, c, 0); err != nil {
				t.Errorf("Consume: %v", err)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("condition not met in time; stats %+v", h.p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
}

func TestOrderAndCommits(t *testing.T) {
	sink := &memSink{}
	h := start(t, Options{Recognizer: funcRecognizer(instant), Sink: sink, Batch: Batch{MaxDocs: 7, MaxInFlight: 20, Workers: 3}})
	claims := []*memClaim{newMemClaim(0, 300, nil), newMemClaim(1, 300, nil), newMemClaim(2, 300, nil)}
	h.consumeUntil(t, func() bool {
		for _, c := range claims {
			if c.lastCommit() != 300 {
				return false
			}
		}
		return true
	}, claims...)
	next := map[int]int{}
	for _, o := range sink.snapshot() {
		var p, i int
		if _, err := fmt.Sscanf(string(o.Value), "in/%d/%d", &p, &i); err != nil {
			t.Fatalf("value %q: %v", o.Value, err)
		}
		if i != next[p] {
			t.Fatalf("partition %d: output %d after %d: order lost", p, i, next[p]-1)
		}
		next[p]++
	}
	if next[0] != 300 || next[1] != 300 || next[2] != 300 {
		t.Fatalf("outputs per partition %v", next)
	}
	if s := h.p.Stats(); s.InFlight != 0 || s.Annotated != 900 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBatchesClose(t *testing.T) {
	cases := []struct {
		name     string
		opts     Options
		docs     int
		wantMax  int
		lingered bool
	}{
		{"on max docs", Options{Batch: Batch{MaxDocs: 5, Linger: time.Hour}}, 20, 5, false},
		{"on max bytes", Options{Batch: Batch{MaxDocs: 100, MaxBytes: 30, Linger: time.Hour}}, 21, 3, false},
		{"on linger", Options{Batch: Batch{MaxDocs: 100, Linger: 10 * time.Millisecond}}, 7, 7, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var sizes []int
			c.opts.Recognizer = funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
				mu.Lock()
				sizes = append(sizes, len(docs))
				mu.Unlock()
				return instant(ctx, docs)
			})
			c.opts.Sink = &memSink{}
			c.opts.Batch.Workers = 1
			c.opts.Batch.MaxInFlight = 200
			h := start(t, c.opts)
			claim := newMemClaim(0, c.docs, nil)
			h.consumeUntil(t, func() bool { return claim.lastCommit() == int64(c.docs) }, claim)
			mu.Lock()
			defer mu.Unlock()
			if got := slices.Max(sizes); got > c.wantMax || (!c.lingered && got != c.wantMax) {
				t.Fatalf("batch sizes %v, want at most %d", sizes, c.wantMax)
			}
		})
	}
}

// TestBackPressure: with the model stuck, the fetcher stops for want of an
// in-flight slot once MaxInFlight records are fetched and unacknowledged.
//
// Batches close only on MaxDocs (the linger is an hour), so the state is
// exact: two batches of 4 at the two stuck workers, 2 records in the
// batcher, and the 11th record fetched and waiting for a slot. The test
// waits for that state (the fetcher parked in fetch with the bound's count
// in flight) rather than for a time.
func TestBackPressure(t *testing.T) {
	const bound, maxDocs, workers, records = 10, 4, 2, 100
	release := make(chan struct{})
	unstick := sync.OnceFunc(func() { close(release) })
	var entered atomic.Int32 // model calls begun
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		entered.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return instant(ctx, docs)
	})
	h := start(t, Options{Recognizer: rec, Sink: &memSink{}, DrainTimeout: time.Second, Batch: Batch{MaxDocs: maxDocs, MaxInFlight: bound, Workers: workers, Linger: time.Hour}}) // on a failure, the partial batch is not waited for long
	claim := newMemClaim(0, records, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.p.Consume(ctx, claim, 0); close(done) }()
	defer func() { unstick(); cancel(); <-done }()

	// A record is fetched before its slot is taken: the (bound+1)th Next
	// returns a record that waits for a slot, and no further Next comes.
	waitFor(t, "the fetcher blocked waiting for an in-flight slot", func() bool {
		return entered.Load() == workers && h.p.Stats().InFlight == bound && claim.calls() > bound && parkedIn("pipeline.(*Pipeline).fetch")
	}, func() string {
		return fmt.Sprintf("model calls %d, in flight %d, Next calls %d, fetcher parked %v",
			entered.Load(), h.p.Stats().InFlight, claim.calls(), parkedIn("pipeline.(*Pipeline).fetch"))
	})
	if n := claim.calls(); n != bound+1 {
		t.Errorf("Next called %d times with the model stuck and %d slots, want %d", n, bound, bound+1)
	}
	if got := h.p.Stats().InFlight; got != bound {
		t.Errorf("in flight %d, want the bound %d", got, bound)
	}
	if n := entered.Load(); n != workers {
		t.Errorf("%d model calls with the model stuck, want one per worker (%d)", n, workers)
	}

	unstick()
	waitFor(t, "every record committed after the model came back", func() bool { return claim.lastCommit() == records },
		func() string { return fmt.Sprintf("last commit %d, stats %+v", claim.lastCommit(), h.p.Stats()) })
}

// parkedIn reports whether some goroutine is parked (in a select or a
// channel operation) in fn itself, not in a function it called: fn is
// "package.function" as a stack trace names it, e.g.
// "pipeline.(*Pipeline).fetch".
func parkedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, frames, _ := strings.Cut(g, "\n")
		_, state, _ := strings.Cut(header, "[")
		if !strings.HasPrefix(state, "select") && !strings.HasPrefix(state, "chan send") && !strings.HasPrefix(state, "chan receive") {
			continue
		}
		top, _, _ := strings.Cut(frames, "\n")
		if strings.HasPrefix(top, "github.com/nerstream/nerstream/"+fn+"(") {
			return true
		}
	}
	return false
}

func TestDeadLettersAndRetries(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		anns, _ := instant(ctx, docs)
		mu.Lock()
		defer mu.Unlock()
		for i, d := range docs {
			calls[d.ID]++
			switch {
			case d.ID == "in/0/3":
				anns[i].Err = &record.InputError{Reason: record.ReasonTextTooLong, Detail: "too long"}
			case d.ID == "in/0/4": // always fails
				anns[i].Err = errors.New("CUDA error (test double)")
			case d.ID == "in/0/5" && calls[d.ID] < 3: // fails twice, then works
				anns[i].Err = errors.New("transient (test double)")
			}
		}
		return anns, nil
	})
	sink := &memSink{}
	h := start(t, Options{Recognizer: rec, Sink: sink, Retry: Retry{MaxAttempts: 3}, Batch: Batch{MaxDocs: 4, Linger: time.Millisecond}})
	claim := newMemClaim(0, 8, func(i int) string {
		if i == 1 {
			return "invalid_json"
		}
		return ""
	})
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 8 }, claim)
	reasons := map[string]string{}
	for _, o := range sink.snapshot() {
		if o.Topic == "dlq" {
			reasons[string(o.Value)] = string(o.Headers[0].Value)
		}
	}
	want := map[string]string{"1": "invalid_json", "3": record.ReasonTextTooLong, "4": record.ReasonInferenceFailed}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", reasons, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["in/0/4"] != 3 || calls["in/0/5"] != 3 || calls["in/0/1"] != 0 {
		t.Fatalf("model calls %v", calls)
	}
	if s := h.p.Stats(); s.DeadLetters != 3 || s.Annotated != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSinkFailuresAreRetriedNotDeadLettered(t *testing.T) {
	sink := &memSink{fail: 5}
	h := start(t, Options{Recognizer: funcRecognizer(instant), Sink: sink, Batch: Batch{MaxDocs: 10, Linger: time.Millisecond}})
	claim := newMemClaim(0, 10, nil)
	claim.failNext = 2
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 10 }, claim)
	outs := sink.snapshot()
	if len(outs) != 10 {
		t.Fatalf("%d outputs, want 10", len(outs))
	}
	for _, o := range outs {
		if o.Topic != "out" {
			t.Fatalf("output to %s: a sink failure became a dead letter", o.Topic)
		}
	}
	if s := h.p.Stats(); s.WriteRetries != 5 || s.CommitFailures != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCommitFailuresHoldWrites: while every commit fails, the claims write
// until the records written and not committed reach MaxInFlight (plus the
// one write that crossed it), then hold, so that a crash now would
// redeliver a bounded window rather than everything since the last commit;
// the commit check fails meanwhile. Once commits pass again, everything is
// written once and committed, and the check is ready.
func TestCommitFailuresHoldWrites(t *testing.T) {
	const perClaim, maxInFlight = 100, 8
	sink := &memSink{}
	health := telemetry.NewHealth()
	h := start(t, Options{Recognizer: funcRecognizer(instant), Sink: sink, Health: health,
		Batch: Batch{MaxDocs: 4, MaxInFlight: maxInFlight, Workers: 2}})
	if ready, reasons := health.Ready(); !ready {
		t.Fatalf("not ready before any commit: %v", reasons)
	}
	claims := []*memClaim{newMemClaim(0, perClaim, nil), newMemClaim(1, perClaim, nil)}
	for _, c := range claims {
		c.setBroken(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() { _ = h.p.Consume(ctx, c, 0) })
	}
	// Many failed commits: far more than the writes all 200 records
	// would take, so that without the hold they would all be written.
	state := func() string { return fmt.Sprintf("%d written, stats %+v", len(sink.snapshot()), h.p.Stats()) }
	waitFor(t, "150 failed commits", func() bool { return claims[0].failures()+claims[1].failures() >= 150 }, state)
	if n := len(sink.snapshot()); n == 0 || n >= 2*maxInFlight {
		t.Errorf("%d records written while every commit failed, want 1 to %d", n, 2*maxInFlight-1)
	}
	if ready, reasons := health.Ready(); ready || len(reasons) != 1 || !strings.HasPrefix(reasons[0], "commit: commits failing") {
		t.Errorf("ready %v %q while commits fail", ready, reasons)
	}
	for _, c := range claims {
		c.setBroken(false)
	}
	waitFor(t, "every record committed", func() bool { return claims[0].lastCommit() == perClaim && claims[1].lastCommit() == perClaim }, state)
	if n := len(sink.snapshot()); n != 2*perClaim {
		t.Errorf("%d records written, want %d", n, 2*perClaim)
	}
	if ready, reasons := health.Ready(); !ready {
		t.Errorf("not ready once commits pass: %v", reasons)
	}
	cancel()
	wg.Wait()
	if u := h.p.uncommitted.Load(); u != 0 {
		t.Errorf("%d records counted uncommitted after the claims ended", u)
	}
}

// TestDrain ends a claim's generation with a batch at the model. Work
// that the model finishes within the drain is written and committed; work
// that it finishes only after the drain is abandoned, uncommitted and
// unwritten. The model answers after events, not after a time from its
// start: 200ms after the generation's end (well within a 10s drain, and
// well after a drain that ended at once), or once Consume has returned.
func TestDrain(t *testing.T) {
	cases := []struct {
		name       string
		finishIn   bool // the model answers within the drain, else after Consume returned
		drain      time.Duration
		wantCommit int64 // -1: nothing committed
	}{
		{"work finishing within the drain is committed", true, 10 * time.Second, 6},
		{"work past the drain is abandoned uncommitted", false, 50 * time.Millisecond, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			started := make(chan struct{}, 10)
			rec := funcRecognizer(func(mctx context.Context, docs []record.Document) ([]model.Annotation, error) {
				started <- struct{}{}
				if c.finishIn {
					// Within the drain: some time after the generation ended.
					select {
					case <-ctx.Done():
					case <-mctx.Done():
					}
					_ = backoff.Sleep(mctx, 200*time.Millisecond)
					return instant(mctx, docs)
				}
				// Past the drain: once Consume has returned.
				select {
				case <-done:
				case <-mctx.Done():
				}
				return instant(mctx, docs)
			})
			sink := &memSink{}
			// Batches close on their 6 documents only: the batch at the
			// model holds every slot.
			h := start(t, Options{Recognizer: rec, Sink: sink, DrainTimeout: c.drain, Batch: Batch{MaxDocs: 6, MaxInFlight: 6, Linger: time.Hour}})
			claim := newMemClaim(0, 20, nil)
			go func() { _ = h.p.Consume(ctx, claim, 0); close(done) }()
			select {
			case <-started:
			case <-time.After(20 * time.Second):
				t.Fatal("the model was never called")
			}
			cancel() // the generation ends with a batch at the model
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Consume did not return after its drain")
			}
			if got := claim.lastCommit(); got != c.wantCommit {
				t.Fatalf("last commit %d, want %d", got, c.wantCommit)
			}
			s := h.p.Stats()
			if s.InFlight != 0 {
				t.Fatalf("slots leaked: %+v", s)
			}
			if c.wantCommit < 0 && (len(sink.snapshot()) != 0 || s.Abandoned != 6) {
				t.Fatalf("abandoned work was written: %d outputs, stats %+v", len(sink.snapshot()), s)
			}
			if c.wantCommit >= 0 && (len(sink.snapshot()) != 6 || s.Abandoned != 0) {
				t.Fatalf("work finished within the drain: %d outputs, stats %+v", len(sink.snapshot()), s)
			}
		})
	}
}

// TestIdlePartitionsHoldNoSlots: partitions with nothing to fetch must not
// hold the in-flight slots that a busy partition needs.
func TestIdlePartitionsHoldNoSlots(t *testing.T) {
	h := start(t, Options{Recognizer: funcRecognizer(instant), Sink: &memSink{}, Batch: Batch{MaxDocs: 2, MaxInFlight: 2, Linger: time.Millisecond}})
	idle1, idle2 := newMemClaim(1, 0, nil), newMemClaim(2, 0, nil)
	busy := newMemClaim(0, 10, nil)
	h.consumeUntil(t, func() bool { return busy.lastCommit() == 10 }, idle1, idle2, busy)
}

// flakyClaim is a memClaim whose first fetches fail, like a broker that
// is restarting.
type flakyClaim struct {
	*memClaim
	fails int
}

func (c *flakyClaim) Next(ctx context.Context) (Input, error) {
	c.mu.Lock()
	if c.fails > 0 {
		c.fails--
		c.mu.Unlock()
		return Input{}, errors.New("leader not available (test double)")
	}
	c.mu.Unlock()
	return c.memClaim.Next(ctx)
}

func TestFetchErrorsAreRetried(t *testing.T) {
	h := start(t, Options{Recognizer: funcRecognizer(instant), Sink: &memSink{}, Batch: Batch{MaxDocs: 4, Linger: time.Millisecond}})
	c := &flakyClaim{memClaim: newMemClaim(0, 5, nil), fails: 3}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Consume(ctx, c, 0) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.lastCommit() != 5 {
		select {
		case err := <-done:
			t.Fatalf("Consume returned %v on a failed fetch: it should retry", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("never committed after fetch errors")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRecognizerPanicBecomesDeadLetters(t *testing.T) {
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		for _, d := range docs {
			if d.ID == "in/0/2" {
				panic("bad document (test double)")
			}
		}
		return instant(ctx, docs)
	})
	sink := &memSink{}
	h := start(t, Options{Recognizer: rec, Sink: sink, Batch: Batch{MaxDocs: 1, Linger: time.Millisecond}})
	claim := newMemClaim(0, 4, nil)
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 4 }, claim)
	var dlq []string
	for _, o := range sink.snapshot() {
		if o.Topic == "dlq" {
			dlq = append(dlq, string(o.Value)+":"+string(o.Headers[0].Value))
		}
	}
	if fmt.Sprint(dlq) != "[2:"+record.ReasonInferenceFailed+"]" {
		t.Fatalf("dead letters %v", dlq)
	}
}

// TestModelOutageHoldsRecords: a model that fails as a whole, more times
// than MaxAttempts, costs no dead letter; the records wait and are annotated
// once it recovers.
func TestModelOutageHoldsRecords(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n <= 7 {
			return nil, errors.New("GPU tier unreachable (test double)")
		}
		return instant(ctx, docs)
	})
	sink := &memSink{}
	h := start(t, Options{Recognizer: rec, Sink: sink, Retry: Retry{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}, Batch: Batch{MaxDocs: 8, Linger: time.Millisecond}})
	claim := newMemClaim(0, 6, nil)
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 6 }, claim)
	outs := sink.snapshot()
	if len(outs) != 6 {
		t.Fatalf("%d outputs, want 6", len(outs))
	}
	for _, o := range outs {
		if o.Topic != "out" {
			t.Fatalf("output to %s: a model outage made a dead letter", o.Topic)
		}
	}
	if s := h.p.Stats(); s.DeadLetters != 0 || s.Annotated != 6 {
		t.Fatalf("stats %+v", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 8 {
		t.Fatalf("%d model calls, want at least 8 (7 failures, then success)", calls)
	}
}

// TestPoisonDocumentIsNarrowedDown: a recognizer that fails the whole call
// whenever the batch holds one document (a poison document: issue 16
// reproduced it with a server answering HTTP 500 to any request holding
// that text, and the batch was held and retried 51 times in 75 s, nothing
// annotated, nothing committed). The probe passes, so the batch is split
// until the poison document is alone: it becomes an inference_failed dead
// letter after MaxAttempts, every other document is annotated, and the
// offset reaches the end.
func TestPoisonDocumentIsNarrowedDown(t *testing.T) {
	const poison = "doc 5 of 0"
	var mu sync.Mutex
	alone := 0 // calls with the poison document alone
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		for _, d := range docs {
			if d.Text == poison {
				mu.Lock()
				if len(docs) == 1 {
					alone++
				}
				mu.Unlock()
				return nil, errors.New("500 CUDA error: illegal memory access (test double)")
			}
		}
		return instant(ctx, docs)
	})
	sink := &memSink{}
	h := start(t, Options{Recognizer: rec, Sink: sink, Retry: Retry{MaxAttempts: 3}, Batch: Batch{MaxDocs: 8, Linger: time.Hour}})
	claim := newMemClaim(0, 16, nil)
	h.consumeUntil(t, func() bool { return claim.lastCommit() == 16 }, claim)
	var dead []string
	annotated := 0
	for _, o := range sink.snapshot() {
		switch o.Topic {
		case "dlq":
			dead = append(dead, string(o.Value)+":"+string(o.Headers[0].Value))
		case "out":
			annotated++
		}
	}
	if len(dead) != 1 || dead[0] != "5:"+record.ReasonInferenceFailed || annotated != 15 {
		t.Fatalf("dead letters %v and %d annotated; want only offset 5 dead (inference_failed) and 15 annotated", dead, annotated)
	}
	mu.Lock()
	defer mu.Unlock()
	if alone != 3 {
		t.Errorf("the poison document was tried alone %d times, want MaxAttempts = 3", alone)
	}
}

// TestOutageIsNotNarrowedDown: when the probe fails too, the whole batch
// is held (no dead letter, no commit), with no calls split per document,
// and goes through once the engine recovers.
func TestOutageIsNotNarrowedDown(t *testing.T) {
	var mu sync.Mutex
	down := true
	var sizes []int
	rec := funcRecognizer(func(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(docs))
		if down {
			return nil, errors.New("connection refused (test double)")
		}
		return instant(ctx, docs)
	})
	sink := &memSink{}
	h := start(t, Options{Recognizer: rec, Sink: sink, Retry: Retry{MaxAttempts: 2}, Batch: Batch{MaxDocs: 8, Linger: time.Hour}})
	claim := newMemClaim(0, 8, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Consume(ctx, claim, 0) }()
	// Wait for a few rounds of batch + probe while the engine is down.
	for {
		mu.Lock()
		n := len(sizes)
		mu.Unlock()
		if n >= 8 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if len(sink.snapshot()) != 0 || claim.lastCommit() != -1 {
		t.Fatalf("during the outage: %d outputs, commit %d", len(sink.snapshot()), claim.lastCommit())
	}
	mu.Lock()
	for _, n := range sizes {
		if n != 8 && n != 1 { // the batch, and the one-document probe
			t.Errorf("a call of %d documents during an outage: the batch was split (calls %v)", n, sizes)
			break
		}
	}
	down = false
	mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for claim.lastCommit() != 8 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if s := h.p.Stats(); s.DeadLetters != 0 || s.Annotated != 8 || claim.lastCommit() != 8 {
		t.Fatalf("after the recovery: stats %+v, commit %d", s, claim.lastCommit())
	}
}
