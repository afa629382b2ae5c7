package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// The fixed turns of a Pile-NER conversation.
const (
	// humanRole and gptRole are the speakers of the turns.
	humanRole = "human"
	gptRole   = "gpt"
	// passagePrefix starts the first human turn, before the passage.
	passagePrefix = "Text: "
	// acknowledgement is the first gpt turn.
	acknowledgement = "I've read this text."
	// questionPrefix and questionSuffix surround the entity type of a
	// question.
	questionPrefix = "What describes "
	questionSuffix = " in the text?"
)

// question returns the question turn for an entity type.
func question(entityType string) string {
	return questionPrefix + entityType + questionSuffix
}

// Labelled is a passage with its filtered teacher tuples.
type Labelled struct {
	Passage Passage
	// Tuples are the teacher's tuples after Filter: mentions in the
	// passage, types normalised, no repeats.
	Tuples []Tuple
	// ID is the record's id; empty means "{Source}#{Index}".
	ID string
	// Named are the normalised types the teacher named for this passage,
	// those of the tuples Filter dropped included. They are never drawn as
	// its negatives: a type whose mention was dropped (not verbatim, say)
	// may still be in the passage, and "[]" would teach the student to
	// miss it.
	Named []string
}

// NegativePolicy says how many negative types a passage gets: Count fixed,
// or Ratio × its positive types (rounded half up); Count wins when both
// are set; both zero means none. Negative values count as zero.
type NegativePolicy struct {
	Count int
	Ratio float64
}

// n returns the number of negative types for a passage with the given
// number of positive types.
func (p NegativePolicy) n(positives int) int {
	switch {
	case p.Count > 0:
		return p.Count
	case p.Ratio > 0:
		return int(math.Floor(p.Ratio*float64(positives) + 0.5))
	}
	return 0
}

// BuildOptions configure Build.
type BuildOptions struct {
	// Negatives is how many negative types each passage gets.
	Negatives NegativePolicy
	// Seed seeds the negative draws and the shuffles of question/answer
	// pairs.
	Seed uint64
}

// Record is one Pile-NER conversation record.
type Record struct {
	ID            string `json:"id"`
	Conversations []Turn `json:"conversations"`
}

// Turn is one message of a conversation.
type Turn struct {
	From  string `json:"from"` // "human" or "gpt"
	Value string `json:"value"`
}

// TypeFrequencies counts, over the whole dataset, the passages in which
// each type occurs (a type counted once per passage).
func TypeFrequencies(ls []Labelled) map[string]int {
	freq := make(map[string]int)
	for _, l := range ls {
		seen := make(map[string]bool, len(l.Tuples))
		for _, t := range l.Tuples {
			if !seen[t.Type] {
				seen[t.Type] = true
				freq[t.Type]++
			}
		}
	}
	return freq
}

// Build turns labelled passages into records, in order:
//   - human "Text: {passage}", gpt "I've read this text.";
//   - then per positive type (types in order of first appearance in the
//     tuples): human "What describes {type} in the text?", gpt the JSON
//     list of its mentions (order of first appearance, repeats removed,
//     see FormatAnswer);
//   - plus negative types, as many as opts.Negatives says, drawn by
//     NewNegativeSampler(TypeFrequencies(ls)) excluding the passage's
//     positive types and its Named ones, each answered "[]";
//   - the question/answer pairs shuffled by an rng seeded from
//     (opts.Seed, the passage's position in ls), so that one passage's
//     draws and shuffle do not depend on how many draws earlier passages
//     made.
//
// Passages with no pairs at all (no positives and no negatives) are
// skipped (a UniNER reader needs at least one question), counted in the
// second return.
func Build(ls []Labelled, opts BuildOptions) (records []Record, skipped int) {
	sampler := NewNegativeSampler(TypeFrequencies(ls))
	for pos, l := range ls {
		types, mentions := groupTuples(l.Tuples)
		rng := rand.New(rand.NewPCG(opts.Seed, mix64(uint64(pos)^0x6e65672d73616d70)))
		exclude := make(map[string]bool, len(types)+len(l.Named))
		for _, t := range types {
			exclude[t] = true
		}
		for _, t := range l.Named {
			exclude[t] = true
		}
		negatives := sampler.Draw(rng, opts.Negatives.n(len(types)), exclude)
		pairs := make([][2]string, 0, len(types)+len(negatives))
		for _, t := range types {
			pairs = append(pairs, [2]string{t, FormatAnswer(mentions[t])})
		}
		for _, t := range negatives {
			pairs = append(pairs, [2]string{t, "[]"})
		}
		if len(pairs) == 0 {
			skipped++
			continue
		}
		rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		turns := make([]Turn, 0, 2+2*len(pairs))
		turns = append(turns,
			Turn{From: humanRole, Value: passagePrefix + l.Passage.Text},
			Turn{From: gptRole, Value: acknowledgement})
		for _, p := range pairs {
			turns = append(turns,
				Turn{From: humanRole, Value: question(p[0])},
				Turn{From: gptRole, Value: p[1]})
		}
		id := l.ID
		if id == "" {
			id = fmt.Sprintf("%s#%d", l.Passage.Source, l.Passage.Index)
		}
		records = append(records, Record{ID: id, Conversations: turns})
	}
	return records, skipped
}

// groupTuples returns the tuples' types in order of first appearance, and
// each type's mentions in order of first appearance, without repeats.
func groupTuples(tuples []Tuple) (types []string, mentions map[string][]string) {
	mentions = make(map[string][]string)
	seen := make(map[Tuple]bool, len(tuples))
	for _, t := range tuples {
		if _, ok := mentions[t.Type]; !ok {
			types = append(types, t.Type)
			mentions[t.Type] = nil
		}
		if !seen[t] {
			seen[t] = true
			mentions[t.Type] = append(mentions[t.Type], t.Mention)
		}
	}
	return types, mentions
}

// FormatAnswer renders a mention list as Python's json.dumps does with its
// defaults: `["a", "b"]` with ", " between items, non-ASCII as \uXXXX
// (surrogate pairs above U+FFFF), and the escapes \" \\ \n \r \t \b \f,
// other control characters (and DEL) as \u00XX. It gives `[]` for no
// mentions. A surrogate code point encoded as WTF-8 (as model.ParseOfficial
// decodes a lone surrogate escape) is written back as its \uXXXX escape;
// other invalid UTF-8 bytes become \ufffd.
func FormatAnswer(mentions []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, m := range mentions {
		if i > 0 {
			b.WriteString(", ")
		}
		writePyJSONString(&b, m)
	}
	b.WriteByte(']')
	return b.String()
}

// writePyJSONString writes s as Python's json.dumps(s, ensure_ascii=True).
func writePyJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[(r>>shift)&0xF])
		}
	}
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7F && c != '"' && c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if i+2 < len(s) && c == 0xED && s[i+1]&0xE0 == 0xA0 && s[i+2]&0xC0 == 0x80 {
				// A WTF-8 surrogate: ED A0-BF 80-BF.
				r, size = 0xD000|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F), 3
			} else {
				r = utf8.RuneError
			}
		}
		i += size
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r > 0xFFFF {
				r -= 0x10000
				u(0xD800 + r>>10)
				u(0xDC00 + r&0x3FF)
			} else {
				u(r)
			}
		}
	}
	b.WriteByte('"')
}
