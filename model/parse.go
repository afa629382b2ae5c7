package model

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseMode selects how a model's answer is read.
type ParseMode string

const (
	// ParseOfficialMode reads answers exactly as UniNER's evaluation code
	// does (see [ParseOfficial]).
	ParseOfficialMode ParseMode = "official"
	// ParseLenientMode also recovers lists that the official parser drops
	// (see [ParseLenient]). It is the default for serving.
	ParseLenientMode ParseMode = "lenient"
)

// Parse reads the mentions in a model's generated text in the given mode.
// An unknown mode reads leniently.
func Parse(mode ParseMode, generated string) []string {
	if mode == ParseOfficialMode {
		return ParseOfficial(OfficialResponse(generated))
	}
	return ParseLenient(generated)
}

// OfficialResponse is what the official inference code keeps of the
// generated text: the part after the last "ASSISTANT:", with white space
// stripped from both ends as Python's str.strip does.
func OfficialResponse(generated string) string {
	if i := strings.LastIndex(generated, "ASSISTANT:"); i >= 0 {
		generated = generated[i+len("ASSISTANT:"):]
	}
	return strings.TrimFunc(generated, pyIsSpace)
}

// ParseOfficial reads an answer exactly as the official parser does, before
// it normalises the items: the first "[...]" at the very start of the
// answer, matched non-greedily on one line, is decoded as JSON. Any failure
// gives no items, and so does any item that is not a string (the official
// code then fails while normalising it). Strings decode as Python's json
// module decodes them, so a lone surrogate escape such as "\ud800" is kept,
// encoded as WTF-8, and stays distinct from other such escapes.
func ParseOfficial(answer string) []string {
	if !strings.HasPrefix(answer, "[") {
		return nil
	}
	// re.match(r'\[(.*?)\]'): "." matches anything but "\n".
	end := strings.IndexAny(answer, "]\n")
	if end < 0 || answer[end] != ']' {
		return nil
	}
	s := answer[1:end]
	var items []string
	i := skipJSONSpace(s, 0)
	if i == len(s) {
		return nil // "[]"
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return nil
		}
		item, next, err := decodePyJSONString(s, i)
		if err != nil {
			return nil
		}
		items = append(items, item)
		i = skipJSONSpace(s, next)
		if i == len(s) {
			return items
		}
		if s[i] != ',' {
			return nil
		}
		i = skipJSONSpace(s, i+1)
	}
}

// ParseLenient reads the first list in an answer:
//   - the list may follow chatter, and may span lines;
//   - a list that holds only non-strings ("see [1]") is passed over, but an
//     empty list is an answer;
//   - a list cut short (the token limit reached inside it) gives the
//     strings completed before the cut;
//   - items that are not strings are dropped, and so are empty strings;
//   - strings may be double-quoted (JSON) or single-quoted (Python);
//   - a trailing comma is accepted;
//   - repeated strings are kept once, first occurrence first.
//
// An answer with no readable list gives no mentions.
func ParseLenient(answer string) []string {
	for start := 0; start < len(answer); {
		i := strings.IndexByte(answer[start:], '[')
		if i < 0 {
			return nil
		}
		items, values, ok := scanLenientList(answer, start+i)
		if ok && (len(items) > 0 || values == 0) {
			return dedupeNonEmpty(items)
		}
		start += i + 1
	}
	return nil
}

func dedupeNonEmpty(items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if strings.TrimFunc(it, pyIsSpace) == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == it {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, it)
		}
	}
	return out
}

// scanLenientList reads the list whose "[" is at s[at]: its strings, and
// the number of its values of any kind. ok is false when the text there is
// not a list.
func scanLenientList(s string, at int) (items []string, values int, ok bool) {
	i := skipAnySpace(s, at+1)
	for {
		if i >= len(s) {
			return items, values, true // cut short
		}
		switch c := s[i]; c {
		case ']':
			return items, values, true
		case '"', '\'':
			var item string
			var next int
			var err error
			if c == '"' {
				item, next, err = decodePyJSONString(s, i)
			} else {
				item, next, err = decodeSingleQuoted(s, i)
			}
			if err == errUnterminated {
				return items, values, true // cut short inside a string
			}
			if err != nil {
				return nil, 0, false
			}
			items = append(items, item)
			values++
			i = next
		default:
			next, complete := skipJSONValue(s, i)
			if !complete {
				return items, values, true
			}
			if next == i {
				return nil, 0, false
			}
			values++
			i = next
		}
		i = skipAnySpace(s, i)
		if i >= len(s) {
			return items, values, true
		}
		switch s[i] {
		case ',':
			i = skipAnySpace(s, i+1)
		case ']':
			return items, values, true
		default:
			return nil, 0, false
		}
	}
}

// skipJSONValue skips a number, literal, object or array at s[i]. It
// returns i when nothing there looks like a value, and complete=false when
// the text ends inside the value.
func skipJSONValue(s string, i int) (next int, complete bool) {
	switch c := s[i]; {
	case c == '[' || c == '{':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '[', '{':
				depth++
			case ']', '}':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			case '"', '\'':
				var err error
				if s[j] == '"' {
					_, j, err = decodePyJSONString(s, j)
				} else {
					_, j, err = decodeSingleQuoted(s, j)
				}
				if err == errUnterminated {
					return len(s), false
				}
				if err != nil {
					return i, true
				}
				j--
			}
		}
		return len(s), false
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		j := i
		for j < len(s) {
			c := s[j]
			if c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
				j++
				continue
			}
			break
		}
		return j, j < len(s)
	}
	return i, true
}

func skipJSONSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func skipAnySpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !pyIsSpace(r) {
			break
		}
		i += n
	}
	return i
}

var errUnterminated = fmt.Errorf("unterminated string")

// decodePyJSONString decodes the JSON string whose opening quote is at
// s[at], as CPython's json module does (strict mode): control characters
// are refused, escapes are the JSON ones, a \u escape takes exactly four hex
// digits, a surrogate pair joins, and a lone surrogate is kept (as WTF-8).
// next is the index after the closing quote.
func decodePyJSONString(s string, at int) (out string, next int, err error) {
	i := at + 1
	// Fast path: the run before the first escape is copied in one piece.
	j := i
	for ; j < len(s); j++ {
		c := s[j]
		if c == '"' {
			return s[i:j], j + 1, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", 0, fmt.Errorf("invalid control character at %d", j)
		}
	}
	buf := make([]byte, 0, j-i+16)
	buf = append(buf, s[i:j]...)
	i = j
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return string(buf), i + 1, nil
		case c < 0x20:
			return "", 0, fmt.Errorf("invalid control character at %d", i)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", 0, errUnterminated
		}
		e := s[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(s, i)
			if !ok {
				if i+4 > len(s) && allHex(s[i:]) {
					return "", 0, errUnterminated
				}
				return "", 0, fmt.Errorf("invalid \\uXXXX escape at %d", i-2)
			}
			i += 4
			if r >= 0xD800 && r <= 0xDBFF && i+6 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				r2, ok := hex4(s, i+2)
				if !ok {
					return "", 0, fmt.Errorf("invalid \\uXXXX escape at %d", i)
				}
				if r2 >= 0xDC00 && r2 <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				}
			}
			buf = appendWTF8(buf, r)
		default:
			return "", 0, fmt.Errorf("invalid escape \\%c at %d", e, i-2)
		}
	}
	return "", 0, errUnterminated
}

// decodeSingleQuoted decodes a Python-style single-quoted string whose
// opening quote is at s[at], for the lenient parser: \' and \\ are escapes,
// and any other backslash is kept as written.
func decodeSingleQuoted(s string, at int) (out string, next int, err error) {
	var b strings.Builder
	for i := at + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			return b.String(), i + 1, nil
		case '\n':
			return "", 0, fmt.Errorf("newline in a single-quoted string at %d", i)
		case '\\':
			if i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '\\') {
				i++
				b.WriteByte(s[i])
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errUnterminated
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func allHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// appendWTF8 appends r as UTF-8, writing a surrogate code point (which
// UTF-8 cannot hold) in the three bytes its generalised encoding would use,
// so that distinct lone surrogates stay distinct strings.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// pyIsSpace reports whether Python's str.isspace holds for r: Unicode
// white space, plus the four ASCII information separators U+001C-U+001F
// that Go's unicode.IsSpace leaves out.
func pyIsSpace(r rune) bool {
	switch {
	case r == ' ', r >= '\t' && r <= '\r', r >= 0x1C && r <= 0x1F:
		return true
	case r < 0x85:
		return false
	}
	switch r {
	case 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// PyIsSpace reports whether Python's str.isspace holds for r. The official
// metric's white-space handling depends on it.
func PyIsSpace(r rune) bool { return pyIsSpace(r) }

// UnquoteJSON decodes one JSON string literal (with its quotes) as
// Python's json module does, for readers that must see strings exactly as
// the official evaluation code sees them: a lone surrogate escape is kept as
// WTF-8 instead of becoming U+FFFD.
func UnquoteJSON(literal string) (string, error) {
	if len(literal) < 2 || literal[0] != '"' {
		return "", fmt.Errorf("not a JSON string: %.20q", literal)
	}
	s, next, err := decodePyJSONString(literal, 0)
	if err != nil {
		return "", err
	}
	if next != len(literal) {
		return "", fmt.Errorf("text after the JSON string at %d", next)
	}
	return s, nil
}
