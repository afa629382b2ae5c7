package llama

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// vocab is the tokenizer half of a loaded model.
type vocab struct {
	c       cVocab
	n       int
	bos     int32
	eos     int32
	addBOS  bool
	special map[string]int32 // special tokens the prompt uses, by text
}

func newVocab(c cVocab) vocab {
	return vocab{c: c, n: c.nTokens(), bos: c.bos(), eos: c.eos(), addBOS: c.addBOS()}
}

var errInvalidUTF8 = errors.New("text is not valid UTF-8")

// tokenize returns the tokens of text, taken literally (no special tokens
// parsed, no BOS).
func (v *vocab) tokenize(text string) ([]int32, error) {
	return v.tokenizeMode(text, false)
}

// tokenizeMode checks text before llama.cpp sees it, then tokenizes it.
func (v *vocab) tokenizeMode(text string, parseSpecial bool) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, errInvalidUTF8
	}
	if len(text) > 1<<28 {
		return nil, fmt.Errorf("text of %d bytes is too long to tokenize", len(text))
	}
	if text == "" {
		return nil, nil
	}
	return v.c.tokenize(text, parseSpecial)
}

// Token is one token of a vocabulary, as a person checks it by eye.
type Token struct {
	ID int32
	// Spelling is the vocabulary's own text of the token, as Hugging
	// Face's convert_ids_to_tokens shows it: "▁US" (SentencePiece writes a
	// space as "▁"), "<0x0A>" (a byte), "</s>".
	Spelling string
	// Piece is the text the token stands for, as llama.cpp's
	// llama-tokenize shows it: " US", "\n", "</s>". A byte token's piece
	// is that one byte, which alone may not be UTF-8.
	Piece string
}

// token returns token id, or an error for an id outside the vocabulary.
func (v *vocab) token(id int32) (Token, error) {
	if id < 0 || int(id) >= v.n {
		return Token{}, fmt.Errorf("token %d is outside the vocabulary of %d tokens", id, v.n)
	}
	return Token{ID: id, Spelling: v.c.text(id), Piece: string(v.c.piece(id, true))}, nil
}

// pieces returns the text of every token, and which tokens end a
// generation, so that the scheduler asks llama.cpp for neither.
func (v *vocab) pieces() (pieces [][]byte, eog []bool) {
	pieces = make([][]byte, v.n)
	eog = make([]bool, v.n)
	for t := range pieces {
		pieces[t] = v.c.piece(int32(t), false)
		eog[t] = v.c.isEOG(int32(t))
	}
	return pieces, eog
}
