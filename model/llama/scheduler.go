package llama

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nerstream/nerstream/model"
)

// decoder is what the scheduler needs of a llama context: cContext in
// production, fakeDecoder in tests.
type decoder interface {
	// decode runs the model over a batch. After an error the scheduler
	// removes every sequence it had in flight.
	decode(b *batch) error
	// logits returns the logits of batch row i of the last decode, one per
	// vocabulary token, valid until the next decode; nil when the row has
	// none.
	logits(i int32) []float32
	// removeSequence frees every KV cell of a sequence id.
	removeSequence(id int32)
	// trimSequence takes sequence id off its cells at positions from p0
	// on; a cell that no sequence holds any more is free.
	trimSequence(id, p0 int32)
	// copySequence adds sequence id dst to the cells of sequence src at
	// positions p0 ≤ pos < p1: in a unified KV cache, no data is copied
	// and no cell is taken.
	copySequence(src, dst, p0, p1 int32) error
}

// batch is the tokens of one decode, in plain Go. cContext copies it into
// a llama_batch.
type batch struct {
	token  []int32
	pos    []int32
	seqs   [][]int32 // the sequence ids of each token
	logits []bool    // whether the decode keeps a token's logits
}

func newBatch(capacity int) batch {
	return batch{
		token:  make([]int32, 0, capacity),
		pos:    make([]int32, 0, capacity),
		seqs:   make([][]int32, 0, capacity),
		logits: make([]bool, 0, capacity),
	}
}

func (b *batch) len() int { return len(b.token) }

func (b *batch) reset() {
	b.token, b.pos, b.seqs, b.logits = b.token[:0], b.pos[:0], b.seqs[:0], b.logits[:0]
}

// add puts one token into the batch and returns its row. The batch keeps
// seqs until the next reset.
func (b *batch) add(tok, pos int32, seqs []int32, logits bool) int32 {
	b.token = append(b.token, tok)
	b.pos = append(b.pos, pos)
	b.seqs = append(b.seqs, seqs)
	b.logits = append(b.logits, logits)
	return int32(len(b.token) - 1)
}

// counters are an engine's Stats, shared by the scheduler and Engine.Stats.
type counters struct {
	mu sync.Mutex
	s  Stats
}

func (c *counters) add(f func(*Stats)) {
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

func (c *counters) get() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// schedConfig is what the scheduler decodes with.
type schedConfig struct {
	sequences   int      // sequence ids: 0 .. sequences-1
	cells       int      // KV cells
	batchTokens int      // the most tokens of one decode
	pieces      [][]byte // the text of every token
	eog         []bool   // the tokens that end a generation
	grammar     grammar  // each sequence starts with a clone; nil for none
	substring   bool     // substring-constrained answers
	// resident is the sequence id reserved for the resident prefix,
	// outside 0 .. sequences-1; -1 for none (see residentPrefix).
	resident int32
}

// prompt is one tokenized prompt of a group.
type prompt struct {
	index   int // in the caller's PromptGroup
	tokens  []int32
	passage string // the prompt's text part, for the substring mode
}

// request is one Generate call on its way through the scheduler.
type request struct {
	ctx    context.Context
	maxNew int
	serial bool
	// noScores skips each generated token's log-probability
	// (GenerateOptions.NoScores).
	noScores bool
	// probe, when set, asks for one full-batch decode instead (see
	// PrefillLimit); probeTime is its result.
	probe     []int32
	probeTime time.Duration
	groups    []*group
	out       [][]model.Completion
	pending   int    // groups not finished
	number    uint64 // given by the scheduler when it takes the request, from 1
	finished  chan struct{}
	err       error
}

// newRequest returns a request with room for the answers of groups of the
// given sizes; addGroup gives it the prompts to decode.
func newRequest(ctx context.Context, maxNew int, serial bool, sizes []int) *request {
	r := &request{ctx: ctx, maxNew: maxNew, serial: serial, out: make([][]model.Completion, len(sizes)), finished: make(chan struct{})}
	for i, n := range sizes {
		r.out[i] = make([]model.Completion, n)
	}
	return r
}

// addGroup adds the prompts of group gi to decode (none: nothing to do).
func (r *request) addGroup(gi int, ps []prompt) {
	if len(ps) == 0 {
		return
	}
	r.groups = append(r.groups, &group{req: r, index: gi, prompts: ps})
	r.pending++
}

func (r *request) fail(err error) {
	if r.err == nil && r.pending > 0 {
		r.err = err
		r.pending = 0
		close(r.finished)
	}
}

func (r *request) groupDone() {
	if r.pending > 0 {
		r.pending--
		if r.pending == 0 {
			close(r.finished)
		}
	}
}

// group is one PromptGroup (or a part of one too large for the cache) in
// the scheduler.
type group struct {
	req     *request
	index   int // in the request
	prompts []prompt

	prefix     []int32 // shared by every sequence of the group
	prefixDone int
	ids        []int32 // the sequence ids of the group, for the prefix
	seqs       []*sequence
	cells      int  // KV cells reserved
	attached   int  // tokens of the resident prefix the group shares
	learned    bool // learnResident has seen the group
	live       int  // sequences not finished
	// serialPart marks a one-prompt part of a group that runSerial
	// decodes; the group is done when runSerial says so.
	serialPart bool
}

// sequence is one prompt being decoded.
type sequence struct {
	g        *group
	p        prompt
	id       int32
	ids      [1]int32 // id, as the batch takes it
	tail     []int32  // the prompt's tokens after the shared prefix
	tailDone int
	pos      int32 // position of the next token
	next     int32 // sampled token to feed, once the prompt is in
	fed      bool  // next has been chosen and waits to be decoded
	out      []byte
	toks     []model.TokenLogProb // with cfg.scores
	nGen     int
	grammar  grammar
	closer   arrayCloser
	quotes   *quoteTracker // substring-constrained mode only
	row      int32         // index of its logits in the current batch, or -1
	finished bool
}

// scheduler is the continuous-batching loop. Its policy (admission, prefix
// sharing, splitting, sampling, stopping) is plain Go over a decoder, so
// that tests run it against a fake.
type scheduler struct {
	dec   decoder
	cfg   schedConfig
	stats *counters
	work  chan *request
	quit  chan struct{}
	done  chan struct{}

	// The loop's state, owned by run's goroutine.
	batch    batch
	rows     []*sequence // the sequences with logits in the batch
	freeIDs  []int32
	cells    int // reserved KV cells
	pending  []*group
	active   []*group
	probes   []*request
	smp      sampler
	res      residentPrefix
	requests uint64 // requests taken
	// residentOn turns the resident prefix on and off (Options.
	// NoResidentPrefix, Engine.SetResidentPrefix); the loop reads it.
	residentOn atomic.Bool
}

func newScheduler(dec decoder, cfg schedConfig, stats *counters) *scheduler {
	s := &scheduler{
		dec:   dec,
		cfg:   cfg,
		stats: stats,
		work:  make(chan *request),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		batch: newBatch(cfg.batchTokens),
		smp:   sampler{pieces: cfg.pieces},
		res:   residentPrefix{id: cfg.resident},
	}
	for id := cfg.sequences - 1; id >= 0; id-- {
		s.freeIDs = append(s.freeIDs, int32(id))
	}
	return s
}

// start runs the loop in its own goroutine; stop ends it.
func (s *scheduler) start() { go s.run() }

// stop ends the loop, failing what it holds with ErrClosed, and waits for
// it.
func (s *scheduler) stop() {
	close(s.quit)
	<-s.done
}

// do hands req to the loop and waits until it is finished (or failed).
func (s *scheduler) do(ctx context.Context, req *request) error {
	if req.pending == 0 {
		return nil // nothing to decode
	}
	select {
	case s.work <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrClosed
	}
	// Once the loop has a request, it finishes or fails it, even when it
	// stops.
	<-req.finished
	return req.err
}

// run is the loop: every decode happens here.
func (s *scheduler) run() {
	defer close(s.done)
	for {
		if len(s.probes) > 0 && len(s.active) == 0 {
			s.runProbe(s.probes[0])
			s.probes = s.probes[1:]
			continue
		}
		if len(s.pending) == 0 && len(s.active) == 0 {
			select {
			case req := <-s.work:
				s.accept(req)
			case <-s.quit:
				s.failAll(ErrClosed)
				return
			}
		}
		// Take in what has arrived meanwhile.
	drain:
		for {
			select {
			case req := <-s.work:
				s.accept(req)
			case <-s.quit:
				s.failAll(ErrClosed)
				return
			default:
				break drain
			}
		}
		s.dropCancelled()
		if len(s.pending) > 0 && s.pending[0].req.serial && len(s.active) == 0 {
			g := s.pending[0]
			s.pending = s.pending[1:]
			s.runSerial(g)
			continue
		}
		s.admit()
		if len(s.active) > 0 {
			s.step()
		}
	}
}

func (s *scheduler) accept(req *request) {
	s.requests++
	req.number = s.requests
	if req.probe != nil {
		s.probes = append(s.probes, req)
		return
	}
	s.pending = append(s.pending, req.groups...)
}

// runProbe decodes one full batch on an idle engine and times it.
func (s *scheduler) runProbe(req *request) {
	s.makeRoom(len(req.probe))
	s.batch.reset()
	id := s.freeIDs[len(s.freeIDs)-1]
	ids := []int32{id}
	for i, tok := range req.probe {
		s.batch.add(tok, int32(i), ids, i == len(req.probe)-1)
	}
	start := time.Now()
	err := s.dec.decode(&s.batch)
	req.probeTime = time.Since(start)
	s.dec.removeSequence(id)
	if err != nil {
		req.fail(fmt.Errorf("llama: decoding the probe batch: %w", err))
		return
	}
	req.groupDone()
}

// failAll finishes every request the scheduler holds with err.
func (s *scheduler) failAll(err error) {
	for _, g := range append(s.active, s.pending...) {
		s.release(g)
		g.req.fail(err)
	}
	for _, p := range s.probes {
		p.fail(err)
	}
	s.active, s.pending, s.probes = nil, nil, nil
	s.dropResident()
}

// dropCancelled abandons the work of requests whose context is done.
func (s *scheduler) dropCancelled() {
	keep := func(gs []*group) []*group {
		out := gs[:0]
		for _, g := range gs {
			if err := g.req.ctx.Err(); err != nil || g.req.err != nil {
				s.release(g)
				g.req.fail(err)
				continue
			}
			out = append(out, g)
		}
		return out
	}
	s.active = keep(s.active)
	s.pending = keep(s.pending)
}

// need returns the KV cells a group may use at most.
func (g *group) need(maxNew int) int {
	n := len(g.prefix)
	for _, p := range g.prompts {
		n += len(p.tokens) - len(g.prefix) + maxNew
	}
	return n
}

// admit starts pending groups while sequence ids and KV cells last.
func (s *scheduler) admit() {
	if !s.residentOn.Load() && s.res.users == 0 {
		s.dropResident()
	}
	for len(s.pending) > 0 && !s.pending[0].req.serial {
		g := s.pending[0]
		if g.prefix == nil {
			g.prefix = sharedPrefix(g.prompts)
		}
		maxNew := g.req.maxNew
		k := 0
		if s.residentOn.Load() {
			s.learnResident(g)
			k = s.res.shared(g.prompts)
			s.shrinkResident(k)
		}
		need := g.need(maxNew) - k
		if len(g.prompts) > s.cfg.sequences || need > s.cfg.cells-len(s.res.tokens) {
			if len(g.prompts) <= s.cfg.sequences && g.need(maxNew) <= s.cfg.cells {
				// It fits an empty engine only without the resident
				// prefix: drop it once no group uses it.
				if s.res.users > 0 {
					return
				}
				s.dropResident()
				continue
			}
			// Too large for an empty engine: split it in two.
			if len(g.prompts) == 1 {
				// Cannot happen: submit refuses such prompts.
				s.pending = s.pending[1:]
				g.req.fail(errors.New("llama: a prompt does not fit the KV cache"))
				continue
			}
			half := len(g.prompts) / 2
			a := &group{req: g.req, index: g.index, prompts: g.prompts[:half]}
			b := &group{req: g.req, index: g.index, prompts: g.prompts[half:]}
			g.req.pending++
			s.pending = append([]*group{a, b}, s.pending[1:]...)
			continue
		}
		if len(g.prompts) > len(s.freeIDs) || s.cells+need > s.cfg.cells {
			return
		}
		s.pending = s.pending[1:]
		g.cells = need
		s.cells += need
		if k > len(g.prefix) {
			// One prompt: its first k tokens are the resident's.
			g.prefix = g.prompts[0].tokens[:k]
		}
		g.attached, g.prefixDone = k, k
		if k > 0 {
			s.res.users++
		}
		g.ids = make([]int32, 0, len(g.prompts))
		var err error
		for _, p := range g.prompts {
			id := s.freeIDs[len(s.freeIDs)-1]
			s.freeIDs = s.freeIDs[:len(s.freeIDs)-1]
			seq := &sequence{g: g, p: p, id: id, tail: p.tokens[len(g.prefix):], pos: int32(len(g.prefix)), row: -1}
			seq.ids[0] = id
			g.seqs = append(g.seqs, seq)
			g.ids = append(g.ids, id)
			if k > 0 && err == nil {
				if e := s.dec.copySequence(s.res.id, id, 0, int32(k)); e != nil {
					err = fmt.Errorf("llama: attaching to the resident prefix: %w", e)
				}
			}
		}
		g.live = len(g.seqs)
		if err == nil {
			err = s.startSequences(g)
		}
		if err != nil {
			s.release(g)
			g.req.fail(err)
			continue
		}
		s.active = append(s.active, g)
		s.stats.add(func(st *Stats) {
			for _, p := range g.prompts {
				st.PromptTokens += len(p.tokens)
			}
			st.SharedTokens += len(g.prefix)*(len(g.prompts)-1) + k
			st.ResidentTokens += k
		})
	}
}

// startSequences gives each new sequence of g its grammar and, in the
// substring-constrained mode, its passage.
func (s *scheduler) startSequences(g *group) error {
	for _, q := range g.seqs {
		if s.cfg.grammar != nil {
			gr, err := s.cfg.grammar.clone()
			if err != nil {
				return fmt.Errorf("llama: %w", err)
			}
			q.grammar = gr
		}
		if s.cfg.substring {
			q.quotes = &quoteTracker{passage: q.p.passage}
		}
	}
	return nil
}

// sharedPrefix returns the longest token prefix of all prompts, leaving
// every prompt at least one token of its own (whose logits start its
// answer).
func sharedPrefix(ps []prompt) []int32 {
	if len(ps) < 2 {
		return []int32{}
	}
	n := len(ps[0].tokens) - 1
	for _, p := range ps[1:] {
		n = min(n, len(p.tokens)-1)
		for i := 0; i < n; i++ {
			if p.tokens[i] != ps[0].tokens[i] {
				n = i
				break
			}
		}
	}
	return ps[0].tokens[:max(n, 0)]
}

// step fills one batch, decodes it, and samples the sequences that have
// logits in it. Generated tokens go first, so that answers in progress are
// never starved by prefill; prefill fills the rest.
func (s *scheduler) step() {
	b, capacity := &s.batch, s.cfg.batchTokens
	b.reset()
	s.rows = s.rows[:0]
	for _, g := range s.active {
		for _, q := range g.seqs {
			q.row = -1
			if !q.finished && q.fed && b.len() < capacity {
				q.row = b.add(q.next, q.pos, q.ids[:], true)
				s.rows = append(s.rows, q)
			}
		}
	}
	for _, g := range s.active {
		room := capacity - b.len()
		if room == 0 {
			break
		}
		if g.prefixDone < len(g.prefix) {
			n := min(room, len(g.prefix)-g.prefixDone)
			for i := 0; i < n; i++ {
				b.add(g.prefix[g.prefixDone+i], int32(g.prefixDone+i), g.ids, false)
			}
			g.prefixDone += n
			if g.prefixDone < len(g.prefix) {
				continue
			}
		}
		for _, q := range g.seqs {
			room := capacity - b.len()
			if room == 0 || q.tailDone == len(q.tail) {
				continue
			}
			n := min(room, len(q.tail)-q.tailDone)
			for i := 0; i < n; i++ {
				last := q.tailDone+i == len(q.tail)-1
				r := b.add(q.tail[q.tailDone+i], q.pos, q.ids[:], last)
				q.pos++
				if last {
					q.row = r
					s.rows = append(s.rows, q)
				}
			}
			q.tailDone += n
		}
	}
	if b.len() == 0 {
		return
	}
	if err := s.decode(b); err != nil {
		err = fmt.Errorf("llama: decoding a batch of %d tokens: %w", b.len(), err)
		for _, g := range s.active {
			s.release(g)
		}
		// Whatever llama.cpp left in the cache, start afresh.
		s.dropResident()
		for _, g := range s.active {
			g.req.fail(err)
		}
		s.active = nil
		return
	}
	for _, q := range s.rows {
		if q.fed {
			q.pos++ // the fed token is now in the cache
		}
		s.sampleNext(q)
	}
	s.finishGroups()
}

// sampleNext chooses a sequence's next token from its logits row.
func (s *scheduler) sampleNext(q *sequence) {
	l := s.dec.logits(q.row)
	tok := s.smp.greedy(l, q.grammar, q.quotes)
	q.fed = false
	if tok < 0 || s.cfg.eog[tok] {
		s.finish(q)
		return
	}
	q.nGen++
	piece := s.cfg.pieces[tok]
	if !q.g.req.noScores {
		// The log-softmax of the chosen token over the whole vocabulary,
		// before the grammar's mask (see the package doc).
		start := time.Now()
		q.toks = append(q.toks, model.TokenLogProb{Bytes: len(piece), LogProb: min(float64(l[tok])-logSumExp(l), 0)})
		took := time.Since(start)
		s.stats.add(func(st *Stats) { st.ScoreTime += took })
	}
	q.out = append(q.out, piece...)
	if q.grammar != nil {
		q.grammar.accept(tok)
	}
	if q.quotes != nil {
		q.quotes.feed(piece)
	}
	if q.closer.feed(piece) || q.nGen >= q.g.req.maxNew {
		s.finish(q)
		return
	}
	q.next, q.fed = tok, true
}

// finish ends a sequence: its answer is kept, its cells and id freed.
func (s *scheduler) finish(q *sequence) {
	q.finished = true
	q.g.live--
	c := &q.g.req.out[q.g.index][q.p.index]
	c.Text = string(q.out)
	c.GeneratedTokens = q.nGen
	if !q.g.req.noScores {
		c.Tokens = q.toks
		if c.Tokens == nil {
			c.Tokens = []model.TokenLogProb{}
		}
	}
	s.stats.add(func(st *Stats) { st.GeneratedTokens += q.nGen })
	s.freeSeq(q)
}

func (s *scheduler) freeSeq(q *sequence) {
	if q.id < 0 {
		return
	}
	s.dec.removeSequence(q.id)
	s.freeIDs = append(s.freeIDs, q.id)
	q.id = -1
	if q.grammar != nil {
		q.grammar.free()
		q.grammar = nil
	}
}

// release frees everything a group holds.
func (s *scheduler) release(g *group) {
	for _, q := range g.seqs {
		s.freeSeq(q)
	}
	s.cells -= g.cells
	g.cells = 0
	if g.attached > 0 {
		s.res.users--
		g.attached = 0
	}
}

func (s *scheduler) finishGroups() {
	out := s.active[:0]
	for _, g := range s.active {
		if g.live > 0 {
			out = append(out, g)
			continue
		}
		s.release(g)
		if !g.serialPart {
			g.req.groupDone()
		}
	}
	s.active = out
}

// runSerial answers a group's prompts one at a time, each whole on its
// own sequence with nothing shared: the baseline.
func (s *scheduler) runSerial(g *group) {
	for _, p := range g.prompts {
		if err := g.req.ctx.Err(); err != nil {
			g.req.fail(err)
			return
		}
		one := &group{req: g.req, index: g.index, prompts: []prompt{p}, prefix: []int32{}, serialPart: true}
		one.cells = one.need(g.req.maxNew)
		s.makeRoom(one.cells)
		s.cells += one.cells
		id := s.freeIDs[len(s.freeIDs)-1]
		s.freeIDs = s.freeIDs[:len(s.freeIDs)-1]
		q := &sequence{g: one, p: p, id: id, tail: p.tokens, row: -1}
		q.ids[0] = id
		one.seqs = []*sequence{q}
		one.live = 1
		if err := s.startSequences(one); err != nil {
			s.release(one)
			g.req.fail(err)
			return
		}
		s.active = []*group{one}
		s.stats.add(func(st *Stats) { st.PromptTokens += len(p.tokens) })
		for len(s.active) > 0 && g.req.err == nil {
			err := g.req.ctx.Err()
			select {
			case <-s.quit:
				err = ErrClosed
			default:
			}
			if err != nil {
				s.release(one)
				s.active = nil
				g.req.fail(err)
				return
			}
			s.step()
		}
		if g.req.err != nil {
			return
		}
	}
	g.req.groupDone()
}

// decode decodes b and counts the call, its tokens and its time in the
// engine's stats.
func (s *scheduler) decode(b *batch) error {
	start := time.Now()
	err := s.dec.decode(b)
	took := time.Since(start)
	s.stats.add(func(st *Stats) {
		st.DecodeCalls++
		st.DecodeTokens += b.len()
		st.DecodeTime += took
	})
	return err
}
