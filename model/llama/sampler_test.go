package llama

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGreedy checks the sampler's policy on hand-made logits: the arg-max
// when the grammar allows it, asking the grammar about it alone; the whole
// vocabulary only when the grammar refuses it; the passage in the
// substring-constrained mode.
func TestGreedy(t *testing.T) {
	pieces, _ := fakePieces()
	// logits gives each listed token its value, the others 0.
	logits := func(v map[int32]float32) []float32 {
		l := make([]float32, fakeVocab)
		for t, x := range v {
			l[t] = x
		}
		return l
	}
	inf := float32(math.Inf(-1))
	cases := []struct {
		name    string
		logits  []float32
		grammar []int32 // tokens the grammar has accepted; nil: no grammar
		passage string  // substring mode, when set
		quoted  string  // answer text the quote tracker has seen
		want    int32
		applies int // times the grammar was applied to the whole vocabulary
	}{
		{"arg-max", logits(map[int32]float32{20: 3, 21: 2}), nil, "", "", 20, 0},
		{"the first on ties", logits(map[int32]float32{21: 3, 20: 3}), nil, "", "", 20, 0},
		{"no logits", nil, nil, "", "", -1, 0},
		{"the grammar allows the arg-max", logits(map[int32]float32{fkOpen: 3, 20: 2}), []int32{}, "", "", fkOpen, 0},
		{"the grammar refuses the arg-max", logits(map[int32]float32{20: 3, fkOpen: 2, 21: 1}), []int32{}, "", "", fkOpen, 1},
		{"the best the grammar allows", logits(map[int32]float32{20: 3, fkClose: 1, fkQuote: 2}), []int32{fkOpen}, "", "", fkQuote, 1},
		{"EOS only once the array is closed", logits(map[int32]float32{fkEOS: 3, fkQuote: 2}), []int32{fkOpen}, "", "", fkQuote, 1},
		{"EOS after the array", logits(map[int32]float32{fkEOS: 3, fkQuote: 2}), []int32{fkOpen, fkClose}, "", "", fkEOS, 0},
		{"nothing the grammar allows has a logit", logits(map[int32]float32{fkEOS: inf, 20: 3}), []int32{fkOpen, fkClose}, "", "", -1, 1},
		{"substring: the passage holds the arg-max", logits(map[int32]float32{20: 3, 21: 2}), nil, "w20 w21", ` ["`, 20, 0},
		{"substring: the passage refuses the arg-max", logits(map[int32]float32{30: 3, 21: 2, 20: 1}), nil, "w20 w21", ` ["`, 21, 0},
		{"substring: the next best the passage holds", logits(map[int32]float32{30: 3, 31: 2, 20: 1}), nil, "w20 w21", ` ["`, 20, 0},
		{"substring and grammar: the grammar refuses the arg-max", logits(map[int32]float32{fkEOS: 4, 30: 3, 20: 1}), []int32{fkOpen, fkQuote}, "w20 w30", ` ["`, 30, 1},
		{"substring and grammar: the passage refuses the arg-max", logits(map[int32]float32{31: 4, fkOpen: 3, 20: 1}), []int32{fkOpen, fkQuote}, "w20 w30", ` ["`, 20, 1},
		{"substring and grammar: both allow the arg-max", logits(map[int32]float32{20: 4}), []int32{fkOpen, fkQuote}, "w20 w30", ` ["`, 20, 0},
		{"substring: nothing fits", logits(map[int32]float32{30: 3}), []int32{fkOpen, fkQuote, 20}, "w20", ` ["w20`, fkQuote, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &sampler{pieces: pieces}
			var g grammar
			var fg *fakeGrammar
			if c.grammar != nil {
				fg = newFakeGrammar()
				for _, tok := range c.grammar {
					fg.accept(tok)
				}
				g = fg
			}
			var q *quoteTracker
			if c.passage != "" {
				q = &quoteTracker{passage: c.passage}
				q.feed([]byte(c.quoted))
			}
			if got := s.greedy(c.logits, g, q); got != c.want {
				t.Errorf("token %d, want %d", got, c.want)
			}
			if fg != nil && fg.n.fullApplies != c.applies {
				t.Errorf("the grammar was applied to the vocabulary %d times, want %d", fg.n.fullApplies, c.applies)
			}
		})
	}
}

func TestArrayCloser(t *testing.T) {
	cases := []struct {
		name   string
		pieces []string
		closed int // index of the piece that closes the array; -1: none
	}{
		{"a list", []string{` [`, `"Ada"`, `]`}, 2},
		{"an empty list", []string{` []`}, 0},
		{"white space first", []string{" \n\t[", `]`}, 1},
		{"a bracket in a string", []string{` [`, `"a]`, `"`, `]`}, 3},
		{"an escaped quote", []string{` ["a\"`, `]`, `"]`}, 2},
		{"an escaped backslash", []string{` ["a\\`, `"`, `]`}, 2},
		{"nested", []string{` [[`, `]`, `]`}, 2},
		{"two items", []string{` ["a",`, ` "b"`, `]`}, 2},
		{"not a list", []string{`Ada`, `]`}, -1},
		{"an open list", []string{` ["Ada", "Lo`}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a arrayCloser
			got := -1
			for i, p := range c.pieces {
				if a.feed([]byte(p)) && got < 0 {
					got = i
				}
			}
			if got != c.closed {
				t.Errorf("closed at piece %d, want %d", got, c.closed)
			}
		})
	}
}

// TestLogSumExp: the vectorised log-sum-exp agrees with a plain float64
// one, on lengths around the vector width and on a LLaMA-sized vocabulary
// with a wide range of logits.
func TestLogSumExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 9, 17, 32000} {
		for _, spread := range []float64{0.01, 10, 100} {
			l := make([]float32, n)
			for i := range l {
				l[i] = float32((rng.Float64() - 0.5) * spread)
			}
			m := math.Inf(-1)
			for _, v := range l {
				m = max(m, float64(v))
			}
			sum := 0.0
			for _, v := range l {
				sum += math.Exp(float64(v) - m)
			}
			want := m + math.Log(sum)
			if got := logSumExp(l); math.Abs(got-want) > 1e-6 {
				t.Errorf("n=%d spread=%v: %v, want %v", n, spread, got, want)
			}
		}
	}
	if got := logSumExp(nil); !math.IsInf(got, -1) {
		t.Errorf("no logits: %v, want -Inf", got)
	}
	if got := logSumExp([]float32{float32(math.Inf(-1)), 0}); math.Abs(got) > 1e-7 {
		t.Errorf("with a masked logit: %v, want 0", got)
	}
}

// BenchmarkLogSumExp is the cost of one token's score on LLaMA's
// vocabulary: one log-sum-exp over 32,000 logits.
func BenchmarkLogSumExp(b *testing.B) {
	l := make([]float32, 32000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range l {
		l[i] = float32(rng.NormFloat64() * 3)
	}
	for b.Loop() {
		logSumExp(l)
	}
}
