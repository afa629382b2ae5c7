package llama

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// The resident prefix's tests run the scheduler against fakeDecoder, whose
// logits depend on every token a sequence holds at its position, so that a
// prefix attached wrongly (a lost, extra or misplaced token) changes the
// answers.

// fakePreamble stands for UniNER's preamble: words that every prompt has
// after BOS.
var fakePreamble = []int32{40, 41, 42, 43, 44, 45}

// preambleGroups returns fakeGroups' documents with the preamble before
// each passage.
func preambleGroups(n, types int) [][][]int32 {
	groups := fakeGroups(n, types)
	for _, g := range groups {
		for i, p := range g {
			g[i] = append(append([]int32{fkBOS}, fakePreamble...), p[1:]...)
		}
	}
	return groups
}

// checkReservations checks, before and after every decode, that the scheduler's
// reserved cells are the resident prefix's and the active groups', each
// counted once, that they cover the cells in use, and that each group
// holds no more cells of its own (besides the resident prefix's) than it
// reserved.
func checkReservations(e *fakeEngine, errs *[]string) {
	check := func(call int) {
		resident := map[*fakeCell]bool{}
		if e.f.reserved >= 0 {
			for _, c := range e.f.hist[e.f.reserved] {
				resident[c] = true
			}
		}
		sum := len(e.s.res.tokens)
		for _, g := range e.s.active {
			sum += g.cells
			own := map[*fakeCell]bool{}
			for _, q := range g.seqs {
				if q.id >= 0 {
					for _, c := range e.f.hist[q.id] {
						if !resident[c] {
							own[c] = true
						}
					}
				}
			}
			if len(own) > g.cells {
				*errs = append(*errs, fmt.Sprintf("decode %d: a group holds %d cells of its own, reserved %d", call, len(own), g.cells))
			}
		}
		if sum != e.s.cells || e.f.used > e.s.cells || e.s.cells > e.f.cells {
			*errs = append(*errs, fmt.Sprintf("decode %d: %d cells reserved, %d in use, resident %d + groups = %d, cache %d",
				call, e.s.cells, e.f.used, len(e.s.res.tokens), sum, e.f.cells))
		}
	}
	e.f.hook = func(call int, b *batch) error {
		check(call)
		return nil
	}
	e.f.after = check
}

// positionZero counts the tokens decoded at position 0: once per prefix
// decoded.
func positionZero(f *fakeDecoder) int {
	n := 0
	for _, b := range f.batches {
		for _, en := range b {
			if en.pos == 0 {
				n++
			}
		}
	}
	return n
}

// TestResidentPrefix: with the resident prefix, the answers are those
// without it, the preamble is decoded once per engine instead of once per
// group, and the cells add up, however tight the engine.
func TestResidentPrefix(t *testing.T) {
	cases := []struct {
		name   string
		o      fakeOptions
		groups [][][]int32
		maxNew int
	}{
		{"many documents", fakeOptions{sequences: 16, cells: 4096, batchTokens: 64}, preambleGroups(24, 5), 16},
		{"batches smaller than the preamble", fakeOptions{sequences: 16, cells: 4096, batchTokens: 4}, preambleGroups(24, 5), 16},
		{"fewer sequences than a group", fakeOptions{sequences: 2, cells: 4096, batchTokens: 64}, preambleGroups(12, 5), 16},
		{"a cache for one group at a time", fakeOptions{sequences: 16, cells: 150, batchTokens: 64}, preambleGroups(12, 5), 16},
		{"a cache smaller than a group", fakeOptions{sequences: 16, cells: 80, batchTokens: 64}, preambleGroups(12, 5), 16},
		{"one new token", fakeOptions{sequences: 16, cells: 4096, batchTokens: 64}, preambleGroups(12, 5), 1},
		{"grammar", fakeOptions{sequences: 8, cells: 400, batchTokens: 16, grammar: true}, preambleGroups(16, 5), 12},
		{"one prompt a group", fakeOptions{sequences: 8, cells: 400, batchTokens: 16}, preambleGroups(16, 1), 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := func(noResident bool) ([][]any, *fakeEngine) {
				o := c.o
				o.noResident = noResident
				e := startFake(t, o)
				var errs []string
				checkReservations(e, &errs)
				out, err := e.generate(context.Background(), c.groups, c.maxNew, false)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range errs {
					t.Error(m)
				}
				if !o.grammar {
					checkAnswers(t, c.groups, out, c.maxNew)
				}
				e.checkIdle(t)
				if e.f.maxSeqs > o.sequences || e.f.maxUsed > o.cells {
					t.Errorf("%d sequences and %d cells in use at once, over %d and %d", e.f.maxSeqs, e.f.maxUsed, o.sequences, o.cells)
				}
				res := make([][]any, len(out))
				for g := range out {
					for _, comp := range out[g] {
						res[g] = append(res[g], comp)
					}
				}
				return res, e
			}
			off, eOff := run(true)
			on, eOn := run(false)
			if !reflect.DeepEqual(on, off) {
				t.Errorf("answers differ with the resident prefix:\n on  %+v\n off %+v", on, off)
			}
			stOn, stOff := eOn.stats.get(), eOff.stats.get()
			if stOff.ResidentTokens != 0 || eOff.f.copies != 0 {
				t.Errorf("off: %d resident tokens, %d copies", stOff.ResidentTokens, eOff.f.copies)
			}
			if stOn.ResidentTokens == 0 {
				t.Fatal("on: no group attached to the resident prefix")
			}
			if stOn.PromptTokens != stOff.PromptTokens || stOn.GeneratedTokens != stOff.GeneratedTokens {
				t.Errorf("prompt and generated tokens: on %d and %d, off %d and %d", stOn.PromptTokens, stOn.GeneratedTokens, stOff.PromptTokens, stOff.GeneratedTokens)
			}
			// Decoded prompt tokens: what the resident saved, less the
			// one decode of the resident itself.
			saved := stOff.DecodeTokens - stOn.DecodeTokens
			if saved != stOn.ResidentTokens-len(fakePreamble)-1 && c.o.cells >= 4096 {
				t.Errorf("the resident prefix saved %d decoded tokens, want %d attached less %d decoded once", saved, stOn.ResidentTokens, len(fakePreamble)+1)
			}
			if zOn, zOff := positionZero(eOn.f), positionZero(eOff.f); zOn >= zOff || (c.o.cells >= 4096 && zOn != 2) {
				t.Errorf("position 0 decoded %d times on, %d off; want twice on (the first group, the resident)", zOn, zOff)
			}
			t.Logf("decoded tokens: on %d, off %d; decode calls: on %d, off %d; resident tokens %d",
				stOn.DecodeTokens, stOff.DecodeTokens, stOn.DecodeCalls, stOff.DecodeCalls, stOn.ResidentTokens)
		})
	}
}

// TestResidentLearning: the resident prefix is the prefix that two
// documents share, compared on tokens; documents that share less than
// minResident tokens, or parts of one document, leave it unlearned.
func TestResidentLearning(t *testing.T) {
	p, q := passage(3, 8), passage(30, 8)
	pre := func(words []int32, passage []int32, typ int32) []int32 {
		return fakePrompt(typ, append(slices.Clone(words), passage...)...)
	}
	preamble := len(fakePreamble) + 1 // and BOS
	cases := []struct {
		name   string
		groups [][][]int32
		// The most resident tokens during the run, and the last; -1 for
		// none ever.
		want, last int
	}{
		{"two documents share the preamble", [][][]int32{{pre(fakePreamble, p, typList)}, {pre(fakePreamble, q, typList)}}, preamble, preamble},
		{"they share BOS and two words", [][][]int32{{pre(fakePreamble[:2], p, typList)}, {pre(fakePreamble[:2], q, typList)}}, -1, -1},
		{"one document split in parts", [][][]int32{{pre(fakePreamble, p, typList), pre(fakePreamble, p, typEOS), pre(fakePreamble, p, typOther)}}, -1, -1},
		{"learnt from the second and third", [][][]int32{{pre(nil, q, typList)}, {pre(fakePreamble, p, typList)}, {pre(fakePreamble, q, typList)}}, preamble, preamble},
		{"a document twice, then others: cut to the preamble", [][][]int32{{pre(fakePreamble, p, typList)}, {pre(fakePreamble, p, typLong)}, {pre(fakePreamble, q, typList)}, {pre(fakePreamble, q[1:], typList)}},
			preamble + len(p), preamble},
		{"then one that shares BOS alone: kept", [][][]int32{{pre(fakePreamble, p, typList)}, {pre(fakePreamble, q, typEOS)}, {pre(nil, q, typList)}, {pre(fakePreamble, q[1:], typList)}},
			preamble, preamble},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Two sequences: parts split, and a group may wait for the
			// one before it.
			e := startFake(t, fakeOptions{sequences: 2, cells: 4096, batchTokens: 64})
			var learnt []int
			var errs []string
			checkReservations(e, &errs)
			hook := e.f.hook
			e.f.hook = func(call int, b *batch) error {
				learnt = append(learnt, len(e.s.res.tokens))
				return hook(call, b)
			}
			out, err := e.generate(context.Background(), c.groups, 8, false)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswers(t, c.groups, out, 8)
			for _, m := range errs {
				t.Error(m)
			}
			e.checkIdle(t)
			got, last := slices.Max(learnt), learnt[len(learnt)-1]
			if c.want < 0 && (got != 0 || e.f.copies != 0) {
				t.Errorf("a resident prefix of %d tokens, %d copies; want none", got, e.f.copies)
			}
			if c.want >= 0 && (got != c.want || last != c.last) {
				t.Errorf("a resident prefix of %d tokens at most, %d at the end; want %d and %d", got, last, c.want, c.last)
			}
		})
	}
}

// TestResidentFallback: an engine without a reserved id, or with the
// prefix turned off, decodes as before; turned off while in use, the
// prefix leaves the cache once no group uses it.
func TestResidentFallback(t *testing.T) {
	groups := preambleGroups(8, 3)
	t.Run("no reserved id", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 64})
		e.s.res.id = -1 // as Load does at llama.cpp's sequence limit
		out, err := e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
		e.checkIdle(t)
		if st := e.stats.get(); st.ResidentTokens != 0 || e.f.copies != 0 || len(e.f.hist[e.f.reserved]) != 0 {
			t.Errorf("%d resident tokens, %d copies", st.ResidentTokens, e.f.copies)
		}
	})
	t.Run("turned off between requests", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 64})
		out, err := e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
		first := e.stats.get().ResidentTokens
		e.s.residentOn.Store(false)
		var held []int
		e.f.hook = func(int, *batch) error {
			held = append(held, len(e.f.hist[e.f.reserved]))
			return nil
		}
		out, err = e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
		e.checkIdle(t)
		if first == 0 || e.stats.get().ResidentTokens != first {
			t.Errorf("resident tokens %d after the first request, %d after the second (off)", first, e.stats.get().ResidentTokens)
		}
		if slices.Max(held) != 0 {
			t.Errorf("the reserved id held %d cells while off", slices.Max(held))
		}
	})
}

// TestResidentMakesRoom: a document that fits the cache only without the
// resident prefix waits for the groups that use it, then the prefix is
// dropped for it, and learnt again.
func TestResidentMakesRoom(t *testing.T) {
	// Preamble groups of one prompt need 7 + 3..19 + 2 + 8 cells, 7 of
	// them the resident's; the long document, without the preamble, 1 +
	// 66 + 2 + 8 = 77 of 80, all its own but BOS: 76 > 80 - 7.
	groups := preambleGroups(6, 1)
	groups = append(groups, [][]int32{fakePrompt(typList, passage(0, 66)...)})
	groups = append(groups, preambleGroups(4, 1)...)
	e := startFake(t, fakeOptions{sequences: 8, cells: 80, batchTokens: 64})
	var errs []string
	checkReservations(e, &errs)
	out, err := e.generate(context.Background(), groups, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range errs {
		t.Error(m)
	}
	checkAnswers(t, groups, out, 8)
	e.checkIdle(t)
	// The preamble was decoded under the reserved id twice: learnt, then
	// learnt again after the long document.
	built := 0
	for _, b := range e.f.batches {
		for _, en := range b {
			if en.pos == 0 && slices.Equal(en.seqs, []int32{e.f.reserved}) {
				built++
			}
		}
	}
	if built != 2 {
		t.Errorf("the resident prefix was decoded %d times, want 2", built)
	}
}

// TestResidentCancelAndFailure: cancelled requests and failed decodes
// leave the resident prefix's accounting whole, a failed decode drops it,
// and the engine goes on answering.
func TestResidentCancelAndFailure(t *testing.T) {
	t.Run("cancel mid-flight", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 300, batchTokens: 16})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errs []string
		checkReservations(e, &errs)
		hook := e.f.hook
		e.f.hook = func(call int, b *batch) error {
			if e.s.res.users > 0 && len(e.s.pending) > 0 {
				cancel() // groups attached, others waiting for room
			}
			return hook(call, b)
		}
		long := preambleGroups(20, 5)
		if _, err := e.generate(ctx, long, 40, false); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v, want context.Canceled", err)
		}
		e.f.hook = hook
		groups := preambleGroups(6, 3)
		out, err := e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
		for _, m := range errs {
			t.Error(m)
		}
		e.checkIdle(t)
	})
	t.Run("decode failure", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 64})
		failed := false
		e.f.hook = func(call int, b *batch) error {
			if !failed && e.s.res.users > 0 {
				failed = true
				return errFakeDecode
			}
			return nil
		}
		if _, err := e.generate(context.Background(), preambleGroups(6, 3), 8, false); !errors.Is(err, errFakeDecode) {
			t.Fatalf("%v, want the decode error", err)
		}
		if len(e.f.hist[e.f.reserved]) != 0 {
			t.Error("the resident prefix outlived a failed decode")
		}
		groups := preambleGroups(6, 3)
		out, err := e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
		e.checkIdle(t)
		if e.stats.get().ResidentTokens == 0 {
			t.Error("the resident prefix was not learnt again")
		}
	})
}

// TestResidentDecodeFailure: a failed decode of the resident prefix
// itself fails no request: the engine runs without it from then on.
func TestResidentDecodeFailure(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 64})
	var errs []string
	checkReservations(e, &errs)
	check := e.f.hook
	failed := false
	e.f.hook = func(call int, b *batch) error {
		if err := check(call, b); err != nil {
			return err
		}
		if !failed && slices.Equal(b.seqs[0], []int32{e.f.reserved}) {
			failed = true
			return errFakeDecode
		}
		return nil
	}
	groups := preambleGroups(8, 3)
	for range 2 {
		out, err := e.generate(context.Background(), groups, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, groups, out, 8)
	}
	for _, m := range errs {
		t.Error(m)
	}
	e.checkIdle(t)
	if !failed {
		t.Fatal("the resident prefix was never decoded")
	}
	if st := e.stats.get(); st.ResidentTokens != 0 || e.f.copies != 0 {
		t.Errorf("%d resident tokens, %d copies after its decode failed", st.ResidentTokens, e.f.copies)
	}
}
