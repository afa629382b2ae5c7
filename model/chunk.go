package model

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Window is a piece of a document's text that fits one prompt.
type Window struct {
	// Text is the piece, without white space at either end.
	Text string
	// Start is the code-point offset of Text in the document.
	Start int
}

// TokenCounter counts tokens as the model's vocabulary would. Engine
// satisfies it.
type TokenCounter interface {
	TokenCount(ctx context.Context, text string) (int, error)
}

// Chunker splits texts into windows of at most Budget tokens each.
//
// Windows end at sentence boundaries where they can, else at white space,
// and only when a single word is longer than a window, inside it.
// Neighbouring windows overlap by whole sentences (or words) of at most
// Overlap tokens, so that an entity cut by one window's edge is whole in the
// next. It assumes, as holds for SentencePiece and byte-level BPE
// vocabularies, that no text takes more tokens than its length in bytes plus
// one.
type Chunker struct {
	// Counter counts tokens.
	Counter TokenCounter
	// Budget is the most tokens a window's text may take. Must be > 1.
	Budget int
	// Overlap is the most tokens that neighbouring windows share. It is
	// capped at Budget/2.
	Overlap int
}

// unit is a sentence, a word or a piece of a word: [start, end) in bytes,
// trailing white space included.
type unit struct {
	start, end int
	tokens     int
}

// Split returns the windows of text, in order. A text that fits the budget
// is one window.
func (c *Chunker) Split(ctx context.Context, text string) ([]Window, error) {
	if c.Budget < 2 {
		return nil, fmt.Errorf("chunk: budget of %d tokens is too small", c.Budget)
	}
	if len(text)+1 <= c.Budget {
		return c.windows(text, [][2]int{{0, len(text)}}), nil
	}
	n, err := c.Counter.TokenCount(ctx, text)
	if err != nil {
		return nil, err
	}
	if n <= c.Budget {
		return c.windows(text, [][2]int{{0, len(text)}}), nil
	}
	units, err := c.units(ctx, text)
	if err != nil {
		return nil, err
	}
	overlap := min(c.Overlap, c.Budget/2)
	var ranges [][2]int
	for first := 0; first < len(units); {
		// Pack greedily on the units' own counts.
		last, sum := first, units[first].tokens
		for last+1 < len(units) && sum+units[last+1].tokens <= c.Budget {
			last++
			sum += units[last].tokens
		}
		// Tokens do not quite add up across boundaries: check the
		// window as a whole, and drop units until it fits.
		for last > first {
			n, err := c.Counter.TokenCount(ctx, text[units[first].start:units[last].end])
			if err != nil {
				return nil, err
			}
			if n <= c.Budget {
				break
			}
			last--
		}
		ranges = append(ranges, [2]int{units[first].start, units[last].end})
		if last == len(units)-1 {
			break
		}
		// The next window starts at the earliest unit that keeps the
		// overlap within bounds and still lets the window advance.
		next, shared := last+1, 0
		for next-1 > first && shared+units[next-1].tokens <= overlap &&
			shared+units[next-1].tokens+units[last+1].tokens <= c.Budget {
			next--
			shared += units[next].tokens
		}
		first = next
	}
	return c.windows(text, ranges), nil
}

// windows turns byte ranges into trimmed windows with code-point starts.
func (c *Chunker) windows(text string, ranges [][2]int) []Window {
	out := make([]Window, 0, len(ranges))
	runeAt, byteAt := 0, 0
	for _, r := range ranges {
		piece := text[r[0]:r[1]]
		trimmed := strings.TrimLeftFunc(piece, isSpaceRune)
		start := r[0] + len(piece) - len(trimmed)
		trimmed = strings.TrimRightFunc(trimmed, isSpaceRune)
		if trimmed == "" {
			continue
		}
		// Ranges may overlap, so count from the nearest known point.
		if start < byteAt {
			runeAt, byteAt = 0, 0
		}
		runeAt += utf8.RuneCountInString(text[byteAt:start])
		byteAt = start
		out = append(out, Window{Text: trimmed, Start: runeAt})
	}
	return out
}

// units splits text into sentences, then splits any sentence over the
// budget into words, and any word over it into pieces.
func (c *Chunker) units(ctx context.Context, text string) ([]unit, error) {
	var out []unit
	for _, s := range splitSentences(text) {
		n, err := c.count(ctx, text[s[0]:s[1]])
		if err != nil {
			return nil, err
		}
		if n <= c.Budget {
			out = append(out, unit{s[0], s[1], n})
			continue
		}
		for _, w := range splitWords(text, s[0], s[1]) {
			n, err := c.count(ctx, text[w[0]:w[1]])
			if err != nil {
				return nil, err
			}
			if n <= c.Budget {
				out = append(out, unit{w[0], w[1], n})
				continue
			}
			// A "word" longer than a window: cut it at rune boundaries
			// into pieces that fit by the bytes-plus-one bound.
			for p := w[0]; p < w[1]; {
				end := min(p+c.Budget-1, w[1])
				for end > p && end < w[1] && !utf8.RuneStart(text[end]) {
					end--
				}
				if end == p { // a rune longer than the budget
					_, size := utf8.DecodeRuneInString(text[p:])
					end = p + size
				}
				n, err := c.count(ctx, text[p:end])
				if err != nil {
					return nil, err
				}
				out = append(out, unit{p, end, n})
				p = end
			}
		}
	}
	return out, nil
}

func (c *Chunker) count(ctx context.Context, s string) (int, error) {
	if strings.TrimFunc(s, isSpaceRune) == "" {
		return 0, nil
	}
	return c.Counter.TokenCount(ctx, s)
}

// splitSentences returns byte ranges of sentences, each with its trailing
// white space. A sentence ends at a line break, or after ".", "!", "?",
// "…" or their CJK forms (and any closing quotes or brackets) that white
// space follows.
func splitSentences(text string) [][2]int {
	var out [][2]int
	start := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		j := i + size
		end := -1
		switch r {
		case '\n':
			end = j
		case '.', '!', '?', '…', '。', '！', '？':
			for j < len(text) {
				q, qs := utf8.DecodeRuneInString(text[j:])
				if !strings.ContainsRune(`"')]}’”»`, q) {
					break
				}
				j += qs
			}
			if r == '。' || r == '！' || r == '？' {
				end = j
			} else if j < len(text) {
				if q, _ := utf8.DecodeRuneInString(text[j:]); isSpaceRune(q) {
					end = j
				}
			}
		}
		i = j
		if end < 0 {
			continue
		}
		// Take the white space that follows into this sentence.
		for i < len(text) {
			q, qs := utf8.DecodeRuneInString(text[i:])
			if !isSpaceRune(q) {
				break
			}
			i += qs
		}
		out = append(out, [2]int{start, i})
		start = i
	}
	if start < len(text) {
		out = append(out, [2]int{start, len(text)})
	}
	return out
}

// splitWords returns byte ranges of the words in text[from:to], each with
// its trailing white space.
func splitWords(text string, from, to int) [][2]int {
	var out [][2]int
	start := from
	inSpace := false
	for i, r := range text[from:to] {
		i += from
		sp := isSpaceRune(r)
		if inSpace && !sp {
			out = append(out, [2]int{start, i})
			start = i
		}
		inSpace = sp
	}
	if start < to {
		out = append(out, [2]int{start, to})
	}
	return out
}
