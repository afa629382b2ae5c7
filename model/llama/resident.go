package llama

import (
	"fmt"
	"slices"
)

// minResident is the shortest resident prefix worth keeping: below it the
// saving (a few tokens a document) does not pay for the cells it holds
// and the decode that fills it.
const minResident = 4

// residentPrefix is the prompt prefix that every document shares (BOS and
// UniNER's preamble, as the tokenizer writes them), kept in the KV cache
// under a reserved sequence id for the engine's life, so that a group
// attaches to its cells (decoder.copySequence) instead of decoding it
// again. See the package doc, Resident prompt prefix.
type residentPrefix struct {
	id     int32   // the reserved sequence id; -1 for none (unsafe, or given up)
	tokens []int32 // in the cache under id, one cell each; nil for none
	seen   []int32 // the last group's first prompt, to learn from
	// seenFrom is the document seen came from: the parts of a group
	// split for room are one document, not two.
	seenFrom document
	users    int // active groups attached to it
}

// document is a caller's prompt group: its request's number (not the
// request, which the prefix would keep alive) and its index.
type document struct {
	req   uint64
	index int
}

// shared returns how many of the resident tokens every prompt of a group
// can take over: their common prefix, leaving each prompt at least one
// token of its own (whose logits start its answer).
func (r *residentPrefix) shared(ps []prompt) int {
	if r.tokens == nil {
		return 0
	}
	n := len(r.tokens)
	for _, p := range ps {
		n = min(n, commonPrefix(r.tokens, p.tokens), len(p.tokens)-1)
	}
	return max(n, 0)
}

// commonPrefix returns the length of the longest common prefix of a and
// b.
func commonPrefix(a, b []int32) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// learnResident learns the resident prefix from the groups that arrive,
// while there is none: the longest common prefix of two consecutive
// groups' prompts, when it has at least minResident tokens, is decoded
// under the reserved id. The tokens are compared, never assumed.
func (s *scheduler) learnResident(g *group) {
	r := &s.res
	if r.id < 0 || r.tokens != nil || g.learned {
		return
	}
	g.learned = true // a group waiting for room comes here again
	doc := document{g.req.number, g.index}
	if r.seen == nil || r.seenFrom == doc {
		r.seen, r.seenFrom = slices.Clone(g.prompts[0].tokens), doc
		return
	}
	n := len(r.seen) - 1
	for _, p := range g.prompts {
		n = min(n, commonPrefix(r.seen, p.tokens), len(p.tokens)-1)
	}
	if n < minResident {
		// Nothing worth sharing with that one: learn from this one.
		r.seen, r.seenFrom = slices.Clone(g.prompts[0].tokens), doc
		return
	}
	if s.cells+n > s.cfg.cells {
		r.seen, r.seenFrom = slices.Clone(g.prompts[0].tokens), doc
		return // no room now: try with the next group
	}
	// Reserved before they are taken.
	r.tokens, r.seen, r.seenFrom = r.seen[:n:n], nil, document{}
	s.cells += n
	if err := s.decodeResident(r.tokens); err != nil {
		// Not worth failing a request for: run without it from now on.
		s.dropResident()
		r.id = -1
	}
}

// shrinkResident cuts the resident prefix to the n tokens a new group
// shares with it, when n is still worth keeping and no active group uses
// more: two first documents that began alike (a log line repeated) taught
// it more than the preamble, and the cells past it would stay taken for
// nothing.
func (s *scheduler) shrinkResident(n int) {
	r := &s.res
	if n < minResident || n >= len(r.tokens) {
		return
	}
	for _, g := range s.active {
		if g.attached > n {
			return
		}
	}
	s.dec.trimSequence(r.id, int32(n))
	s.cells -= len(r.tokens) - n
	r.tokens = r.tokens[:n:n]
}

// decodeResident decodes the resident tokens under the reserved id, in
// batches of at most batchTokens, with no logits.
func (s *scheduler) decodeResident(toks []int32) error {
	ids := []int32{s.res.id}
	for lo := 0; lo < len(toks); lo += s.cfg.batchTokens {
		b := &s.batch
		b.reset()
		for i := lo; i < min(lo+s.cfg.batchTokens, len(toks)); i++ {
			b.add(toks[i], int32(i), ids, false)
		}
		if err := s.decode(b); err != nil {
			return fmt.Errorf("llama: decoding the resident prefix: %w", err)
		}
	}
	return nil
}

// dropResident frees the resident prefix's cells and starts learning
// again. The groups attached to it keep their own hold on the cells: the
// caller drops it only when none is (users == 0), or when it releases
// them all.
func (s *scheduler) dropResident() {
	r := &s.res
	if r.tokens != nil {
		s.dec.removeSequence(r.id)
		s.cells -= len(r.tokens)
		r.tokens = nil
	}
	r.seen, r.seenFrom = nil, document{}
}

// makeRoom drops the resident prefix when work that runs alone (the
// serial baseline, the prefill probe) needs its cells.
func (s *scheduler) makeRoom(cells int) {
	if s.res.users == 0 && s.cells+cells > s.cfg.cells {
		s.dropResident()
	}
}
