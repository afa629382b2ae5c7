package gguf

import (
	"fmt"
	"strings"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)

// Tokenizer metadata keys.
const (
	KeyTokenizerModel = "tokenizer.ggml.model"
	KeyTokens         = "tokenizer.ggml.tokens"
	KeyScores         = "tokenizer.ggml.scores"
	KeyTokenTypes     = "tokenizer.ggml.token_type"
	KeyBOS            = "tokenizer.ggml.bos_token_id"
	KeyEOS            = "tokenizer.ggml.eos_token_id"
	KeyUNK            = "tokenizer.ggml.unknown_token_id"
	KeyAddBOS         = "tokenizer.ggml.add_bos_token"
	KeyAddEOS         = "tokenizer.ggml.add_eos_token"
)

// Vocab is a tokenizer vocabulary, as the tokenizer.* metadata of a GGUF
// file holds it.
type Vocab struct {
	// Model is tokenizer.ggml.model: "llama" for SentencePiece, "gpt2"
	// for byte-level BPE, ….
	Model string
	// Tokens are the token pieces, indexed by token id.
	Tokens []string
	// Scores are the pieces' scores (SentencePiece log probabilities);
	// empty or one per token.
	Scores []float32
	// Types are the token types (TokenNormal, …); empty or one per token.
	Types []int32
	// BOS, EOS and UNK are the ids of the begin-of-sequence,
	// end-of-sequence and unknown tokens.
	BOS, EOS, UNK uint32
	// AddBOS and AddEOS say whether the tokenizer adds BOS and EOS to a
	// sequence.
	AddBOS, AddEOS bool
	// Extra are the other tokenizer.* entries (merges, pre-tokenizer,
	// chat template, padding id, …), carried over verbatim in order.
	Extra []KV
}

// Validate checks that the vocabulary is complete and consistent.
func (v *Vocab) Validate() error {
	n := len(v.Tokens)
	switch {
	case v.Model == "":
		return fmt.Errorf("vocabulary: no tokenizer model")
	case n == 0:
		return fmt.Errorf("vocabulary: no tokens")
	case len(v.Scores) != 0 && len(v.Scores) != n:
		return fmt.Errorf("vocabulary: %d scores for %d tokens", len(v.Scores), n)
	case len(v.Types) != 0 && len(v.Types) != n:
		return fmt.Errorf("vocabulary: %d token types for %d tokens", len(v.Types), n)
	}
	for _, id := range []struct {
		name string
		id   uint32
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"UNK", v.UNK}} {
		if uint64(id.id) >= uint64(n) {
			return fmt.Errorf("vocabulary: %s token id %d, but there are %d tokens", id.name, id.id, n)
		}
	}
	for _, kv := range v.Extra {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			return fmt.Errorf("vocabulary: extra key %q is not a tokenizer.* key", kv.Key)
		}
		switch kv.Key {
		case KeyTokenizerModel, KeyTokens, KeyScores, KeyTokenTypes, KeyBOS, KeyEOS, KeyUNK, KeyAddBOS, KeyAddEOS:
			return fmt.Errorf("vocabulary: extra key %q duplicates a field", kv.Key)
		}
	}
	return nil
}

// KVs returns the vocabulary as GGUF metadata: model, tokens, scores and
// token types (when present), the special-token ids and flags, then Extra.
func (v *Vocab) KVs() []KV {
	kvs := []KV{
		{KeyTokenizerModel, v.Model},
		{KeyTokens, v.Tokens},
	}
	if len(v.Scores) > 0 {
		kvs = append(kvs, KV{KeyScores, v.Scores})
	}
	if len(v.Types) > 0 {
		kvs = append(kvs, KV{KeyTokenTypes, v.Types})
	}
	kvs = append(kvs,
		KV{KeyBOS, v.BOS},
		KV{KeyEOS, v.EOS},
		KV{KeyUNK, v.UNK},
		KV{KeyAddBOS, v.AddBOS},
		KV{KeyAddEOS, v.AddEOS},
	)
	return append(kvs, v.Extra...)
}

// ReadVocab takes the vocabulary from the tokenizer.* metadata of a GGUF
// file (a model, or a vocabulary-only file such as llama.cpp's
// ggml-vocab-*.gguf). Special-token ids and flags that the file does not set
// take SentencePiece LLaMA's values: BOS 1, EOS 2, UNK 0, add BOS, no EOS.
func ReadVocab(f *File) (*Vocab, error) {
	v := &Vocab{BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	var ok bool
	if v.Model, ok = f.String(KeyTokenizerModel); !ok {
		return nil, fmt.Errorf("gguf: no vocabulary: %s is missing or not a string", KeyTokenizerModel)
	}
	for _, kv := range f.KVs {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			continue
		}
		var err error
		switch kv.Key {
		case KeyTokenizerModel:
		case KeyTokens:
			v.Tokens, err = typed[[]string](kv)
		case KeyScores:
			v.Scores, err = typed[[]float32](kv)
		case KeyTokenTypes:
			v.Types, err = typed[[]int32](kv)
		case KeyBOS:
			v.BOS, err = tokenID(kv)
		case KeyEOS:
			v.EOS, err = tokenID(kv)
		case KeyUNK:
			v.UNK, err = tokenID(kv)
		case KeyAddBOS:
			v.AddBOS, err = typed[bool](kv)
		case KeyAddEOS:
			v.AddEOS, err = typed[bool](kv)
		default:
			v.Extra = append(v.Extra, kv)
		}
		if err != nil {
			return nil, fmt.Errorf("gguf: vocabulary: %w", err)
		}
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return v, nil
}

func typed[T any](kv KV) (T, error) {
	x, ok := kv.Value.(T)
	if !ok {
		return x, fmt.Errorf("%s is a %T, want %T", kv.Key, kv.Value, x)
	}
	return x, nil
}

func tokenID(kv KV) (uint32, error) {
	u, ok := asUint(kv.Value)
	if !ok || u > 1<<32-1 {
		return 0, fmt.Errorf("%s is %v (%T), want a token id", kv.Key, kv.Value, kv.Value)
	}
	return uint32(u), nil
}

// SynthVocab returns the built-in SentencePiece-style vocabulary of
// synthetic models (tokenizer model "llama"): <unk>, <s> and </s>, the 256
// byte tokens <0x00>…<0xFF>, "▁" (U+2581, SentencePiece's space), then
// normal pieces: words common in English and in UniNER prompts and answers,
// with every prefix of each (so that SentencePiece's merges can build them),
// and each letter, digit and ASCII punctuation mark with and without "▁".
// Scores fall with the index; there are no duplicates.
func SynthVocab() *Vocab {
	v := &Vocab{Model: "llama", BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	seen := make(map[string]bool)
	add := func(piece string, typ int32) {
		if seen[piece] {
			return
		}
		seen[piece] = true
		v.Scores = append(v.Scores, -float32(len(v.Tokens)))
		v.Tokens = append(v.Tokens, piece)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", TokenUnknown)
	add("<s>", TokenControl)
	add("</s>", TokenControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), TokenByte)
	}
	add("▁", TokenNormal)
	// Multi-character pieces first, then all their prefixes, then the single
	// characters.
	var pieces []string
	for _, w := range strings.Fields(synthWords) {
		pieces = append(pieces, "▁"+w)
	}
	pieces = append(pieces, strings.Fields(synthPieces)...)
	for _, p := range pieces {
		add(p, TokenNormal)
	}
	for _, p := range pieces {
		r := []rune(p)
		for i := len(r) - 1; i >= 2; i-- {
			add(string(r[:i]), TokenNormal)
		}
	}
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	for _, c := range chars {
		add("▁"+string(c), TokenNormal)
	}
	for _, c := range chars {
		add(string(c), TokenNormal)
	}
	return v
}

// synthWords are the words of SynthVocab, each taken with a "▁" prefix: the
// UniNER prompt, common entity types, and common English.
const synthWords = `
A USER ASSISTANT Text What The In I've I read this text describes in the virtual
assistant answers questions from a user based on provided Dataset

person people name organization organisation location place country city
date time event product company university algorithm field task metric
programming language misc miscellaneous award book song band album
disease drug chemical protein gene cell species technology researcher
scientist politician writer musician artist

and of to is was for on that with as by at an be it are were his her
he she they we you not or which this has had have from but all their
also its one two new first after who more been other into can will
about than up out some would so there when these only over most time
years year may over New York London United States American English
John University Research Model Learning Network Neural Bayes Gaussian
Mixture classifier classifiers model models learning network networks
data method methods system systems using used use paper work
`

// synthPieces are pieces of UniNER answers and prompts taken as they are.
const synthPieces = `
: ? [ ] " ", ▁" ▁[ [] ▁[] "] ."] ", ▁", ." 's ▁'s ing ed ly er
s es tion ation ▁" ▁["
`
