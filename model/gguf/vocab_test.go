package gguf

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestSynthVocab(t *testing.T) {
	v := SynthVocab()
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	n := len(v.Tokens)
	if n < 300 || n > 1100 || len(v.Scores) != n || len(v.Types) != n {
		t.Fatalf("%d tokens, %d scores, %d types", n, len(v.Scores), len(v.Types))
	}
	if v.Model != "llama" || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || !v.AddBOS || v.AddEOS || v.Extra != nil {
		t.Errorf("header fields: %+v", *v)
	}
	fixed := []struct {
		id    int
		piece string
		typ   int32
	}{
		{0, "<unk>", TokenUnknown}, {1, "<s>", TokenControl}, {2, "</s>", TokenControl},
		{3, "<0x00>", TokenByte}, {3 + 0x0a, "<0x0A>", TokenByte}, {258, "<0xFF>", TokenByte},
		{259, "▁", TokenNormal},
	}
	for _, f := range fixed {
		if v.Tokens[f.id] != f.piece || v.Types[f.id] != f.typ {
			t.Errorf("token %d = %q (type %d), want %q (type %d)", f.id, v.Tokens[f.id], v.Types[f.id], f.piece, f.typ)
		}
	}
	seen := map[string]int{}
	for i, tok := range v.Tokens {
		if j, dup := seen[tok]; dup {
			t.Errorf("token %q at %d and %d", tok, j, i)
		}
		seen[tok] = i
		if i > 0 && !(v.Scores[i] < v.Scores[i-1]) {
			t.Errorf("score %d (%g) is not below score %d (%g)", i, v.Scores[i], i-1, v.Scores[i-1])
		}
		if i >= 259 && v.Types[i] != TokenNormal {
			t.Errorf("token %d %q has type %d", i, tok, v.Types[i])
		}
	}
	// The pieces of UniNER prompts and answers, and every character with and
	// without "▁".
	want := strings.Fields(`▁USER : ▁ASSISTANT ▁Text ▁What ▁describes ▁in ▁the ▁text ? [ ] " ", ▁" ▁[ [] ▁[]
		▁A ▁virtual ▁assistant ▁person ▁organization ▁location`)
	for _, c := range "azAZ09.,;!?'\"()[]{}-_/\\@#$%&*+=<>|~^`:" {
		want = append(want, string(c), "▁"+string(c))
	}
	for _, w := range want {
		if _, ok := seen[w]; !ok {
			t.Errorf("no token %q", w)
		}
	}
	// Every multi-character normal piece can be built by SentencePiece
	// merges: some split of it is two tokens.
	for i, tok := range v.Tokens[260:] {
		r := []rune(tok)
		if len(r) < 2 {
			continue
		}
		ok := false
		for k := 1; k < len(r) && !ok; k++ {
			_, a := seen[string(r[:k])]
			_, b := seen[string(r[k:])]
			ok = a && b
		}
		if !ok {
			t.Errorf("token %d %q cannot be merged from two tokens", i+260, tok)
		}
	}
	if !reflect.DeepEqual(SynthVocab(), v) {
		t.Error("SynthVocab is not the same twice")
	}
}

func TestReadVocab(t *testing.T) {
	base := []KV{
		{"general.architecture", "llama"},
		{KeyTokenizerModel, "llama"},
		{KeyTokens, []string{"<unk>", "<s>", "</s>", "x"}},
	}
	with := func(kvs ...KV) *File { return &File{KVs: append(append([]KV{}, base...), kvs...)} }
	tests := []struct {
		name string
		f    *File
		want *Vocab
		err  string
	}{
		{"defaults", with(), &Vocab{Model: "llama", Tokens: []string{"<unk>", "<s>", "</s>", "x"}, BOS: 1, EOS: 2, AddBOS: true}, ""},
		{"everything", with(
			KV{KeyScores, []float32{0, 0, 0, -1}}, KV{KeyTokenTypes, []int32{2, 3, 3, 1}},
			KV{KeyBOS, uint32(3)}, KV{KeyEOS, int32(3)}, KV{KeyUNK, uint64(3)},
			KV{KeyAddBOS, false}, KV{KeyAddEOS, true},
			KV{"tokenizer.ggml.merges", []string{"a b"}}, KV{"tokenizer.chat_template", "t"},
		), &Vocab{Model: "llama", Tokens: []string{"<unk>", "<s>", "</s>", "x"}, Scores: []float32{0, 0, 0, -1},
			Types: []int32{2, 3, 3, 1}, BOS: 3, EOS: 3, UNK: 3, AddEOS: true,
			Extra: []KV{{"tokenizer.ggml.merges", []string{"a b"}}, {"tokenizer.chat_template", "t"}}}, ""},
		{"no model", &File{KVs: base[2:]}, nil, "tokenizer.ggml.model is missing"},
		{"no tokens", &File{KVs: base[:2]}, nil, "no tokens"},
		{"tokens of the wrong type", with(KV{KeyScores, []float64{1}}), nil, "tokenizer.ggml.scores is a []float64, want []float32"},
		{"negative id", with(KV{KeyBOS, int32(-1)}), nil, "tokenizer.ggml.bos_token_id is -1"},
		{"id out of range", with(KV{KeyEOS, uint32(4)}), nil, "EOS token id 4, but there are 4 tokens"},
		{"huge id", with(KV{KeyUNK, uint64(1 << 40)}), nil, "unknown_token_id is 1099511627776"},
		{"flag of the wrong type", with(KV{KeyAddBOS, uint8(1)}), nil, "add_bos_token is a uint8, want bool"},
	}
	for _, tt := range tests {
		got, err := ReadVocab(tt.f)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ReadVocab = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestVocabKVs(t *testing.T) {
	v := &Vocab{Model: "llama", Tokens: []string{"a"}, Extra: []KV{{"tokenizer.ggml.pre", "default"}}}
	var keys []string
	for _, kv := range v.KVs() {
		keys = append(keys, kv.Key)
	}
	want := []string{KeyTokenizerModel, KeyTokens, KeyBOS, KeyEOS, KeyUNK, KeyAddBOS, KeyAddEOS, "tokenizer.ggml.pre"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("KVs keys = %v, want %v (no scores or types when there are none)", keys, want)
	}
}
