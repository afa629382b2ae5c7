package distill

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/nerstream/nerstream/model"
)

// WhitespaceTokens counts white-space separated words: the default
// tokenizer for passage splitting. It satisfies model.TokenCounter.
//
// White space is what model.Chunker splits words at: Unicode white space
// and the characters Python's str.isspace accepts.
type WhitespaceTokens struct{}

// TokenCount returns the number of words in text. It never fails.
func (WhitespaceTokens) TokenCount(_ context.Context, text string) (int, error) {
	return len(strings.FieldsFunc(text, isSpace)), nil
}

// isSpace is the white space model.Chunker splits words at.
func isSpace(r rune) bool { return model.PyIsSpace(r) || unicode.IsSpace(r) }

// Passage is a piece of a source document.
type Passage struct {
	// Text is the passage, with no white space at either end.
	Text string
	// Source is the document's id (file:line, topic/partition/offset, …).
	Source string
	// Index is the passage's number within its document, from 0.
	Index int
}

// Split cuts a document into passages of at most maxTokens tokens as
// counter counts them, using model.Chunker with Overlap 0: passages end at
// sentence boundaries where possible, else between words. Empty or
// white-space-only text gives none. maxTokens < 2 is an error.
func Split(ctx context.Context, counter model.TokenCounter, source, text string, maxTokens int) ([]Passage, error) {
	if maxTokens < 2 {
		return nil, fmt.Errorf("distill: split %s: budget of %d tokens is too small (want at least 2)", source, maxTokens)
	}
	if strings.TrimFunc(text, isSpace) == "" {
		return nil, nil
	}
	c := model.Chunker{Counter: counter, Budget: maxTokens}
	windows, err := c.Split(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("distill: split %s: %w", source, err)
	}
	out := make([]Passage, len(windows))
	for i, w := range windows {
		out[i] = Passage{Text: w.Text, Source: source, Index: i}
	}
	return out, nil
}
