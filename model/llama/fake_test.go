package llama

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/nerstream/nerstream/model"
)

// The test doubles of the scheduler's tests: a fake vocabulary, a fake
// decoder that keeps a KV cache of token ids and computes logits from each
// sequence's history, and a fake grammar for JSON arrays of strings.

// The fake vocabulary.
const (
	fkEOS   int32 = 0 // end of sequence: the only EOG token
	fkBOS   int32 = 1
	fkAsk   int32 = 2 // " ASSISTANT:": the last token of every prompt
	fkOpen  int32 = 3 // " ["
	fkClose int32 = 4 // "]"
	fkQuote int32 = 5 // "\""
	fkComma int32 = 6 // ", "
	fkWord0 int32 = 7 // fkWord0 .. fakeVocab-1 are words: "w7", "w8", …
	// fakeVocab is the number of tokens.
	fakeVocab = 64
)

// fakePieces returns the text of every fake token and which end a
// generation.
func fakePieces() ([][]byte, []bool) {
	pieces := make([][]byte, fakeVocab)
	eog := make([]bool, fakeVocab)
	for t := range pieces {
		pieces[t] = []byte(fmt.Sprintf("w%d", t))
	}
	pieces[fkEOS], pieces[fkBOS] = nil, nil // control tokens have no text
	pieces[fkAsk] = []byte(" ASSISTANT:")
	pieces[fkOpen] = []byte(" [")
	pieces[fkClose] = []byte("]")
	pieces[fkQuote] = []byte(`"`)
	pieces[fkComma] = []byte(", ")
	eog[fkEOS] = true
	return pieces, eog
}

// fakePrompt returns BOS, the tokens, the type token and fkAsk. The type
// token chooses the shape of the fake model's answer (see fakeNext).
func fakePrompt(typ int32, toks ...int32) []int32 {
	out := append([]int32{fkBOS}, toks...)
	return append(out, typ, fkAsk)
}

// The answer shapes of the fake model, chosen by the type token mod 4.
const (
	shapeList  = 0 // ` ["w"]` and w for ever: stops when the array closes
	shapeEOS   = 1 // ` ["w`, then EOS
	shapeLong  = 2 // ` ["` and w for ever: stops at max new tokens
	shapeOther = 3 // `www`, then EOS: not a bare list, so it waits for EOS
)

// Type tokens of each shape.
const (
	typList  = fkWord0 + 1 // 8
	typEOS   = fkWord0 + 2 // 9
	typLong  = fkWord0 + 3 // 10
	typOther = fkWord0 + 0 // 7
)

// fakeWord is the word the fake model names for a prompt: a hash of every
// token and its position, so that a lost, extra or misplaced prompt token
// changes the answer.
func fakeWord(prompt []int32) int32 {
	var sum int64
	for i, t := range prompt {
		sum += int64(i+1) * int64(t)
	}
	return fkWord0 + int32(sum%int64(fakeVocab-fkWord0))
}

func fakeShape(prompt []int32) int32 { return prompt[len(prompt)-2] % 4 }

// fakeScript returns the answer tokens the fake model prefers for a prompt,
// and the token it repeats after them (-1: none, EOS follows).
func fakeScript(prompt []int32) (script []int32, repeat int32) {
	w := fakeWord(prompt)
	switch fakeShape(prompt) {
	case shapeList:
		return []int32{fkOpen, fkQuote, w, fkQuote, fkClose}, w
	case shapeEOS:
		return []int32{fkOpen, fkQuote, w, fkEOS}, -1
	case shapeLong:
		return []int32{fkOpen, fkQuote}, w
	}
	return []int32{w, w, w, fkEOS}, -1
}

// fakeNext is the token the fake model prefers after history: the prompt
// is history up to its first fkAsk.
func fakeNext(history []int32) int32 {
	m := slices.Index(history, fkAsk)
	if m < 1 {
		return fkWord0
	}
	script, repeat := fakeScript(history[:m+1])
	if gen := len(history) - m - 1; gen < len(script) {
		return script[gen]
	}
	if repeat >= 0 {
		return repeat
	}
	return fkEOS
}

// fakeLogits are the fake model's logits after history: a deterministic
// noise in [0, 1) from the history, and 10 more for fakeNext's token.
func fakeLogits(history []int32) []float32 {
	h := fnv.New64a()
	for _, t := range history {
		h.Write([]byte{byte(t), byte(t >> 8)})
	}
	seed := h.Sum64()
	l := make([]float32, fakeVocab)
	for t := range l {
		x := (seed ^ uint64(t)*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
		l[t] = float32(x>>40%1000) / 1000
	}
	l[fakeNext(history)] += 10
	return l
}

// wantAnswer is what greedy decoding without a grammar answers to prompt,
// written out for each shape.
func wantAnswer(prompt []int32, maxNew int) model.Completion {
	w := fakeWord(prompt)
	var toks []int32
	switch fakeShape(prompt) {
	case shapeList: // the array closes
		toks = []int32{fkOpen, fkQuote, w, fkQuote, fkClose}
	case shapeEOS:
		toks = []int32{fkOpen, fkQuote, w}
	case shapeLong: // max new tokens
		toks = []int32{fkOpen, fkQuote}
		for len(toks) < maxNew {
			toks = append(toks, w)
		}
	case shapeOther:
		toks = []int32{w, w, w}
	}
	toks = toks[:min(len(toks), maxNew)]
	pieces, _ := fakePieces()
	var text []byte
	lps := []model.TokenLogProb{}
	history := slices.Clone(prompt)
	for _, t := range toks {
		text = append(text, pieces[t]...)
		lps = append(lps, model.TokenLogProb{Bytes: len(pieces[t]), LogProb: refLogSoftmax(fakeLogits(history), t)})
		history = append(history, t)
	}
	return model.Completion{Text: string(text), GeneratedTokens: len(toks), PromptTokens: len(prompt), Tokens: lps}
}

// refLogSoftmax is the log-softmax of token tok of logits l, computed
// plainly in float64: the reference that scores are checked against.
func refLogSoftmax(l []float32, tok int32) float64 {
	m := math.Inf(-1)
	for _, v := range l {
		m = max(m, float64(v))
	}
	sum := 0.0
	for _, v := range l {
		sum += math.Exp(float64(v) - m)
	}
	return float64(l[tok]) - m - math.Log(sum)
}

// checkLogProbs compares a completion's token log-probabilities with the
// reference's.
func checkLogProbs(got, want []model.TokenLogProb) error {
	if len(got) != len(want) || (got == nil) != (want == nil) {
		return fmt.Errorf("%d token log-probs (nil %v), want %d", len(got), got == nil, len(want))
	}
	for i := range want {
		if got[i].Bytes != want[i].Bytes || math.Abs(got[i].LogProb-want[i].LogProb) > 1e-6 {
			return fmt.Errorf("token %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	return nil
}

// fakeEntry is one token of a batch the fake decoder took.
type fakeEntry struct {
	tok, pos  int32
	seqs      []int32
	logits    bool
	generated bool // after its sequence's prompt
}

// fakeCell is one KV cell: a token at a position, in one or more
// sequences.
type fakeCell struct {
	tok, pos int32
	seqs     int // sequences that hold it
}

var (
	errFakeFull   = errors.New("fake: no free KV cell")
	errFakeDecode = errors.New("fake: decode failed")
)

// fakeDecoder is the scheduler's decoder in tests. It checks each batch as
// llama.cpp would (sizes, ids, positions that continue each sequence, free
// cells), keeps every sequence's tokens, and computes logits from them
// with fakeLogits. It records every batch it took.
type fakeDecoder struct {
	capacity, cells, sequences int

	hist  [][]*fakeCell // by sequence id, by position
	used  int           // cells in use: a token shared by sequences takes one
	rows  map[int32][]float32
	calls int
	// hook, when set, runs first in each decode; an error it returns
	// fails the decode.
	hook func(call int, b *batch) error
	// after, when set, runs at the end of each decode that succeeded.
	after func(call int)

	batches [][]fakeEntry
	maxUsed int // the most cells in use after a decode
	maxSeqs int // the most sequences holding cells after a decode, the reserved one aside
	// reserved is the scheduler's resident sequence id (-1 for none),
	// which maxSeqs leaves out; copies counts copySequence calls, and
	// misuse what llama.cpp would refuse or abort on.
	reserved int32
	copies   int
	misuse   []string
}

// newFakeDecoder returns a fake with ids for sequences and, with
// resident, one more reserved for the resident prefix.
func newFakeDecoder(sequences, cells, batchTokens int, resident bool) *fakeDecoder {
	f := &fakeDecoder{capacity: batchTokens, cells: cells, sequences: sequences, reserved: -1}
	if resident {
		f.reserved = int32(sequences)
		f.sequences++
	}
	f.hist = make([][]*fakeCell, f.sequences)
	return f
}

func (f *fakeDecoder) decode(b *batch) error {
	f.calls++
	if f.hook != nil {
		if err := f.hook(f.calls, b); err != nil {
			return err
		}
	}
	n := b.len()
	if n == 0 || n > f.capacity {
		return fmt.Errorf("fake: a batch of %d tokens, capacity %d", n, f.capacity)
	}
	// Check everything before changing anything, as llama.cpp does.
	length := make(map[int32]int)
	for i := range n {
		if b.token[i] < 0 || b.token[i] >= fakeVocab {
			return fmt.Errorf("fake: token %d", b.token[i])
		}
		if len(b.seqs[i]) == 0 || b.logits[i] && len(b.seqs[i]) != 1 {
			return fmt.Errorf("fake: row %d has sequences %v and logits %v", i, b.seqs[i], b.logits[i])
		}
		for k, id := range b.seqs[i] {
			if id < 0 || int(id) >= f.sequences || slices.Contains(b.seqs[i][:k], id) {
				return fmt.Errorf("fake: row %d has sequences %v", i, b.seqs[i])
			}
			l, ok := length[id]
			if !ok {
				l = len(f.hist[id])
			}
			if int(b.pos[i]) != l {
				return fmt.Errorf("fake: row %d puts sequence %d at position %d, after %d tokens", i, id, b.pos[i], l)
			}
			length[id] = l + 1
		}
	}
	if f.used+n > f.cells {
		return errFakeFull
	}
	f.rows = map[int32][]float32{}
	var rec []fakeEntry
	for i := range n {
		c := &fakeCell{tok: b.token[i], pos: b.pos[i], seqs: len(b.seqs[i])}
		first := b.seqs[i][0]
		generated := slices.ContainsFunc(f.hist[first], func(c *fakeCell) bool { return c.tok == fkAsk })
		for _, id := range b.seqs[i] {
			f.hist[id] = append(f.hist[id], c)
		}
		f.used++
		if b.logits[i] {
			f.rows[int32(i)] = fakeLogits(f.tokens(first))
		}
		rec = append(rec, fakeEntry{tok: b.token[i], pos: b.pos[i], seqs: slices.Clone(b.seqs[i]), logits: b.logits[i], generated: generated})
	}
	f.batches = append(f.batches, rec)
	f.maxUsed = max(f.maxUsed, f.used)
	seqs := 0
	for id, h := range f.hist {
		if len(h) > 0 && int32(id) != f.reserved {
			seqs++
		}
	}
	f.maxSeqs = max(f.maxSeqs, seqs)
	if f.after != nil {
		f.after(f.calls)
	}
	return nil
}

// tokens returns the tokens sequence id holds.
func (f *fakeDecoder) tokens(id int32) []int32 {
	out := make([]int32, len(f.hist[id]))
	for i, c := range f.hist[id] {
		out[i] = c.tok
	}
	return out
}

func (f *fakeDecoder) logits(i int32) []float32 { return f.rows[i] }

func (f *fakeDecoder) removeSequence(id int32) {
	for _, c := range f.hist[id] {
		c.seqs--
		if c.seqs == 0 {
			f.used--
		}
	}
	f.hist[id] = nil
}

// trimSequence takes id off its cells at positions from p0 on.
func (f *fakeDecoder) trimSequence(id, p0 int32) {
	if id < 0 || int(id) >= f.sequences || p0 < 0 || int(p0) > len(f.hist[id]) {
		f.misuse = append(f.misuse, fmt.Sprintf("trimming sequence %d (%d tokens) from %d", id, len(f.hist[id]), p0))
		return
	}
	for _, c := range f.hist[id][p0:] {
		c.seqs--
		if c.seqs == 0 {
			f.used--
		}
	}
	f.hist[id] = f.hist[id][:p0]
}

// copySequence adds dst to src's cells at positions p0 ≤ pos < p1, as
// llama.cpp does in a unified cache: no cell is taken. The scheduler only
// attaches an empty sequence to a prefix, so anything else is misuse.
func (f *fakeDecoder) copySequence(src, dst, p0, p1 int32) error {
	f.copies++
	if src < 0 || int(src) >= f.sequences || dst < 0 || int(dst) >= f.sequences || src == dst {
		return fmt.Errorf("fake: copying sequence %d to %d", src, dst)
	}
	if p0 != 0 || p1 < 1 || int(p1) > len(f.hist[src]) || len(f.hist[dst]) != 0 {
		f.misuse = append(f.misuse, fmt.Sprintf("copying positions %d..%d of sequence %d (%d tokens) to %d (%d tokens)", p0, p1, src, len(f.hist[src]), dst, len(f.hist[dst])))
		return nil
	}
	for _, c := range f.hist[src][p0:p1] {
		c.seqs++
		f.hist[dst] = append(f.hist[dst], c)
	}
	return nil
}

// grammarCounts counts what fake grammars did, a root and its clones
// together.
type grammarCounts struct {
	clones, frees, fullApplies int
}

// fakeGrammar holds answers to a JSON array of strings, as the answer
// grammar does, byte by byte over the fake pieces. EOS is allowed only
// once the array is closed, and a token without text never.
type fakeGrammar struct {
	state  int
	pieces [][]byte
	eog    []bool
	n      *grammarCounts
}

// States of fakeGrammar.
const (
	fgStart   = iota // before "["
	fgOpen           // after "[": a string or "]"
	fgString         // inside a string
	fgEscape         // after a backslash in a string
	fgAfter          // after a string: "," or "]"
	fgComma          // after ",": a string
	fgDone           // after "]"
	fgRefused = -1
)

func newFakeGrammar() *fakeGrammar {
	pieces, eog := fakePieces()
	return &fakeGrammar{pieces: pieces, eog: eog, n: &grammarCounts{}}
}

func fakeGrammarStep(state int, c byte) int {
	space := c == ' ' || c == '\n' || c == '\t'
	switch state {
	case fgStart:
		switch {
		case space:
			return fgStart
		case c == '[':
			return fgOpen
		}
	case fgOpen, fgComma:
		switch {
		case space:
			return state
		case c == '"':
			return fgString
		case c == ']' && state == fgOpen:
			return fgDone
		}
	case fgString:
		switch c {
		case '"':
			return fgAfter
		case '\\':
			return fgEscape
		}
		return fgString
	case fgEscape:
		return fgString
	case fgAfter:
		switch {
		case space:
			return fgAfter
		case c == ',':
			return fgComma
		case c == ']':
			return fgDone
		}
	}
	return fgRefused
}

func (g *fakeGrammar) after(tok int32) int {
	if g.eog[tok] {
		if g.state == fgDone {
			return fgDone
		}
		return fgRefused
	}
	p := g.pieces[tok]
	if len(p) == 0 {
		return fgRefused
	}
	s := g.state
	for _, c := range p {
		if s = fakeGrammarStep(s, c); s == fgRefused {
			break
		}
	}
	return s
}

func (g *fakeGrammar) clone() (grammar, error) {
	g.n.clones++
	c := *g
	return &c, nil
}

func (g *fakeGrammar) allows(tok int32) bool { return g.after(tok) != fgRefused }

func (g *fakeGrammar) allowed(dst []int32) []int32 {
	g.n.fullApplies++
	for t := range int32(len(g.pieces)) {
		if g.allows(t) {
			dst = append(dst, t)
		}
	}
	return dst
}

func (g *fakeGrammar) accept(tok int32) {
	if s := g.after(tok); s != fgRefused {
		g.state = s
	}
}

func (g *fakeGrammar) free() { g.n.frees++ }

// fakeEngine is a scheduler running over a fakeDecoder.
type fakeEngine struct {
	s        *scheduler
	f        *fakeDecoder
	g        *fakeGrammar // nil without grammar
	stats    *counters
	stopOnce sync.Once
}

type fakeOptions struct {
	sequences, cells, batchTokens int
	grammar                       bool
	// noResident turns the resident prefix off, as
	// Options.NoResidentPrefix does.
	noResident bool
}

// startFake starts a scheduler over a fake decoder which, like Load, has
// one more sequence id for the resident prefix, on unless noResident.
func startFake(t *testing.T, o fakeOptions) *fakeEngine {
	t.Helper()
	f := newFakeDecoder(o.sequences, o.cells, o.batchTokens, true)
	pieces, eog := fakePieces()
	cfg := schedConfig{sequences: o.sequences, cells: o.cells, batchTokens: o.batchTokens, pieces: pieces, eog: eog, resident: f.reserved}
	e := &fakeEngine{f: f, stats: &counters{}}
	if o.grammar {
		e.g = newFakeGrammar()
		cfg.grammar = e.g
	}
	e.s = newScheduler(f, cfg, e.stats)
	e.s.residentOn.Store(!o.noResident)
	e.s.start()
	t.Cleanup(e.stop)
	return e
}

// stop stops the scheduler; the test may then read its state and the
// fake's.
func (e *fakeEngine) stop() { e.stopOnce.Do(e.s.stop) }

// generate asks for answers to groups of tokenized prompts, as
// Engine.Generate does.
func (e *fakeEngine) generate(ctx context.Context, groups [][][]int32, maxNew int, serial bool) ([][]model.Completion, error) {
	sizes := make([]int, len(groups))
	for gi, g := range groups {
		sizes[gi] = len(g)
	}
	req := newRequest(ctx, maxNew, serial, sizes)
	for gi, g := range groups {
		var ps []prompt
		for pi, toks := range g {
			req.out[gi][pi].PromptTokens = len(toks)
			ps = append(ps, prompt{index: pi, tokens: toks})
		}
		req.addGroup(gi, ps)
	}
	if err := e.s.do(ctx, req); err != nil {
		return nil, err
	}
	return req.out, nil
}

// checkIdle stops the engine and checks that it let go of everything:
// sequence ids, reserved cells, the fake's KV cells and grammars. The
// resident prefix goes when the scheduler stops, as with Engine.Close.
func (e *fakeEngine) checkIdle(t *testing.T) {
	t.Helper()
	e.stop()
	if len(e.s.freeIDs) != e.s.cfg.sequences {
		t.Errorf("%d of %d sequence ids free", len(e.s.freeIDs), e.s.cfg.sequences)
	}
	if slices.Contains(e.s.freeIDs, e.f.reserved) {
		t.Errorf("the resident prefix's id %d is among the free ones", e.f.reserved)
	}
	if e.s.res.tokens != nil || e.s.res.users != 0 {
		t.Errorf("the resident prefix outlived the scheduler: %d tokens, %d users", len(e.s.res.tokens), e.s.res.users)
	}
	for _, m := range e.f.misuse {
		t.Error(m)
	}
	if e.s.cells != 0 {
		t.Errorf("%d KV cells still reserved", e.s.cells)
	}
	if e.f.used != 0 {
		t.Errorf("%d KV cells still in use", e.f.used)
	}
	if e.g != nil && e.g.n.clones != e.g.n.frees {
		t.Errorf("%d grammars cloned, %d freed", e.g.n.clones, e.g.n.frees)
	}
}

// checkAnswers compares answers with wantAnswer's.
func checkAnswers(t *testing.T, groups [][][]int32, got [][]model.Completion, maxNew int) {
	t.Helper()
	for gi, g := range groups {
		for pi, p := range g {
			want := wantAnswer(p, maxNew)
			if c := got[gi][pi]; c.Text != want.Text || c.GeneratedTokens != want.GeneratedTokens || c.Err != nil {
				t.Errorf("group %d prompt %d: %q (%d tokens, %v), want %q (%d tokens)", gi, pi, c.Text, c.GeneratedTokens, c.Err, want.Text, want.GeneratedTokens)
			} else if err := checkLogProbs(c.Tokens, want.Tokens); err != nil {
				t.Errorf("group %d prompt %d: %v", gi, pi, err)
			}
		}
	}
}

// fakeGroups returns n groups of prompts that share a passage, with k
// prompts each (k cycling from 1 to types), of every answer shape.
func fakeGroups(n, types int) [][][]int32 {
	var groups [][][]int32
	for d := range n {
		passage := make([]int32, 3+(d*5)%17)
		for i := range passage {
			passage[i] = fkWord0 + int32((d*7+i*3)%(fakeVocab-int(fkWord0)))
		}
		var g [][]int32
		for k := range 1 + d%types {
			g = append(g, fakePrompt(fkWord0+int32(k+d), passage...))
		}
		groups = append(groups, g)
	}
	return groups
}
