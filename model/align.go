package model

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Span is a range of a text in Unicode code points, end exclusive, as a
// Python slice: []rune(text)[Start:End].
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Aligner finds the occurrences of mentions in one text. It builds the
// indexes its fallbacks need on first use, so aligning many mentions in one
// text costs little more than searching for them. An Aligner is not safe for
// concurrent use.
//
// The text must be valid UTF-8 (the [Recognizer] refuses other text).
type Aligner struct {
	text  string
	ascii bool
	n     int // runes in text

	// runeByte[i] is the byte offset of rune i (non-ASCII texts only).
	runeByte []int32

	// folded is the text with every rune case-folded; foldedRune maps a
	// byte offset of folded (at a rune start) to the rune index in text.
	folded     string
	foldedRune []int32
	foldedOK   bool

	// squeezed is folded without white space; squeezedRune maps its byte
	// offsets to rune indexes in text.
	squeezed     string
	squeezedRune []int32
	squeezedOK   bool

	// scratch holds the matches of the three tiers between calls, so
	// that Find allocates only its result.
	scratch [3][]match
}

// NewAligner returns an Aligner for text.
func NewAligner(text string) *Aligner {
	a := &Aligner{text: text, ascii: isASCII(text)}
	if a.ascii {
		a.n = len(text)
		return a
	}
	a.runeByte = make([]int32, 0, len(text)+1)
	for i := range text {
		a.runeByte = append(a.runeByte, int32(i))
	}
	a.n = len(a.runeByte)
	a.runeByte = append(a.runeByte, int32(len(text)))
	return a
}

// Text returns the text the Aligner searches.
func (a *Aligner) Text() string { return a.text }

// Len returns the text's length in code points.
func (a *Aligner) Len() int { return a.n }

// Slice returns the text of a span.
func (a *Aligner) Slice(s Span) string {
	if a.ascii {
		return a.text[s.Start:s.End]
	}
	return a.text[a.runeByte[s.Start]:a.runeByte[s.End]]
}

// match is an occurrence in rune indexes of the text.
type match struct {
	span  Span
	whole bool
}

// Find returns every occurrence of mention in the text, left to right and
// not overlapping, from the best tier that has any:
//
//  1. the exact string, as whole words;
//  2. ignoring case, as whole words;
//  3. ignoring case and white space, as whole words ("classifiers" finds
//     "classifier s" in a space-tokenised text);
//  4. to 6. the same three, inside words.
//
// A match is "whole words" when it does not cut a word in two at either
// end. White space around the mention is ignored. Find returns nil when
// the mention is empty, is not valid UTF-8, or
// does not occur at all: the caller keeps it as unaligned and never invents
// a span.
func (a *Aligner) Find(mention string) []Span {
	mention = strings.TrimFunc(mention, isSpaceRune)
	if mention == "" || !utf8.ValidString(mention) {
		return nil
	}
	exact := a.searchExact(a.scratch[0][:0], mention)
	a.scratch[0] = exact
	if spans := pick(exact, true); spans != nil {
		return spans
	}
	fm := foldString(mention)
	a.buildFolded()
	ci := a.search(a.scratch[1][:0], a.folded, fm, a.foldedRune)
	a.scratch[1] = ci
	if spans := pick(ci, true); spans != nil {
		return spans
	}
	sm := removeSpace(fm)
	var ws []match
	if sm != "" {
		a.buildSqueezed()
		ws = a.search(a.scratch[2][:0], a.squeezed, sm, a.squeezedRune)
		a.scratch[2] = ws
		if spans := pick(ws, true); spans != nil {
			return spans
		}
	}
	for _, tier := range [][]match{exact, ci, ws} {
		if spans := pick(tier, false); spans != nil {
			return spans
		}
	}
	return nil
}

// pick returns the spans of the whole-word matches, or of all matches.
func pick(ms []match, wholeOnly bool) []Span {
	var spans []Span
	for _, m := range ms {
		if !wholeOnly || m.whole {
			spans = append(spans, m.span)
		}
	}
	return spans
}

// searchExact appends to out the matches of mention in the text itself.
func (a *Aligner) searchExact(out []match, mention string) []match {
	from, fromRune := 0, 0
	for from <= len(a.text) {
		i := strings.Index(a.text[from:], mention)
		if i < 0 {
			break
		}
		b := from + i
		e := b + len(mention)
		var s Span
		if a.ascii {
			s = Span{b, e}
		} else {
			start := fromRune + utf8.RuneCountInString(a.text[from:b])
			s = Span{start, start + utf8.RuneCountInString(mention)}
		}
		out = append(out, match{s, a.isWhole(s)})
		from, fromRune = e, s.End
	}
	return out
}

// search appends to out the matches of needle in hay (a derived string of
// the text), each mapped back to rune indexes of the text through runeOf
// (nil: identity).
func (a *Aligner) search(out []match, hay, needle string, runeOf []int32) []match {
	from := 0
	for from <= len(hay) {
		i := strings.Index(hay[from:], needle)
		if i < 0 {
			break
		}
		b := from + i
		e := b + len(needle)
		var s Span
		if runeOf == nil {
			s = Span{b, e}
		} else {
			_, last := utf8.DecodeLastRuneInString(hay[:e])
			s = Span{int(runeOf[b]), int(runeOf[e-last]) + 1}
		}
		out = append(out, match{s, a.isWhole(s)})
		from = e
	}
	return out
}

func (a *Aligner) runeAt(i int) rune {
	if a.ascii {
		return rune(a.text[i])
	}
	r, _ := utf8.DecodeRuneInString(a.text[a.runeByte[i]:])
	return r
}

// isWhole reports whether s cuts no word in two.
func (a *Aligner) isWhole(s Span) bool {
	if s.Start > 0 && isWordRune(a.runeAt(s.Start-1)) && isWordRune(a.runeAt(s.Start)) {
		return false
	}
	if s.End < a.n && isWordRune(a.runeAt(s.End-1)) && isWordRune(a.runeAt(s.End)) {
		return false
	}
	return true
}

func (a *Aligner) buildFolded() {
	if a.foldedOK {
		return
	}
	a.foldedOK = true
	if a.ascii {
		a.folded = foldASCII(a.text)
		return // byte offsets are rune indexes
	}
	var b strings.Builder
	b.Grow(len(a.text))
	a.foldedRune = make([]int32, 0, len(a.text)+1)
	ri := int32(0)
	for _, r := range a.text {
		f := foldRune(r)
		n := utf8.RuneLen(f)
		for range n {
			a.foldedRune = append(a.foldedRune, ri)
		}
		b.WriteRune(f)
		ri++
	}
	a.foldedRune = append(a.foldedRune, ri)
	a.folded = b.String()
}

func (a *Aligner) buildSqueezed() {
	if a.squeezedOK {
		return
	}
	a.squeezedOK = true
	if a.ascii {
		a.buildFolded()
		f := a.folded
		buf := make([]byte, 0, len(f))
		a.squeezedRune = make([]int32, 0, len(f)+1)
		for i := 0; i < len(f); i++ {
			if c := f[i]; c == ' ' || c >= '\t' && c <= '\r' || c >= 0x1C && c <= 0x1F {
				continue
			}
			buf = append(buf, f[i])
			a.squeezedRune = append(a.squeezedRune, int32(i))
		}
		a.squeezedRune = append(a.squeezedRune, int32(len(f)))
		a.squeezed = string(buf)
		return
	}
	var b strings.Builder
	b.Grow(len(a.text))
	a.squeezedRune = make([]int32, 0, len(a.text)+1)
	ri := int32(0)
	for _, r := range a.text {
		if !isSpaceRune(r) {
			f := foldRune(r)
			for range utf8.RuneLen(f) {
				a.squeezedRune = append(a.squeezedRune, ri)
			}
			b.WriteRune(f)
		}
		ri++
	}
	a.squeezedRune = append(a.squeezedRune, ri)
	a.squeezed = b.String()
}

// RuneOffset converts a byte offset of the text (at a rune boundary) to a
// code-point offset.
func (a *Aligner) RuneOffset(byteOff int) int {
	if a.ascii {
		return byteOff
	}
	return sort.Search(len(a.runeByte), func(i int) bool { return int(a.runeByte[i]) >= byteOff })
}

// ByteOffset converts a code-point offset of the text to a byte offset.
func (a *Aligner) ByteOffset(runeOff int) int {
	if a.ascii {
		return runeOff
	}
	return int(a.runeByte[runeOff])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldRune maps r to one representative of its simple case-folding orbit
// (the smallest rune in it), so that two runes fold equal exactly when
// strings.EqualFold would call them equal. Folding is rune for rune, so
// offsets survive it.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}

func foldASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func foldString(s string) string {
	if isASCII(s) {
		return foldASCII(s)
	}
	return strings.Map(foldRune, s)
}

func removeSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if isSpaceRune(r) {
			return -1
		}
		return r
	}, s)
}

func isSpaceRune(r rune) bool { return pyIsSpace(r) || unicode.IsSpace(r) }

var wordByte = func() (t [utf8.RuneSelf]bool) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// isWordRune reports whether r is part of a word: a letter, a digit, a
// combining mark or "_".
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return wordByte[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || unicode.Is(unicode.No, r) || unicode.Is(unicode.Nl, r)
}
