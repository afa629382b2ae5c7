package llama

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/nerstream/nerstream/model"
)

// TestScoresMatchLogits: on the tiny model, each generated token's
// log-probability is the log-softmax of the logits that llama_get_logits
// gives for it, recomputed here in float64 on a context of the test's own
// that decodes the prompt and the answer one token at a time, with the
// grammar on and off (the grammar masks nothing out of the distribution
// that scores are taken from).
func TestScoresMatchLogits(t *testing.T) {
	for _, noGrammar := range []bool{false, true} {
		t.Run(fmt.Sprintf("grammar=%v", !noGrammar), func(t *testing.T) {
			e := loadTiny(t, Options{NoGrammar: noGrammar, ExactCache: true})
			groups := testGroups(3)
			out, err := e.Generate(context.Background(), groups, model.GenerateOptions{MaxNewTokens: 24})
			if err != nil {
				t.Fatal(err)
			}
			c, err := newContext(e.model, contextParams{cells: 1024, batchTokens: 512, sequences: 1, threads: 1, exact: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.free()
			pieces, _ := e.voc.pieces()
			checked, minP, maxP := 0, 1.0, 0.0
			for gi, g := range groups {
				for pi, p := range g.Prompts {
					comp := out[gi][pi]
					if comp.Err != nil || comp.Tokens == nil || len(comp.Tokens) != comp.GeneratedTokens {
						t.Fatalf("group %d prompt %d: %d token log-probs for %d tokens (err %v)", gi, pi, len(comp.Tokens), comp.GeneratedTokens, comp.Err)
					}
					toks, err := e.Tokenize(p)
					if err != nil {
						t.Fatal(err)
					}
					c.removeSequence(0)
					b := newBatch(512)
					for i, tok := range toks {
						b.add(tok, int32(i), []int32{0}, i == len(toks)-1)
					}
					if err := c.decode(&b); err != nil {
						t.Fatal(err)
					}
					pos, row, off := int32(len(toks)), int32(len(toks)-1), 0
					for i, tl := range comp.Tokens {
						l := c.logits(row)
						// The token the engine chose: of those that spell
						// its bytes, the most likely.
						spell := comp.Text[off : off+tl.Bytes]
						off += tl.Bytes
						tok := int32(-1)
						for id, pc := range pieces {
							if string(pc) == spell && (tok < 0 || l[id] > l[tok]) {
								tok = int32(id)
							}
						}
						if tok < 0 {
							t.Fatalf("no token spells %q", spell)
						}
						// Log-probabilities within 1e-5: probabilities within
						// 1e-5 of each other relatively, a test that a model
						// whose probabilities are all small still passes
						// only when they agree.
						want := refLogSoftmax(l, tok)
						if math.Abs(tl.LogProb-want) > 1e-5 {
							t.Errorf("group %d prompt %d token %d (%q): log-probability %v, from the logits %v", gi, pi, i, spell, tl.LogProb, want)
						}
						minP = min(minP, math.Exp(want))
						maxP = max(maxP, math.Exp(want))
						checked++
						b.reset()
						b.add(tok, pos, []int32{0}, true)
						pos, row = pos+1, 0
						if err := c.decode(&b); err != nil {
							t.Fatal(err)
						}
					}
					if off != len(comp.Text) {
						t.Errorf("group %d prompt %d: the tokens spell %d of %d bytes", gi, pi, off, len(comp.Text))
					}
				}
			}
			if checked < 20 {
				t.Errorf("only %d tokens checked", checked)
			}
			t.Logf("%d tokens, probabilities %.3g to %.3g", checked, minP, maxP)
		})
	}
}

// TestNoScores: asked for no scores, completions carry no
// log-probabilities, and the same answers.
func TestNoScores(t *testing.T) {
	e := loadTiny(t, Options{})
	with, err := e.Generate(context.Background(), testGroups(1), model.GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Generate(context.Background(), testGroups(1), model.GenerateOptions{MaxNewTokens: 8, NoScores: true})
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0].Tokens != nil {
		t.Errorf("token log-probs %v with scores off", out[0][0].Tokens)
	}
	if e.Stats().ScoreTime <= 0 {
		t.Error("no time counted for scores")
	}
	if with[0][0].Tokens == nil || with[0][0].Text != out[0][0].Text {
		t.Errorf("with scores: %q %v; without: %q", with[0][0].Text, with[0][0].Tokens, out[0][0].Text)
	}
}
