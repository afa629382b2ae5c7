package llama

import (
	"cmp"
	"math"
	"slices"
)

// grammar is the answer grammar's state for one sequence: cGrammar in
// production, fakeGrammar in tests. Whether a token is allowed does not
// depend on logits.
type grammar interface {
	// clone returns a copy in the same state, for a new sequence.
	clone() (grammar, error)
	// allows reports whether tok may come next.
	allows(tok int32) bool
	// allowed appends to dst, in id order, every token that may come next.
	allowed(dst []int32) []int32
	// accept moves the grammar past tok.
	accept(tok int32)
	// free releases it.
	free()
}

// sampler picks greedy tokens, under a grammar when there is one and, in
// the substring-constrained mode, under the passage.
type sampler struct {
	pieces [][]byte // the text of every token
	cand   []int32  // scratch
}

// greedy returns the most likely token of logits l that the grammar g
// allows (and, when q is set, that keeps the answer's strings substrings of
// the passage), or -1 when there are no logits or nothing is allowed. The
// grammar is asked about the arg-max alone first: most steps, it allows it,
// and applying it to the whole vocabulary costs far more.
func (s *sampler) greedy(l []float32, g grammar, q *quoteTracker) int32 {
	if len(l) == 0 {
		return -1
	}
	best := argmax(l)
	if q != nil && !q.accepts(s.pieces[best]) {
		return s.constrained(l, g, q)
	}
	if g == nil || g.allows(best) {
		return best
	}
	if q != nil {
		return s.constrained(l, g, q)
	}
	s.cand = g.allowed(s.cand[:0])
	best, bestLogit := int32(-1), float32(math.Inf(-1))
	for _, t := range s.cand {
		if l[t] > bestLogit {
			best, bestLogit = t, l[t]
		}
	}
	return best
}

// constrained returns the most likely token that both the grammar and the
// passage allow, trying candidates from the most likely down (the lower id
// first on ties).
func (s *sampler) constrained(l []float32, g grammar, q *quoteTracker) int32 {
	cand := s.cand[:0]
	if g != nil {
		cand = g.allowed(cand)
	} else {
		for t := range l {
			cand = append(cand, int32(t))
		}
	}
	cand = slices.DeleteFunc(cand, func(t int32) bool { return math.IsInf(float64(l[t]), -1) })
	slices.SortStableFunc(cand, func(a, b int32) int { return cmp.Compare(l[b], l[a]) })
	s.cand = cand
	for _, t := range cand {
		if q.accepts(s.pieces[t]) {
			return t
		}
	}
	return -1
}

// argmax returns the index of the largest value, the first on ties.
func argmax(l []float32) int32 {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return int32(best)
}

// arrayCloser watches generated text and reports when a JSON array that
// the answer opened with "[" closes, so that decoding can stop there
// without waiting for EOS.
type arrayCloser struct {
	started, inString, escape, closed, other bool
	depth                                    int
}

// feed takes the next piece of text and reports whether the array is now
// closed.
func (a *arrayCloser) feed(piece []byte) bool {
	for _, c := range piece {
		if a.closed || a.other {
			break
		}
		switch {
		case !a.started:
			switch c {
			case ' ', '\t', '\n', '\r':
			case '[':
				a.started, a.depth = true, 1
			default:
				a.other = true // not a bare list: wait for EOS
			}
		case a.inString:
			switch {
			case a.escape:
				a.escape = false
			case c == '\\':
				a.escape = true
			case c == '"':
				a.inString = false
			}
		case c == '"':
			a.inString = true
		case c == '[':
			a.depth++
		case c == ']':
			a.depth--
			a.closed = a.depth == 0
		}
	}
	return a.closed
}
