package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// quarterCounter is a test double of a tokenizer: each white-space
// separated word takes one token per four code points, rounded up.
type quarterCounter struct{ calls int }

func (c *quarterCounter) TokenCount(ctx context.Context, text string) (int, error) {
	c.calls++
	n := 0
	for _, w := range strings.FieldsFunc(text, isSpaceRune) {
		n += (utf8.RuneCountInString(w) + 3) / 4
	}
	return n, nil
}

// checkWindows checks what every split must satisfy: windows fit the
// budget, lie where they say in the text, are trimmed, cover every
// non-space character, and move forward.
func checkWindows(t *testing.T, text string, c *Chunker, ws []Window) {
	t.Helper()
	runes := []rune(text)
	covered := make([]bool, len(runes))
	prevStart := -1
	for i, w := range ws {
		n, _ := c.Counter.TokenCount(context.Background(), w.Text)
		if n > c.Budget {
			t.Errorf("window %d has %d tokens, budget %d", i, n, c.Budget)
		}
		end := w.Start + utf8.RuneCountInString(w.Text)
		if w.Start < 0 || end > len(runes) || string(runes[w.Start:end]) != w.Text {
			t.Fatalf("window %d at %d does not match the text", i, w.Start)
		}
		if w.Text == "" || strings.TrimFunc(w.Text, isSpaceRune) != w.Text {
			t.Errorf("window %d is not trimmed: %q", i, w.Text)
		}
		if w.Start <= prevStart {
			t.Errorf("window %d starts at %d, not after %d", i, w.Start, prevStart)
		}
		prevStart = w.Start
		for k := w.Start; k < end; k++ {
			covered[k] = true
		}
	}
	for k, r := range runes {
		if !covered[k] && !isSpaceRune(r) {
			t.Fatalf("character %d (%q) is in no window", k, r)
		}
	}
}

func TestChunkerShortText(t *testing.T) {
	c := &Chunker{Counter: &quarterCounter{}, Budget: 100, Overlap: 10}
	ws, err := c.Split(context.Background(), "  \tAda Lovelace wrote.\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Text != "Ada Lovelace wrote." || ws[0].Start != 3 {
		t.Fatalf("windows %+v", ws)
	}
	if c.Counter.(*quarterCounter).calls != 0 {
		t.Error("a text shorter than the budget in bytes was counted")
	}
}

func TestChunkerSentences(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "Sentence number %d mentions Zürich and Ōsaka. ", i)
	}
	text := b.String()
	c := &Chunker{Counter: &quarterCounter{}, Budget: 40, Overlap: 12}
	ws, err := c.Split(context.Background(), text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) < 5 {
		t.Fatalf("only %d windows", len(ws))
	}
	checkWindows(t, text, c, ws)
	for i, w := range ws {
		if !strings.HasPrefix(w.Text, "Sentence number ") || !strings.HasSuffix(w.Text, "Ōsaka.") {
			t.Errorf("window %d does not hold whole sentences: %q", i, w.Text)
		}
		if i > 0 {
			prevEnd := ws[i-1].Start + utf8.RuneCountInString(ws[i-1].Text)
			if w.Start >= prevEnd {
				t.Errorf("windows %d and %d do not overlap", i-1, i)
			}
			shared := string([]rune(text)[w.Start:prevEnd])
			if n, _ := c.Counter.TokenCount(context.Background(), shared); n > c.Overlap {
				t.Errorf("windows %d and %d share %d tokens, over %d", i-1, i, n, c.Overlap)
			}
		}
	}
}

func TestChunkerLongWordsAndNoSentences(t *testing.T) {
	cases := map[string]string{
		"one huge word":     strings.Repeat("x", 500),
		"huge unicode word": strings.Repeat("日本語", 200),
		"no sentence ends":  strings.Repeat("word ", 300),
		"lines":             strings.Repeat("a short line\n", 100),
		"cjk sentences":     strings.Repeat("東京は日本の首都です。", 50),
		"mixed":             "Intro. " + strings.Repeat("y", 300) + " tail words here! " + strings.Repeat("z ", 80),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			c := &Chunker{Counter: &quarterCounter{}, Budget: 20, Overlap: 5}
			ws, err := c.Split(context.Background(), text)
			if err != nil {
				t.Fatal(err)
			}
			checkWindows(t, text, c, ws)
		})
	}
}

func TestChunkerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"Ada", "Lovelace", "é", "Zürich", "😀", "a", "verylongwordindeed", ".", "!", "?", "\n", "。", "\"", "  "}
	for i := range 300 {
		var b strings.Builder
		for range rng.IntN(400) {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(3) > 0 {
				b.WriteByte(' ')
			}
		}
		text := b.String()
		c := &Chunker{Counter: &quarterCounter{}, Budget: 2 + rng.IntN(60), Overlap: rng.IntN(30)}
		ws, err := c.Split(context.Background(), text)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkWindows(t, text, c, ws) })
	}
}

type failingCounter struct{}

func (failingCounter) TokenCount(context.Context, string) (int, error) {
	return 0, errors.New("tokenizer down")
}

func TestChunkerErrors(t *testing.T) {
	if _, err := (&Chunker{Counter: &quarterCounter{}, Budget: 1}).Split(context.Background(), "abc"); err == nil {
		t.Error("a budget of 1 was accepted")
	}
	_, err := (&Chunker{Counter: failingCounter{}, Budget: 4}).Split(context.Background(), "a long text that needs counting")
	if err == nil || !strings.Contains(err.Error(), "tokenizer down") {
		t.Errorf("err = %v", err)
	}
}
