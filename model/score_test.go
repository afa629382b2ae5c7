package model

import (
	"math"
	"testing"
)

// toks builds tokens from pieces and their probabilities.
func toks(pieces []string, probs []float64) []TokenLogProb {
	out := make([]TokenLogProb, len(pieces))
	for i, p := range pieces {
		out[i] = TokenLogProb{Bytes: len(p), LogProb: math.Log(probs[i])}
	}
	return out
}

func TestScoreAnswer(t *testing.T) {
	cases := []struct {
		name   string
		pieces []string
		probs  []float64
		want   map[string]float64 // probabilities
		empty  float64            // -1: not "[]"
		ok     bool
	}{
		{"product and the closing quote, not the opening one",
			[]string{`["`, "Ada", " Love", "lace", `",`, ` "`, "Bo", `"]`}, []float64{0.9, 0.5, 0.8, 0.9, 0.7, 0.6, 0.4, 0.3},
			map[string]float64{"Ada Lovelace": 0.5 * 0.8 * 0.9 * 0.7, "Bo": 0.4 * 0.3}, -1, true},
		{"a token straddling the opening quote counts whole",
			[]string{` ["`, `Ada"`, `]`}, []float64{0.9, 0.5, 0.8},
			map[string]float64{"Ada": 0.5}, -1, true},
		{"the first of repeats",
			[]string{`["`, `A`, `", "`, `A`, `"]`}, []float64{0.9, 0.5, 0.8, 0.1, 0.2},
			map[string]float64{"A": 0.5 * 0.8}, -1, true},
		{"escapes and single quotes",
			[]string{`['`, `a\'b`, `', "`, `c\"`, `"]`}, []float64{0.9, 0.5, 0.8, 0.1, 0.2},
			map[string]float64{"a'b": 0.5 * 0.8, `c"`: 0.1 * 0.2}, -1, true},
		{"a list cut short keeps what is complete",
			[]string{`["`, `A`, `", "`, `B`}, []float64{0.9, 0.5, 0.8, 0.1},
			map[string]float64{"A": 0.5 * 0.8}, -1, true},
		{"empty answer", []string{" [", "]"}, []float64{0.9, 0.5}, map[string]float64{}, 0.45, true},
		{"quotes outside list items are not mentions",
			[]string{`I said "x" `, `["`, `y`, `"]`}, []float64{0.5, 0.9, 0.5, 0.5},
			map[string]float64{"y": 0.25}, -1, true},
		{"tokens that do not spell the text", []string{`["`, `A`}, []float64{0.9, 0.5}, nil, -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := ""
			for _, p := range c.pieces {
				text += p
			}
			tk := toks(c.pieces, c.probs)
			if !c.ok {
				text += `"]`
			}
			s, ok := scoreAnswer(text, tk)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			if len(s.mentions) != len(c.want) {
				t.Errorf("mentions %v, want %v", s.mentions, c.want)
			}
			for m, p := range c.want {
				if got := math.Exp(s.mentions[m]); math.Abs(got-p) > 1e-12 {
					t.Errorf("%q: %v, want %v", m, got, p)
				}
			}
			if s.empty != (c.empty >= 0) || (s.empty && math.Abs(math.Exp(s.emptyLP)-c.empty) > 1e-12) {
				t.Errorf("empty %v %v, want %v", s.empty, math.Exp(s.emptyLP), c.empty)
			}
		})
	}
}

func TestScoreAnswerHostile(t *testing.T) {
	for name, tk := range map[string][]TokenLogProb{
		"nil":               nil,
		"negative bytes":    {{Bytes: -1}, {Bytes: 5}},
		"NaN":               {{Bytes: 4, LogProb: math.NaN()}},
		"positive log-prob": {{Bytes: 4, LogProb: 0.5}},
		"too many bytes":    {{Bytes: 400}},
	} {
		if _, ok := scoreAnswer(`["a"]`, tk); ok {
			t.Errorf("%s: scored", name)
		}
	}
}
