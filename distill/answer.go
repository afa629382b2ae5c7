package distill

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Instruction is the paper's teacher instruction, verbatim.
const Instruction = `Given a passage, your task is to extract all entities and identify their entity types. The output should be in a list of tuples of the following format: [("entity 1", "type of entity 1"), ... ].`

// The tuple of Instruction's format example, which a teacher that repeats
// the instruction puts before its own list.
const (
	exampleMention = "entity 1"
	exampleType    = "type of entity 1"
)

// Tuple is one (mention, type) pair of a teacher's answer.
type Tuple struct {
	Mention, Type string
}

// ParseTuples reads a teacher's answer robustly: the first Python-style
// list of 2-tuples in it, with strings quoted by ' or " (escapes \' \" \\
// \n \t \uXXXX and the rest handled as Python would), white space anywhere,
// chatter before and after the list, a trailing comma, a missing closing
// bracket at the end of the text. A malformed tuple (wrong arity, unquoted
// item, non-string) is skipped, and the rest is kept. It returns the tuples
// and the number skipped. JSON-style [["a","b"], ...] lists are read too,
// and a fenced ```python block is chatter like any other.
//
// The list is the first "[" whose items include at least one tuple that
// opens with a quoted string, and that is not just Instruction's format
// example repeated; brackets in chatter ("see [1]", "[is]") are passed
// over. A list cut short keeps the tuples completed before the cut and
// counts an unfinished last one as skipped; a last tuple with both strings
// complete and only its closing bracket missing is kept.
//
// Beyond Python's syntax, a single-quoted string may hold an unescaped
// apostrophe ('O'Brien'): a quote that white space and then ",", ")", "]"
// or a line end do not follow is taken as part of the string. A \/ escape
// gives "/" as in JSON; a surrogate pair of \u escapes joins into one
// character, and a lone surrogate becomes U+FFFD.
func ParseTuples(answer string) (tuples []Tuple, skipped int) {
	for at := 0; at < len(answer); at++ {
		i := strings.IndexByte(answer[at:], '[')
		if i < 0 {
			break
		}
		at += i
		ts, sk, ok := parseTupleList(answer, at)
		if ok && !(len(ts) == 1 && ts[0] == (Tuple{Mention: exampleMention, Type: exampleType})) {
			return ts, sk
		}
	}
	return nil, 0
}

// element parse outcomes.
type elemStatus int

const (
	elemOK  elemStatus = iota // a well-formed element
	elemBad                   // not a 2-tuple of strings
	elemCut                   // the text ends inside the element
)

// parseTupleList reads the list whose "[" is at s[at]. ok reports whether
// any of its items looks like a tuple of strings.
func parseTupleList(s string, at int) (tuples []Tuple, skipped int, ok bool) {
	i := at + 1
	for {
		i = skipSpace(s, i)
		if i >= len(s) || s[i] == ']' {
			return tuples, skipped, ok
		}
		switch c := s[i]; {
		case c == ',': // a trailing or doubled comma
			i++
			continue
		case c == '(' || c == '[':
			if j := skipSpace(s, i+1); j < len(s) && (s[j] == '"' || s[j] == '\'') {
				ok = true
			}
			t, next, st := parseTuple(s, i)
			switch st {
			case elemOK:
				tuples = append(tuples, t)
				i = next
			case elemCut:
				return tuples, skipped + 1, ok
			default:
				skipped++
				if next < 0 {
					next = resyncTuple(s, i)
				}
				i = next
			}
		default: // an unquoted word, a number, a bare string …
			skipped++
			i = skipElement(s, i)
		}
		i = skipSpace(s, i)
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
}

// parseTuple reads the tuple whose "(" or "[" is at s[at]. next is the
// index after it, or -1 when a malformed tuple's end is unknown because a
// string in it is broken.
func parseTuple(s string, at int) (t Tuple, next int, st elemStatus) {
	closer := byte(')')
	if s[at] == '[' {
		closer = ']'
	}
	var items []string
	// atEnd handles the text ending after the items read so far.
	atEnd := func() (Tuple, int, elemStatus) {
		if len(items) == 2 {
			return Tuple{Mention: items[0], Type: items[1]}, len(s), elemOK
		}
		return Tuple{}, len(s), elemCut
	}
	j := at + 1
	for {
		j = skipSpace(s, j)
		if j >= len(s) {
			return atEnd()
		}
		if s[j] == closer {
			j++
			break
		}
		if s[j] != '"' && s[j] != '\'' {
			// A number or a bare word: the quotes so far are sound.
			return Tuple{}, skipElement(s, at), elemBad
		}
		v, n, st := pyString(s, j)
		if st == elemCut {
			return Tuple{}, len(s), elemCut
		}
		if st != elemOK {
			return Tuple{}, -1, elemBad
		}
		items = append(items, v)
		j = skipSpace(s, n)
		if j >= len(s) {
			return atEnd()
		}
		switch s[j] {
		case ',':
			j++
		case closer:
			j++
			if len(items) != 2 {
				return Tuple{}, j, elemBad
			}
			return Tuple{Mention: items[0], Type: items[1]}, j, elemOK
		default:
			return Tuple{}, -1, elemBad
		}
	}
	if len(items) != 2 {
		return Tuple{}, j, elemBad
	}
	return Tuple{Mention: items[0], Type: items[1]}, j, elemOK
}

// resyncTuple returns the end of the malformed tuple whose bracket is at
// s[at], where its quotes cannot be trusted: after the first closing
// bracket of its kind that the list's end, the text's end, or a comma and
// the next tuple's opening bracket follow.
func resyncTuple(s string, at int) int {
	closer := byte(')')
	if s[at] == '[' {
		closer = ']'
	}
	for j := at + 1; j < len(s); j++ {
		if s[j] != closer {
			continue
		}
		k := skipSpace(s, j+1)
		if k < len(s) && s[k] == ',' {
			k = skipSpace(s, k+1)
			if k >= len(s) || s[k] == '(' || s[k] == '[' || s[k] == ']' {
				return j + 1
			}
			continue
		}
		if k >= len(s) || s[k] == ']' {
			return j + 1
		}
	}
	return len(s)
}

// skipElement returns the end of the list item that starts at s[i]: after
// its bracketed group, or at the "," or "]" that ends it.
func skipElement(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				if s[j] == ']' {
					return j
				}
				continue
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		case '"', '\'':
			// Skip a string that closes on the same line; a lone quote
			// is an ordinary character.
			for k := j + 1; k < len(s) && s[k] != '\n'; k++ {
				if s[k] == '\\' {
					k++
					continue
				}
				if s[k] == s[j] {
					j = k
					break
				}
			}
		}
	}
	return len(s)
}

// pyString decodes the quoted string at s[at] (see ParseTuples).
func pyString(s string, at int) (v string, next int, st elemStatus) {
	q := s[at]
	var b strings.Builder
	for j := at + 1; j < len(s); {
		c := s[j]
		switch {
		case c == q:
			if q == '\'' && !closesSingle(s, j+1) {
				b.WriteByte(c)
				j++
				continue
			}
			return b.String(), j + 1, elemOK
		case c == '\n':
			return "", 0, elemBad // Python: unterminated string literal
		case c != '\\':
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(s) {
			return "", 0, elemCut
		}
		e := s[j+1]
		j += 2
		switch e {
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '/':
			b.WriteByte('/') // JSON; Python would keep the backslash
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'a':
			b.WriteByte('\a')
		case '\n': // a line continuation
		case 'x', 'u', 'U':
			n := 2
			switch e {
			case 'u':
				n = 4
			case 'U':
				n = 8
			}
			r, ok := hexRune(s, j, n)
			if !ok {
				if j+n > len(s) && isHex(s[j:]) {
					return "", 0, elemCut
				}
				return "", 0, elemBad
			}
			j += n
			if e == 'u' && r >= 0xD800 && r <= 0xDBFF && j+6 <= len(s) && s[j] == '\\' && s[j+1] == 'u' {
				if r2, ok := hexRune(s, j+2, 4); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					j += 6
				}
			}
			if r > utf8.MaxRune {
				return "", 0, elemBad
			}
			b.WriteRune(r) // a lone surrogate becomes U+FFFD
		case '0', '1', '2', '3', '4', '5', '6', '7':
			k := j - 1
			for j < len(s) && j < k+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			r, _ := strconv.ParseUint(s[k:j], 8, 32)
			b.WriteRune(rune(r))
		default: // Python keeps an unknown escape as written
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return "", 0, elemCut
}

// closesSingle reports whether a single quote before s[k] closes its
// string: white space and then ",", ")", "]", a line end or the text's end
// follow it.
func closesSingle(s string, k int) bool {
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	return k >= len(s) || strings.IndexByte(",)]\r\n", s[k]) >= 0
}

func hexRune(s string, i, n int) (rune, bool) {
	if i+n > len(s) || !isHex(s[i:i+n]) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i:i+n], 16, 32)
	return rune(v), err == nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// skipSpace returns the index of the first non-white-space character of s
// from i.
func skipSpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isSpace(r) {
			break
		}
		i += n
	}
	return i
}

// NormalizeType normalises an entity type name: it trims it, collapses
// inner white space to single spaces and lower-cases it (Unicode-aware).
// Plural forms are kept as written: "people" stays "people",
// "Organizations" becomes "organizations".
func NormalizeType(t string) string {
	return strings.ToLower(strings.Join(strings.FieldsFunc(t, isSpace), " "))
}

// Default limits of FilterOptions.
const (
	DefaultMaxTypeRunes    = 50
	DefaultMaxMentionRunes = 256
)

// FilterOptions bound what Filter keeps.
type FilterOptions struct {
	// MaxTypeRunes is the longest type kept, in characters after
	// normalisation; 0 means DefaultMaxTypeRunes.
	MaxTypeRunes int
	// MaxMentionRunes is the longest mention kept, in characters after
	// trimming; 0 means DefaultMaxMentionRunes.
	MaxMentionRunes int
}

// FilterStats counts what Filter dropped, by reason.
type FilterStats struct {
	NotInPassage int `json:"not_in_passage"` // the mention is not a substring of the passage
	EmptyType    int `json:"empty_type"`     // the type is empty after normalisation
	LongType     int `json:"long_type"`      // the type is over MaxTypeRunes
	EmptyMention int `json:"empty_mention"`  // the mention is empty or white space
	LongMention  int `json:"long_mention"`   // the mention is over MaxMentionRunes
	Bracket      int `json:"bracket"`        // the mention holds "]" (see Filter)
	Duplicate    int `json:"duplicate"`      // the (mention, type) pair came before
}

// Dropped returns the number of tuples dropped for any reason.
func (s FilterStats) Dropped() int {
	return s.NotInPassage + s.EmptyType + s.LongType + s.EmptyMention + s.LongMention + s.Bracket + s.Duplicate
}

// Filter keeps the tuples whose mention occurs verbatim (byte-exact
// substring, after trimming white space at the mention's ends) in passage
// and whose normalised type is non-empty and within the limits. Mentions
// are trimmed and types normalised in the result; repeats of the same
// (mention, type) are dropped; order is kept. A mention that holds "]" is
// dropped too: UniNER's answer parser (model.ParseOfficial, as the
// official evaluation) takes the answer up to its first "]", so a student
// taught to say it would cut its own answers short. A tuple dropped for
// several reasons is counted once, under the first of: empty mention, long
// mention, bracket, not in passage, empty type, long type, duplicate.
func Filter(passage string, tuples []Tuple, opts FilterOptions) ([]Tuple, FilterStats) {
	maxType, maxMention := opts.MaxTypeRunes, opts.MaxMentionRunes
	if maxType <= 0 {
		maxType = DefaultMaxTypeRunes
	}
	if maxMention <= 0 {
		maxMention = DefaultMaxMentionRunes
	}
	var st FilterStats
	var out []Tuple
	seen := make(map[Tuple]bool)
	for _, t := range tuples {
		m := strings.TrimFunc(t.Mention, isSpace)
		typ := NormalizeType(t.Type)
		switch {
		case m == "":
			st.EmptyMention++
		case utf8.RuneCountInString(m) > maxMention:
			st.LongMention++
		case strings.Contains(m, "]"):
			st.Bracket++
		case !strings.Contains(passage, m):
			st.NotInPassage++
		case typ == "":
			st.EmptyType++
		case utf8.RuneCountInString(typ) > maxType:
			st.LongType++
		case seen[Tuple{m, typ}]:
			st.Duplicate++
		default:
			seen[Tuple{m, typ}] = true
			out = append(out, Tuple{Mention: m, Type: typ})
		}
	}
	return out, st
}
