package llama

/*
#include <stdlib.h>
#include "llama_decl.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// prompt is one tokenized prompt of a group.
type prompt struct {
	index   int // in the caller's PromptGroup
	tokens  []int32
	passage string // the prompt's text part, for the substring mode
}

// group is one PromptGroup (or a part of one too large for the cache) in
// the scheduler.
type group struct {
	req     *request
	index   int // in the request
	prompts []prompt

	prefix     []int32 // shared by every sequence of the group
	prefixDone int
	seqs       []*sequence
	cells      int // KV cells reserved
	live       int // sequences not finished
	// serialPart marks a one-prompt part of a group that runSerial
	// decodes; the group is done when runSerial says so.
	serialPart bool
}

// sequence is one prompt being decoded.
type sequence struct {
	g        *group
	p        prompt
	id       int32
	tail     []int32 // the prompt's tokens after the shared prefix
	tailDone int
	pos      int32 // position of the next token
	next     int32 // sampled token to feed, once the prompt is in
	fed      bool  // next has been chosen and waits to be decoded
	out      []byte
	nGen     int
	grammar  *C.struct_llama_sampler
	closer   arrayCloser
	quotes   *quoteTracker // substring-constrained mode only
	row      int32         // index of its logits in the current batch, or -1
	finished bool
}

// scheduler is the state of the decoding loop, owned by its goroutine.
type scheduler struct {
	e       *Engine
	batch   C.llama_batch
	cap     int
	freeIDs []int32
	cells   int // reserved KV cells
	pending []*group
	active  []*group
	probes  []*request
	smp     *sampler
}

// run is the scheduler's goroutine: every llama_decode happens here.
func (e *Engine) run() {
	defer close(e.done)
	s := &scheduler{e: e, cap: e.opts.BatchTokens}
	s.batch = C.llama_batch_init(C.int32_t(s.cap), 0, C.int32_t(e.opts.Sequences))
	defer C.llama_batch_free(s.batch)
	s.smp = newSampler(e)
	defer s.smp.free()
	for id := e.opts.Sequences - 1; id >= 0; id-- {
		s.freeIDs = append(s.freeIDs, int32(id))
	}
	for {
		if len(s.probes) > 0 && len(s.active) == 0 {
			s.runProbe(s.probes[0])
			s.probes = s.probes[1:]
			continue
		}
		if len(s.pending) == 0 && len(s.active) == 0 {
			select {
			case req := <-e.work:
				s.accept(req)
			case <-e.quit:
				return
			}
		}
		// Take in what has arrived meanwhile.
	drain:
		for {
			select {
			case req := <-e.work:
				s.accept(req)
			case <-e.quit:
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
	if req.probe != nil {
		s.probes = append(s.probes, req)
		return
	}
	s.pending = append(s.pending, req.groups...)
}

// runProbe decodes one full batch on an idle engine and times it.
func (s *scheduler) runProbe(req *request) {
	s.batch.n_tokens = 0
	id := s.freeIDs[len(s.freeIDs)-1]
	for i, tok := range req.probe {
		s.add(tok, int32(i), []int32{id}, i == len(req.probe)-1)
	}
	start := time.Now()
	rc := C.llama_decode(s.e.lctx, s.batch)
	req.probeTime = time.Since(start)
	C.llama_memory_seq_rm(s.e.mem, C.llama_seq_id(id), -1, -1)
	if rc != 0 {
		req.fail(fmt.Errorf("llama: llama_decode failed (code %d) on the probe batch", int(rc)))
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
	for len(s.pending) > 0 && !s.pending[0].req.serial {
		g := s.pending[0]
		if g.prefix == nil {
			g.prefix = sharedPrefix(g.prompts)
		}
		maxNew := g.req.maxNew
		if len(g.prompts) > s.e.opts.Sequences || g.need(maxNew) > s.e.opts.Cells {
			// Too large for an empty engine: split it in two.
			if len(g.prompts) == 1 {
				// Cannot happen: submit refuses such prompts.
				s.pending = s.pending[1:]
				g.req.fail(fmt.Errorf("llama: a prompt does not fit the KV cache"))
				continue
			}
			half := len(g.prompts) / 2
			a := &group{req: g.req, index: g.index, prompts: g.prompts[:half]}
			b := &group{req: g.req, index: g.index, prompts: g.prompts[half:]}
			g.req.pending++
			s.pending = append([]*group{a, b}, s.pending[1:]...)
			continue
		}
		need := g.need(maxNew)
		if len(g.prompts) > len(s.freeIDs) || s.cells+need > s.e.opts.Cells {
			return
		}
		s.pending = s.pending[1:]
		g.cells = need
		s.cells += need
		for _, p := range g.prompts {
			id := s.freeIDs[len(s.freeIDs)-1]
			s.freeIDs = s.freeIDs[:len(s.freeIDs)-1]
			seq := &sequence{g: g, p: p, id: id, tail: p.tokens[len(g.prefix):], pos: int32(len(g.prefix)), row: -1}
			s.e.startSequence(seq)
			g.seqs = append(g.seqs, seq)
		}
		g.live = len(g.seqs)
		s.active = append(s.active, g)
		s.e.addStats(func(st *Stats) {
			for _, p := range g.prompts {
				st.PromptTokens += len(p.tokens)
			}
			st.SharedTokens += len(g.prefix) * (len(g.prompts) - 1)
		})
	}
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

// add puts one token into the batch.
func (s *scheduler) add(tok int32, pos int32, ids []int32, logits bool) int32 {
	b := &s.batch
	i := int(b.n_tokens)
	unsafe.Slice(b.token, s.cap)[i] = C.llama_token(tok)
	unsafe.Slice(b.pos, s.cap)[i] = C.llama_pos(pos)
	unsafe.Slice(b.n_seq_id, s.cap)[i] = C.int32_t(len(ids))
	seqIDs := unsafe.Slice(unsafe.Slice(b.seq_id, s.cap)[i], s.e.opts.Sequences)
	for k, id := range ids {
		seqIDs[k] = C.llama_seq_id(id)
	}
	l := C.int8_t(0)
	if logits {
		l = 1
	}
	unsafe.Slice(b.logits, s.cap)[i] = l
	b.n_tokens++
	return int32(i)
}

// step fills one batch, decodes it, and samples the sequences that have
// logits in it. Generated tokens go first, so that answers in progress are
// never starved by prefill; prefill fills the rest.
func (s *scheduler) step() {
	s.batch.n_tokens = 0
	var rows []*sequence
	for _, g := range s.active {
		for _, q := range g.seqs {
			q.row = -1
			if !q.finished && q.fed && int(s.batch.n_tokens) < s.cap {
				q.row = s.add(q.next, q.pos, []int32{q.id}, true)
				rows = append(rows, q)
			}
		}
	}
	for _, g := range s.active {
		{
			room := s.cap - int(s.batch.n_tokens)
			if room == 0 {
				break
			}
			if g.prefixDone < len(g.prefix) {
				ids := make([]int32, len(g.seqs))
				for k, q := range g.seqs {
					ids[k] = q.id
				}
				n := min(room, len(g.prefix)-g.prefixDone)
				for i := 0; i < n; i++ {
					s.add(g.prefix[g.prefixDone+i], int32(g.prefixDone+i), ids, false)
				}
				g.prefixDone += n
				if g.prefixDone < len(g.prefix) {
					continue
				}
			}
			for _, q := range g.seqs {
				room := s.cap - int(s.batch.n_tokens)
				if room == 0 || q.tailDone == len(q.tail) {
					continue
				}
				n := min(room, len(q.tail)-q.tailDone)
				for i := 0; i < n; i++ {
					last := q.tailDone+i == len(q.tail)-1
					r := s.add(q.tail[q.tailDone+i], q.pos, []int32{q.id}, last)
					q.pos++
					if last {
						q.row = r
						rows = append(rows, q)
					}
				}
				q.tailDone += n
			}
		}
	}
	if s.batch.n_tokens == 0 {
		return
	}
	start := time.Now()
	rc := C.llama_decode(s.e.lctx, s.batch)
	took := time.Since(start)
	s.e.addStats(func(st *Stats) {
		st.DecodeCalls++
		st.DecodeTokens += int(s.batch.n_tokens)
		st.DecodeTime += took
	})
	if rc != 0 {
		err := fmt.Errorf("llama: llama_decode failed (code %d) on a batch of %d tokens: %s", int(rc), int(s.batch.n_tokens), lastLlamaError())
		for _, g := range s.active {
			s.release(g)
			g.req.fail(err)
		}
		s.active = nil
		return
	}
	for _, q := range rows {
		if q.fed {
			q.pos++ // the fed token is now in the cache
		}
		s.sampleNext(q)
	}
	s.finishGroups()
}

// sampleNext chooses a sequence's next token from its logits row.
func (s *scheduler) sampleNext(q *sequence) {
	tok := s.smp.greedy(C.llama_get_logits_ith(s.e.lctx, C.int32_t(q.row)), q.grammar, s.e.pieces, q.quotes)
	q.fed = false
	if tok < 0 || C.llama_vocab_is_eog(s.e.voc.v, C.llama_token(tok)) {
		s.finish(q)
		return
	}
	q.nGen++
	piece := s.e.pieces[tok]
	q.out = append(q.out, piece...)
	if q.grammar != nil {
		C.llama_sampler_accept(q.grammar, C.llama_token(tok))
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
	s.e.addStats(func(st *Stats) { st.GeneratedTokens += q.nGen })
	s.freeSeq(q)
}

func (s *scheduler) freeSeq(q *sequence) {
	if q.id < 0 {
		return
	}
	C.llama_memory_seq_rm(s.e.mem, C.llama_seq_id(q.id), -1, -1)
	s.freeIDs = append(s.freeIDs, q.id)
	q.id = -1
	if q.grammar != nil {
		C.llama_sampler_free(q.grammar)
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
		if g.req.ctx.Err() != nil {
			g.req.fail(g.req.ctx.Err())
			return
		}
		one := &group{req: g.req, index: g.index, prompts: []prompt{p}, prefix: []int32{}, serialPart: true}
		one.cells = one.need(g.req.maxNew)
		s.cells += one.cells
		id := s.freeIDs[len(s.freeIDs)-1]
		s.freeIDs = s.freeIDs[:len(s.freeIDs)-1]
		q := &sequence{g: one, p: p, id: id, tail: p.tokens, row: -1}
		s.e.startSequence(q)
		one.seqs = []*sequence{q}
		one.live = 1
		s.active = []*group{one}
		s.e.addStats(func(st *Stats) { st.PromptTokens += len(p.tokens) })
		for len(s.active) > 0 && g.req.err == nil {
			if err := g.req.ctx.Err(); err != nil {
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

// startSequence gives a new sequence its grammar and, in the
// substring-constrained mode, its passage.
func (e *Engine) startSequence(q *sequence) {
	if e.grammar != nil {
		q.grammar = C.llama_sampler_clone(e.grammar)
	}
	if e.opts.SubstringAnswers {
		q.quotes = &quoteTracker{passage: q.p.passage}
	}
}

func (e *Engine) addStats(f func(*Stats)) {
	e.statsMu.Lock()
	f(&e.stats)
	e.statsMu.Unlock()
}
