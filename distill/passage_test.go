package distill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestWhitespaceTokens(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"   \t\n", 0},
		{"one", 1},
		{"  two  words ", 2},
		{"tab\tnew\nline\u00a0nbsp", 4},
		{"unit\x1fsep", 2}, // Python's isspace holds for U+001F
		{"García Márquez, 1927.", 3},
	}
	for _, tt := range tests {
		got, err := WhitespaceTokens{}.TokenCount(context.Background(), tt.text)
		if err != nil || got != tt.want {
			t.Errorf("TokenCount(%q) = %d, %v; want %d", tt.text, got, err, tt.want)
		}
	}
}

// randomDocument makes a document of sentences of 3 to 12 words, with
// irregular white space and an occasional paragraph break.
func randomDocument(rng *rand.Rand, sentences int) string {
	var b strings.Builder
	for s := range sentences {
		n := 3 + rng.IntN(10)
		for w := range n {
			if w > 0 {
				b.WriteString([]string{" ", " ", "  ", "\t"}[rng.IntN(4)])
			}
			fmt.Fprintf(&b, "w%d_%d", s, w)
		}
		b.WriteString([]string{".", "!", "?", `."`}[rng.IntN(4)])
		b.WriteString([]string{" ", " ", "\n\n", "  "}[rng.IntN(4)])
	}
	return b.String()
}

func TestSplitKeepsWordsWithinBudget(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 1))
		doc := randomDocument(rng, 1+rng.IntN(40))
		budget := 2 + rng.IntN(40)
		ps, err := Split(ctx, WhitespaceTokens{}, "doc", doc, budget)
		if err != nil {
			t.Fatal(err)
		}
		var words []string
		for i, p := range ps {
			n := len(strings.Fields(p.Text))
			if n > budget || n == 0 {
				t.Errorf("seed %d: passage %d has %d words, budget %d", seed, i, n, budget)
			}
			if p.Index != i || p.Source != "doc" {
				t.Errorf("seed %d: passage %d is %+v", seed, i, p)
			}
			if p.Text != strings.TrimSpace(p.Text) {
				t.Errorf("seed %d: passage %d has white space at its ends: %q", seed, i, p.Text)
			}
			words = append(words, strings.Fields(p.Text)...)
		}
		if want := strings.Fields(doc); !slices.Equal(words, want) {
			t.Errorf("seed %d, budget %d: passages hold %d words, document %d; not the same sequence", seed, budget, len(words), len(want))
		}
	}
}

func TestSplitPrefersSentenceBoundaries(t *testing.T) {
	// Three sentences of 4 words each; a budget of 9 fits two of them,
	// and the first passage must not take a word of the third to fill
	// itself up to 9 words.
	doc := "Ada met Bob there. Bob met Cy later. Cy went home alone."
	ps, err := Split(context.Background(), WhitespaceTokens{}, "d", doc, 9)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Text)
	}
	want := []string{"Ada met Bob there. Bob met Cy later.", "Cy went home alone."}
	if !slices.Equal(got, want) {
		t.Errorf("Split = %q; want %q", got, want)
	}

	// A sentence longer than the budget is cut between words.
	ps, err = Split(context.Background(), WhitespaceTokens{}, "d", "one two three four five", 2)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, p := range ps {
		got = append(got, p.Text)
	}
	if want := []string{"one two", "three four", "five"}; !slices.Equal(got, want) {
		t.Errorf("Split = %q; want %q", got, want)
	}
}

type failingCounter struct{}

var errCount = errors.New("count failed")

func (failingCounter) TokenCount(context.Context, string) (int, error) { return 0, errCount }

func TestSplitEdges(t *testing.T) {
	ctx := context.Background()
	for _, text := range []string{"", "  \n\t "} {
		ps, err := Split(ctx, WhitespaceTokens{}, "d", text, 10)
		if err != nil || len(ps) != 0 {
			t.Errorf("Split(%q) = %v, %v; want none", text, ps, err)
		}
	}
	for _, budget := range []int{-1, 0, 1} {
		if _, err := Split(ctx, WhitespaceTokens{}, "d", "a b c", budget); err == nil {
			t.Errorf("Split with budget %d: no error", budget)
		}
	}
	// A short text fits whole without asking the counter.
	ps, err := Split(ctx, WhitespaceTokens{}, "d", "  Short one.  ", 100)
	if err != nil || len(ps) != 1 || ps[0].Text != "Short one." {
		t.Errorf("Split(short) = %+v, %v", ps, err)
	}
	long := strings.Repeat("word ", 50)
	if _, err := Split(ctx, failingCounter{}, "d", long, 10); !errors.Is(err, errCount) {
		t.Errorf("Split with a failing counter: error %v; want it to wrap %v", err, errCount)
	}
}
