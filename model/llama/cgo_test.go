package llama

import (
	"slices"
	"testing"
)

// TestContextRefusesBadBatches: cContext.decode refuses, as Go errors,
// what would write outside the llama_batch or make llama.cpp abort.
func TestContextRefusesBadBatches(t *testing.T) {
	e := loadTiny(t, Options{NoGrammar: true})
	c, err := newContext(e.model, contextParams{cells: 256, batchTokens: 8, sequences: 4, threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.free()
	one := func(tok, pos int32, seqs ...int32) *batch {
		b := newBatch(16)
		b.add(tok, pos, seqs, true)
		return &b
	}
	full := newBatch(16)
	for i := range 9 {
		full.add(5, int32(i), []int32{0}, false)
	}
	bad := map[string]*batch{
		"empty":                    {},
		"over the batch size":      &full,
		"a negative token":         one(-1, 0, 0),
		"a token past the vocab":   one(int32(e.Vocabulary()), 0, 0),
		"a sequence id past n_seq": one(5, 0, 4),
		"a negative sequence id":   one(5, 0, -1),
		"no sequence id":           one(5, 0),
		"more ids than sequences":  one(5, 0, 0, 1, 2, 3, 0),
	}
	for name, b := range bad {
		if err := c.decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if err := c.decode(one(5, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if l := c.logits(0); len(l) != e.Vocabulary() {
		t.Errorf("%d logits, want %d", len(l), e.Vocabulary())
	}
	// A position that does not continue the sequence is llama.cpp's to
	// refuse; it must come back as an error too.
	if err := c.decode(one(5, 7, 0)); err == nil {
		t.Error("a gap in positions decoded")
	}
	c.removeSequence(0)
	if err := c.decode(one(5, 0, 0)); err != nil {
		t.Errorf("after removeSequence: %v", err)
	}
}

// TestGrammarAgrees: cGrammar's allows (the arg-max alone) and allowed
// (the whole vocabulary) give the same answer for every token, along an
// answer the grammar accepts.
func TestGrammarAgrees(t *testing.T) {
	e := loadTiny(t, Options{})
	// SentencePiece puts a space before the text.
	answer, err := e.voc.tokenize(`["Ada", "Bob"]`)
	if err != nil {
		t.Fatal(err)
	}
	var text []byte
	for _, tok := range answer {
		text = append(text, e.voc.c.piece(tok, false)...)
	}
	if string(text) != ` ["Ada", "Bob"]` {
		t.Fatalf("the answer's tokens read %q", text)
	}
	gr, err := e.grammar.clone()
	if err != nil {
		t.Fatal(err)
	}
	defer gr.free()
	for i := 0; i <= len(answer); i++ {
		allowed := gr.allowed(nil)
		if len(allowed) == 0 {
			t.Fatalf("after %d tokens, nothing is allowed", i)
		}
		for tok := range int32(e.Vocabulary()) {
			if gr.allows(tok) != slices.Contains(allowed, tok) {
				t.Errorf("after %d tokens: allows(%d) = %v, allowed() disagrees", i, tok, gr.allows(tok))
			}
		}
		eos := slices.Contains(allowed, e.voc.eos)
		if eos != (i == len(answer)) {
			t.Errorf("after %d of %d tokens: EOS allowed = %v", i, len(answer), eos)
		}
		if i < len(answer) {
			if !slices.Contains(allowed, answer[i]) {
				t.Fatalf("token %d (%q) of the answer is refused", i, e.voc.c.piece(answer[i], false))
			}
			gr.accept(answer[i])
		}
	}
}
