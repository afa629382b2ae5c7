package model

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAlignerFind(t *testing.T) {
	cases := []struct {
		name, text, mention string
		want                []string // the text at each span, in order
		spans               []Span   // checked when set
	}{
		{"exact", "Ada Lovelace met Babbage.", "Ada Lovelace", []string{"Ada Lovelace"}, []Span{{0, 12}}},
		{"every occurrence", "Paris, then Paris again.", "Paris", []string{"Paris", "Paris"}, []Span{{0, 5}, {12, 17}}},
		{"whole words beat a part of a word", "Pineapple and Apple", "Apple", []string{"Apple"}, []Span{{14, 19}}},
		{"whole words even when a part comes first", "party art", "art", []string{"art"}, []Span{{6, 9}}},
		{"case differs", "APPLE INC. sued", "Apple Inc.", []string{"APPLE INC."}, nil},
		{"exact case wins over other case", "apple Apple", "Apple", []string{"Apple"}, []Span{{6, 11}}},
		{"space-tokenised text", "include naive Bayes classifier s , Gaussian", "naive Bayes classifiers", []string{"naive Bayes classifier s"}, nil},
		{"white space differs", "New  York\tCity", "New York City", []string{"New  York\tCity"}, nil},
		{"white space and case", "the U.S . Navy", "u.s. navy", []string{"U.S . Navy"}, nil},
		{"white space whole words beat an exact part", "subclassifiers and classifier s", "classifiers", []string{"classifier s"}, nil},
		{"part of a word as a last resort", "GPT-4-based models", "model", []string{"model"}, []Span{{12, 17}}},
		{"punctuation edges are whole", "(IBM), IBM's", "IBM", []string{"IBM", "IBM"}, nil},
		{"unicode offsets", "Zoë lives in Zürich.", "Zürich", []string{"Zürich"}, []Span{{13, 19}}},
		{"astral plane", "🇨🇭 Bern 😀 Bern", "Bern", []string{"Bern", "Bern"}, []Span{{3, 7}, {10, 14}}},
		{"unicode case", "ÉCOLE NORMALE", "École Normale", []string{"ÉCOLE NORMALE"}, nil},
		{"kelvin sign folds", "300 \u212a", "300 k", []string{"300 \u212a"}, nil},
		{"combining mark is part of the word", "Jose\u0301 Jose", "Jose", []string{"Jose"}, []Span{{6, 10}}},
		{"surrounding spaces ignored", "in Paris today", "  Paris ", []string{"Paris"}, []Span{{3, 8}}},
		{"absent", "Ada Lovelace", "Grace Hopper", nil, nil},
		{"empty mention", "Ada", "", nil, nil},
		{"blank mention", "Ada", " \t", nil, nil},
		{"invalid UTF-8 mention", "é", "\xa9", nil, nil},
		{"lone surrogate (WTF-8) mention", "abc", "\xed\xa0\x80", nil, nil},
		{"mention longer than text", "Ada", "Ada Lovelace", nil, nil},
		{"overlapping occurrences are not doubled", "aaaa", "aa", []string{"aa", "aa"}, []Span{{0, 2}, {2, 4}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAligner(c.text)
			spans := a.Find(c.mention)
			var got []string
			runes := []rune(c.text)
			for _, s := range spans {
				got = append(got, a.Slice(s))
				if string(runes[s.Start:s.End]) != a.Slice(s) {
					t.Errorf("Slice(%v) = %q but the runes say %q", s, a.Slice(s), string(runes[s.Start:s.End]))
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("Find(%q) in %q = %q (%v), want %q", c.mention, c.text, got, spans, c.want)
			}
			if c.spans != nil && !slices.Equal(spans, c.spans) {
				t.Fatalf("spans %v, want %v", spans, c.spans)
			}
		})
	}
}

func TestAlignerOffsets(t *testing.T) {
	text := "aé😀b"
	a := NewAligner(text)
	if a.Len() != 4 {
		t.Fatalf("Len = %d", a.Len())
	}
	for r, b := range []int{0, 1, 3, 7, 8} {
		if got := a.ByteOffset(r); got != b {
			t.Errorf("ByteOffset(%d) = %d, want %d", r, got, b)
		}
		if got := a.RuneOffset(b); got != r {
			t.Errorf("RuneOffset(%d) = %d, want %d", b, got, r)
		}
	}
	if a.Text() != text {
		t.Error("Text")
	}
}

// checkSpans checks the invariants of Find's result for any text and
// mention.
func checkSpans(t *testing.T, text, mention string, spans []Span) {
	t.Helper()
	a := NewAligner(text)
	runes := []rune(text)
	want := removeSpace(foldString(strings.TrimFunc(mention, isSpaceRune)))
	prevEnd := 0
	for _, s := range spans {
		if s.Start < prevEnd || s.End <= s.Start || s.End > len(runes) {
			t.Fatalf("bad span %v (previous end %d, %d runes) for %q in %q", s, prevEnd, len(runes), mention, text)
		}
		prevEnd = s.End
		got := string(runes[s.Start:s.End])
		if got != a.Slice(s) {
			t.Fatalf("Slice(%v) = %q, runes %q", s, a.Slice(s), got)
		}
		if removeSpace(foldString(got)) != want {
			t.Fatalf("span %v holds %q, which does not match %q", s, got, mention)
		}
	}
	m := strings.TrimFunc(mention, isSpaceRune)
	if m != "" && utf8.ValidString(m) && strings.Contains(text, m) && len(spans) == 0 {
		t.Fatalf("%q occurs in %q but Find gave nothing", m, text)
	}
}

func FuzzAligner(f *testing.F) {
	f.Add("include naive Bayes classifier s , Gaussian", "naive Bayes classifiers")
	f.Add("Zoë lives in Zürich.", "zürich")
	f.Add("🇨🇭 Bern 😀 Bern", "bern")
	f.Add("a\u0301a a", "A")
	f.Add("K\u212ak", "kk")
	f.Fuzz(func(t *testing.T, text, mention string) {
		if !utf8.ValidString(text) {
			t.Skip() // the Recognizer refuses such text before aligning
		}
		checkSpans(t, text, mention, NewAligner(text).Find(mention))
	})
}
