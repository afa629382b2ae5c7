package llama

/*
#include <stdlib.h>
#include "llama_decl.h"
*/
import "C"

import (
	"errors"
	"math"
	"sort"
	"unsafe"

	"github.com/nerstream/nerstream/model"
)

func newGrammar(v *C.struct_llama_vocab) (*C.struct_llama_sampler, error) {
	src := C.CString(model.AnswerGrammar)
	defer C.free(unsafe.Pointer(src))
	root := C.CString("root")
	defer C.free(unsafe.Pointer(root))
	g := C.llama_sampler_init_grammar(v, src, root)
	if g == nil {
		return nil, errors.New("llama: the answer grammar did not parse: " + lastLlamaError())
	}
	return g, nil
}

// sampler picks greedy tokens, under a grammar when there is one. Its
// candidate arrays live in C memory, as llama.cpp's samplers take them.
type sampler struct {
	n    int
	full []C.llama_token_data // C memory, n entries
	one  []C.llama_token_data // C memory, 1 entry
	arr  *C.llama_token_data_array
	mem  []unsafe.Pointer
}

func newSampler(e *Engine) *sampler {
	s := &sampler{n: e.voc.n}
	alloc := func(size uintptr) unsafe.Pointer {
		p := C.calloc(1, C.size_t(size))
		s.mem = append(s.mem, p)
		return p
	}
	var td C.llama_token_data
	s.full = unsafe.Slice((*C.llama_token_data)(alloc(unsafe.Sizeof(td)*uintptr(s.n))), s.n)
	s.one = unsafe.Slice((*C.llama_token_data)(alloc(unsafe.Sizeof(td))), 1)
	s.arr = (*C.llama_token_data_array)(alloc(unsafe.Sizeof(C.llama_token_data_array{})))
	return s
}

func (s *sampler) free() {
	for _, p := range s.mem {
		C.free(p)
	}
	s.mem = nil
}

// greedy returns the most likely token that the grammar allows (and, when
// q is set, that keeps the answer's strings substrings of the passage), or
// -1 when there are no logits or nothing is allowed.
func (s *sampler) greedy(logits *C.float, g *C.struct_llama_sampler, pieces [][]byte, q *quoteTracker) int32 {
	if logits == nil {
		return -1
	}
	l := unsafe.Slice((*float32)(unsafe.Pointer(logits)), s.n)
	best := argmax(l)
	if q != nil && !q.accepts(pieces[best]) {
		return s.constrained(l, g, pieces, q)
	}
	if g == nil {
		return best
	}
	// The arg-max alone first: most steps, the grammar allows it.
	s.one[0] = C.llama_token_data{id: C.llama_token(best), logit: C.float(l[best])}
	*s.arr = C.llama_token_data_array{data: &s.one[0], size: 1, selected: -1}
	C.llama_sampler_apply(g, s.arr)
	if !math.IsInf(float64(s.one[0].logit), -1) {
		return best
	}
	if q != nil {
		return s.constrained(l, g, pieces, q)
	}
	data := s.applyAll(l, g)
	best, bestLogit := int32(-1), float32(math.Inf(-1))
	for _, d := range data {
		if lg := float32(d.logit); lg > bestLogit {
			best, bestLogit = int32(d.id), lg
		}
	}
	return best
}

// applyAll runs the grammar over the whole vocabulary; refused tokens get a
// logit of -Inf.
func (s *sampler) applyAll(l []float32, g *C.struct_llama_sampler) []C.llama_token_data {
	for i := range s.full {
		s.full[i] = C.llama_token_data{id: C.llama_token(i), logit: C.float(l[i])}
	}
	if g == nil {
		return s.full
	}
	*s.arr = C.llama_token_data_array{data: &s.full[0], size: C.size_t(s.n), selected: -1}
	C.llama_sampler_apply(g, s.arr)
	return unsafe.Slice(s.arr.data, int(s.arr.size))
}

// constrained returns the most likely token that both the grammar and the
// passage allow, trying candidates from the most likely down.
func (s *sampler) constrained(l []float32, g *C.struct_llama_sampler, pieces [][]byte, q *quoteTracker) int32 {
	data := s.applyAll(l, g)
	cand := make([]int32, 0, 64)
	for _, d := range data {
		if !math.IsInf(float64(d.logit), -1) {
			cand = append(cand, int32(d.id))
		}
	}
	sort.SliceStable(cand, func(i, j int) bool { return l[cand[i]] > l[cand[j]] })
	for _, t := range cand {
		if q.accepts(pieces[t]) {
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
