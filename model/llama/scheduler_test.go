package llama

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The scheduler's tests run it against fakeDecoder (fake_test.go): no
// llama.cpp, and answers known in advance (wantAnswer).

// passage returns n words from the fake vocabulary, starting at word w.
func passage(w, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = fkWord0 + int32((w+i)%(fakeVocab-int(fkWord0)))
	}
	return out
}

// sameTypes returns one group per passage, each asking about the types.
func sameTypes(passages [][]int32, types ...int32) [][][]int32 {
	var groups [][][]int32
	for _, p := range passages {
		var g [][]int32
		for _, typ := range types {
			g = append(g, fakePrompt(typ, p...))
		}
		groups = append(groups, g)
	}
	return groups
}

func TestSchedulerAnswers(t *testing.T) {
	cases := []struct {
		name   string
		o      fakeOptions
		groups [][][]int32
		maxNew int
		serial bool
	}{
		{"one prompt", fakeOptions{sequences: 4, cells: 256, batchTokens: 64}, [][][]int32{{fakePrompt(typList, 20, 21)}}, 16, false},
		{"groups share prefixes", fakeOptions{sequences: 16, cells: 4096, batchTokens: 64}, fakeGroups(12, 5), 16, false},
		{"batches smaller than a prompt", fakeOptions{sequences: 16, cells: 4096, batchTokens: 8}, fakeGroups(12, 5), 16, false},
		{"fewer sequences than a group", fakeOptions{sequences: 2, cells: 4096, batchTokens: 64}, fakeGroups(12, 5), 16, false},
		{"a cache for one group at a time", fakeOptions{sequences: 16, cells: 120, batchTokens: 64}, fakeGroups(12, 5), 16, false},
		{"a cache smaller than a group", fakeOptions{sequences: 16, cells: 60, batchTokens: 64}, fakeGroups(12, 5), 16, false},
		{"one new token", fakeOptions{sequences: 16, cells: 4096, batchTokens: 64}, fakeGroups(12, 5), 1, false},
		{"serial", fakeOptions{sequences: 16, cells: 4096, batchTokens: 64}, fakeGroups(12, 5), 16, true},
		{"serial, small batches", fakeOptions{sequences: 2, cells: 60, batchTokens: 8}, fakeGroups(12, 5), 16, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFake(t, c.o)
			out, err := e.generate(context.Background(), c.groups, c.maxNew, c.serial)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswers(t, c.groups, out, c.maxNew)
			e.checkIdle(t)
			if e.f.maxSeqs > c.o.sequences || e.f.maxUsed > c.o.cells {
				t.Errorf("%d sequences and %d cells in use at once, over %d and %d", e.f.maxSeqs, e.f.maxUsed, c.o.sequences, c.o.cells)
			}
			prompts, generated := 0, 0
			for gi, g := range c.groups {
				for pi, p := range g {
					prompts += len(p)
					generated += out[gi][pi].GeneratedTokens
				}
			}
			st := e.stats.get()
			if st.PromptTokens != prompts || st.GeneratedTokens != generated {
				t.Errorf("stats count %d prompt and %d generated tokens, want %d and %d", st.PromptTokens, st.GeneratedTokens, prompts, generated)
			}
			if st.DecodeCalls != e.f.calls {
				t.Errorf("stats count %d decode calls, the decoder had %d", st.DecodeCalls, e.f.calls)
			}
		})
	}
}

// TestAdmission: a group starts only when it has a sequence id for each
// prompt and KV cells for all its tokens; it waits otherwise.
func TestAdmission(t *testing.T) {
	// Groups of 3 prompts of 13 tokens that share 11 (BOS and the
	// passage); with 8 new tokens each, a group needs 11 + 3×(2+8) = 41
	// cells. The answers of a group end together (5 tokens each), so
	// that a group gives back all its sequence ids at once.
	groups := sameTypes([][]int32{passage(0, 10), passage(20, 10), passage(40, 10), passage(10, 10)}, typList, typList+4, typList+8)
	cases := []struct {
		name        string
		o           fakeOptions
		wantMaxSeqs int
	}{
		{"ids for one group", fakeOptions{sequences: 4, cells: 4096, batchTokens: 128}, 3},
		{"ids for two groups", fakeOptions{sequences: 6, cells: 4096, batchTokens: 128}, 6},
		{"ids for all", fakeOptions{sequences: 64, cells: 4096, batchTokens: 128}, 12},
		{"cells for one group", fakeOptions{sequences: 64, cells: 81, batchTokens: 128}, 3},
		{"cells for two groups", fakeOptions{sequences: 64, cells: 82, batchTokens: 128}, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFake(t, c.o)
			out, err := e.generate(context.Background(), groups, 8, false)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswers(t, groups, out, 8)
			e.checkIdle(t)
			if e.f.maxSeqs != c.wantMaxSeqs {
				t.Errorf("%d sequences decoded at once, want %d", e.f.maxSeqs, c.wantMaxSeqs)
			}
		})
	}
}

// TestPrefixSharing: a group's shared prefix is decoded once, each of its
// tokens carrying every sequence id of the group; the rest of each prompt
// is its own.
func TestPrefixSharing(t *testing.T) {
	p := passage(3, 10)
	cases := []struct {
		name    string
		prompts [][]int32
		prefix  int
	}{
		{"one passage, three types", [][]int32{fakePrompt(typList, p...), fakePrompt(typEOS, p...), fakePrompt(typOther, p...)}, 11},
		{"passages that differ after BOS", [][]int32{fakePrompt(typList, p...), fakePrompt(typList, passage(4, 10)...)}, 1},
		{"passages that differ in the middle", [][]int32{fakePrompt(typList, p...), fakePrompt(typList, append(slices.Clone(p[:5]), passage(30, 5)...)...)}, 6},
		{"the same prompt twice keeps a token of its own", [][]int32{fakePrompt(typList, p...), fakePrompt(typList, p...)}, 12},
		{"one prompt shares nothing", [][]int32{fakePrompt(typList, p...)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 8})
			groups := [][][]int32{c.prompts}
			out, err := e.generate(context.Background(), groups, 16, false)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswers(t, groups, out, 16)
			e.checkIdle(t)
			var shared []int32 // positions decoded with several ids
			own := map[int32]int{}
			for _, b := range e.f.batches {
				for _, en := range b {
					switch {
					case len(en.seqs) == len(c.prompts) && len(c.prompts) > 1:
						shared = append(shared, en.pos)
					case len(en.seqs) > 1:
						t.Errorf("a token at %d carries %d ids, not %d", en.pos, len(en.seqs), len(c.prompts))
					case !en.generated:
						own[en.seqs[0]]++
					}
				}
			}
			want := make([]int32, c.prefix)
			for i := range want {
				want[i] = int32(i)
			}
			if !slices.Equal(shared, want) && len(shared)+len(want) > 0 {
				t.Errorf("shared positions %v, want %v", shared, want)
			}
			for id, n := range own {
				if n != len(c.prompts[0])-c.prefix {
					t.Errorf("sequence %d decoded %d prompt tokens of its own, want %d", id, n, len(c.prompts[0])-c.prefix)
				}
			}
			if st := e.stats.get(); st.SharedTokens != c.prefix*(len(c.prompts)-1) {
				t.Errorf("SharedTokens %d, want %d", st.SharedTokens, c.prefix*(len(c.prompts)-1))
			}
		})
	}
}

// TestSplitting: a group too large for the sequences or the cache is
// split, and each part decodes the shared prefix again.
func TestSplitting(t *testing.T) {
	p := passage(5, 10)
	group := [][][]int32{{fakePrompt(typList, p...), fakePrompt(typEOS, p...), fakePrompt(typOther, p...), fakePrompt(typLong, p...), fakePrompt(typList+4, p...)}}
	// Each prompt has 13 tokens, 11 shared; with 8 new tokens a part of k
	// prompts needs 11 + 10k cells.
	cases := []struct {
		name  string
		o     fakeOptions
		parts int // times position 0 is decoded
	}{
		{"fits", fakeOptions{sequences: 8, cells: 4096, batchTokens: 64}, 1},
		{"two sequences: 2, 1, 2", fakeOptions{sequences: 2, cells: 4096, batchTokens: 64}, 3},
		{"one sequence", fakeOptions{sequences: 1, cells: 4096, batchTokens: 64}, 5},
		{"cells for 3: 2, 3", fakeOptions{sequences: 8, cells: 45, batchTokens: 64}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFake(t, c.o)
			out, err := e.generate(context.Background(), group, 8, false)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswers(t, group, out, 8)
			e.checkIdle(t)
			parts := 0
			for _, b := range e.f.batches {
				for _, en := range b {
					if en.pos == 0 {
						parts++
					}
				}
			}
			if parts != c.parts {
				t.Errorf("the prefix was decoded %d times, want %d", parts, c.parts)
			}
		})
	}
}

// TestSerialEqualsBatched: one prompt at a time, nothing shared, gives the
// answers of batched decoding, with and without a grammar.
func TestSerialEqualsBatched(t *testing.T) {
	groups := fakeGroups(16, 5)
	for _, g := range []bool{false, true} {
		t.Run(fmt.Sprintf("grammar=%v", g), func(t *testing.T) {
			o := fakeOptions{sequences: 8, cells: 400, batchTokens: 16, grammar: g}
			batched, serial := startFake(t, o), startFake(t, o)
			got, err := batched.generate(context.Background(), groups, 12, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := serial.generate(context.Background(), groups, 12, true)
			if err != nil {
				t.Fatal(err)
			}
			for gi := range groups {
				for pi := range groups[gi] {
					if !reflect.DeepEqual(got[gi][pi], want[gi][pi]) {
						t.Errorf("group %d prompt %d: batched %+v, serial %+v", gi, pi, got[gi][pi], want[gi][pi])
					}
				}
			}
			if !g {
				checkAnswers(t, groups, want, 12)
			} else if serial.g.n.fullApplies == 0 {
				t.Error("the grammar never refused an arg-max: the test proves little")
			}
			batched.checkIdle(t)
			serial.checkIdle(t)
			if serial.f.maxSeqs != 1 {
				t.Errorf("serial decoding held %d sequences at once", serial.f.maxSeqs)
			}
			if st := serial.stats.get(); st.SharedTokens != 0 {
				t.Errorf("serial decoding shared %d tokens", st.SharedTokens)
			}
			if batched.f.calls >= serial.f.calls {
				t.Errorf("batched decoding took %d decode calls, serial %d", batched.f.calls, serial.f.calls)
			}
		})
	}
}

// TestGrammarHoldsAnswers: under the grammar every answer is a JSON array
// prefix, whatever the fake model prefers.
func TestGrammarHoldsAnswers(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 8, cells: 4096, batchTokens: 64, grammar: true})
	groups := fakeGroups(16, 5)
	out, err := e.generate(context.Background(), groups, 12, false)
	if err != nil {
		t.Fatal(err)
	}
	for gi := range groups {
		for pi := range groups[gi] {
			if c := out[gi][pi]; !strings.HasPrefix(c.Text, " [") {
				t.Errorf("group %d prompt %d: %q does not open an array", gi, pi, c.Text)
			}
		}
	}
	e.checkIdle(t)
}

// TestStopping: generation stops when the array closes, at EOS, or at max
// new tokens, whichever comes first; EOS is not part of the answer.
func TestStopping(t *testing.T) {
	pieces, _ := fakePieces()
	cases := []struct {
		name   string
		typ    int32
		maxNew int
		want   string // W stands for the word the fake model names
		n      int
	}{
		{"the array closes", typList, 16, ` ["W"]`, 5},
		{"the array closes at max new tokens", typList, 5, ` ["W"]`, 5},
		{"max new tokens before the array closes", typList, 3, ` ["W`, 3},
		{"EOS", typEOS, 16, ` ["W`, 3},
		{"max new tokens", typLong, 7, ` ["WWWWW`, 7},
		{"one new token", typLong, 1, ` [`, 1},
		{"not a list: EOS", typOther, 16, `WWW`, 3},
		{"not a list: max new tokens", typOther, 2, `WW`, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFake(t, fakeOptions{sequences: 4, cells: 4096, batchTokens: 64})
			p := fakePrompt(c.typ, 30, 31, 32)
			out, err := e.generate(context.Background(), [][][]int32{{p}}, c.maxNew, false)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(c.want, "W", string(pieces[fakeWord(p)]))
			if got := out[0][0]; got.Text != want || got.GeneratedTokens != c.n {
				t.Errorf("%q (%d tokens), want %q (%d)", got.Text, got.GeneratedTokens, want, c.n)
			}
			e.checkIdle(t)
		})
	}
}

// TestCancelMidFlight: a request whose context ends stops at once and lets
// go of its sequences; the others go on.
func TestCancelMidFlight(t *testing.T) {
	t.Run("batched", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 8192, batchTokens: 64})
		long := [][][]int32{{fakePrompt(typLong, 20, 21, 22), fakePrompt(typLong, 20, 21, 23)}}
		short := sameTypes([][]int32{passage(30, 4)}, typList, typEOS, typOther)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		started := make(chan struct{})
		cancelled := 0
		e.f.hook = func(call int, b *batch) error {
			if call == 1 {
				close(started)
			}
			if len(e.s.active) == 2 && cancelled == 0 {
				cancelled = call // both are in flight
				cancel()
			}
			return nil
		}
		longErr := make(chan error, 1)
		go func() {
			_, err := e.generate(ctx, long, 2000, false)
			longErr <- err
		}()
		<-started
		out, err := e.generate(context.Background(), short, 16, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, short, out, 16)
		if err := <-longErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("the long request: %v, want context.Canceled", err)
		}
		e.checkIdle(t)
		if e.f.calls > cancelled+20 {
			t.Errorf("%d decode calls after the cancel at call %d", e.f.calls-cancelled, cancelled)
		}
	})
	t.Run("serial", func(t *testing.T) {
		e := startFake(t, fakeOptions{sequences: 8, cells: 8192, batchTokens: 64})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e.f.hook = func(call int, b *batch) error {
			if call == 5 {
				cancel()
			}
			return nil
		}
		long := [][][]int32{{fakePrompt(typLong, 20, 21, 22), fakePrompt(typLong, 20, 21, 23)}}
		if _, err := e.generate(ctx, long, 2000, true); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v, want context.Canceled", err)
		}
		if e.f.calls != 5 {
			t.Errorf("%d decode calls, want 5", e.f.calls)
		}
		// The engine still works.
		short := sameTypes([][]int32{passage(30, 4)}, typList)
		out, err := e.generate(context.Background(), short, 16, true)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, short, out, 16)
		e.checkIdle(t)
	})
}

// TestStopFailsInFlight: stopping the scheduler (Engine.Close) fails what
// it holds with ErrClosed and frees it.
func TestStopFailsInFlight(t *testing.T) {
	for _, serial := range []bool{false, true} {
		t.Run(fmt.Sprintf("serial=%v", serial), func(t *testing.T) {
			e := startFake(t, fakeOptions{sequences: 8, cells: 8192, batchTokens: 64})
			reached, release := make(chan struct{}), make(chan struct{})
			e.f.hook = func(call int, b *batch) error {
				if call == 3 {
					close(reached)
					<-release
				}
				return nil
			}
			errc := make(chan error, 1)
			go func() {
				_, err := e.generate(context.Background(), [][][]int32{{fakePrompt(typLong, 20, 21)}, {fakePrompt(typLong, 22, 21)}}, 2000, serial)
				errc <- err
			}()
			<-reached
			stopped := make(chan struct{})
			go func() {
				e.stop()
				close(stopped)
			}()
			<-e.s.quit
			close(release)
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Errorf("in flight: %v, want ErrClosed", err)
			}
			<-stopped
			if _, err := e.generate(context.Background(), [][][]int32{{fakePrompt(typList, 20)}}, 4, false); !errors.Is(err, ErrClosed) {
				t.Errorf("after stop: %v, want ErrClosed", err)
			}
			e.checkIdle(t)
			if e.f.calls != 3 {
				t.Errorf("%d decode calls, want none after the third, during which it stopped", e.f.calls)
			}
		})
	}
}

// TestDecodeFailure: a failed decode fails the requests in that batch and
// no other: a request still waiting for sequence ids is answered.
func TestDecodeFailure(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 2, cells: 8192, batchTokens: 64})
	active := [][][]int32{{fakePrompt(typLong, 20, 21)}, {fakePrompt(typLong, 22, 21)}}
	waiting := sameTypes([][]int32{passage(30, 4)}, typList)
	started := make(chan struct{})
	failed := 0
	e.f.hook = func(call int, b *batch) error {
		if call == 1 {
			close(started)
		}
		if call == 2 && len(e.s.pending) == 0 {
			// The loop has not taken the waiting request in yet: take
			// it here, on the scheduler's goroutine, as the loop would
			// between steps. On a busy machine the active request could
			// otherwise finish before the test's goroutine sends it.
			e.s.accept(<-e.s.work)
		}
		// Fail once the waiting request is queued behind the active one.
		if failed == 0 && call >= 3 && len(e.s.pending) > 0 {
			failed = call
			return errFakeDecode
		}
		return nil
	}
	activeErr := make(chan error, 1)
	go func() {
		_, err := e.generate(context.Background(), active, 500, false)
		activeErr <- err
	}()
	<-started
	out, err := e.generate(context.Background(), waiting, 16, false)
	if err != nil {
		t.Fatalf("the waiting request: %v", err)
	}
	checkAnswers(t, waiting, out, 16)
	if err := <-activeErr; !errors.Is(err, errFakeDecode) {
		t.Fatalf("the active request: %v, want the decode error", err)
	}
	if failed == 0 {
		t.Fatal("no decode failed")
	}
	e.checkIdle(t)
}

// TestGeneratedTokensFirst: generated tokens go first in every batch, so
// that a long prefill never stalls answers in progress.
func TestGeneratedTokensFirst(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 8, cells: 8192, batchTokens: 8})
	// A short prompt with a long answer, and a long prompt: its prefill
	// takes 10 batches of 8 tokens.
	groups := append([][][]int32{{fakePrompt(typLong, 20)}}, sameTypes([][]int32{passage(0, 60)}, typList, typEOS, typOther)...)
	out, err := e.generate(context.Background(), groups, 40, false)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, groups, out, 40)
	e.checkIdle(t)

	// The batches that fed the first answer's tokens back: one per
	// batch, from its first to its last, with no batch missed.
	firstID := e.f.batches[0][0].seqs[0]
	var fed []int
	prefill := 0
	for i, b := range e.f.batches {
		prompt, mine := false, false
		for _, en := range b {
			if !en.generated {
				prompt = true
			} else if prompt {
				t.Errorf("batch %d: a generated token after a prompt token", i)
			}
			if en.generated && en.seqs[0] == firstID {
				mine = true
			}
		}
		if mine {
			fed = append(fed, i)
			if prompt {
				prefill++
			}
		}
	}
	// 40 tokens, the last not fed back.
	if len(fed) != 39 || fed[len(fed)-1]-fed[0] != 38 {
		t.Errorf("the first answer was fed back in batches %v, want 39 consecutive ones", fed)
	}
	if prefill == 0 {
		t.Error("no prefill ran beside the first answer: the test proves nothing")
	}
}

// TestProbe: the prefill probe decodes one full batch of one sequence and
// frees it.
func TestProbe(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 4, cells: 4096, batchTokens: 32})
	toks := passage(0, 32)
	req := &request{ctx: context.Background(), probe: toks, pending: 1, finished: make(chan struct{})}
	if err := e.s.do(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if req.probeTime <= 0 {
		t.Error("no probe time")
	}
	e.checkIdle(t)
	if len(e.f.batches) != 1 || len(e.f.batches[0]) != 32 {
		t.Errorf("%d batches, want one of 32 tokens", len(e.f.batches))
	}
}

// TestNoWork: a request without prompts to decode returns at once.
func TestNoWork(t *testing.T) {
	e := startFake(t, fakeOptions{sequences: 4, cells: 4096, batchTokens: 32})
	out, err := e.generate(context.Background(), [][][]int32{{}, {}}, 8, false)
	if err != nil || len(out) != 2 {
		t.Fatalf("%v, %v", out, err)
	}
	e.checkIdle(t)
}
