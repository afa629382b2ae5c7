package eval

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model"
)

// Normalize is the official metric's normalize_answer: lower case (as
// Python's str.lower), drop ASCII punctuation, drop the words a/an/the
// (words as Python's re module delimits them), collapse white space (as
// Python's str.split). Bytes that are not UTF-8, such as the WTF-8 of a
// lone surrogate that [model.ParseOfficial] keeps, pass through unchanged,
// as Python passes a lone surrogate through.
func Normalize(s string) string {
	lowered := pyLower(s)
	// Drop ASCII punctuation (Python's string.punctuation).
	b := make([]byte, 0, len(lowered))
	for i := 0; i < len(lowered); i++ {
		if c := lowered[i]; c < utf8.RuneSelf && isASCIIPunct(c) {
			continue
		}
		b = append(b, lowered[i])
	}
	// Remove the articles: \b(a|an|the)\b is a maximal run of word
	// characters equal to one of them; it becomes a space.
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); {
		r, size := decode(b[i:])
		if !pyIsWord(r) {
			out.Write(b[i : i+size])
			i += size
			continue
		}
		j := i + size
		for j < len(b) {
			r, size := decode(b[j:])
			if !pyIsWord(r) {
				break
			}
			j += size
		}
		switch w := string(b[i:j]); w {
		case "a", "an", "the":
			out.WriteByte(' ')
		default:
			out.WriteString(w)
		}
		i = j
	}
	// ' '.join(text.split())
	fields := strings.FieldsFunc(out.String(), model.PyIsSpace)
	return strings.Join(fields, " ")
}

// decode decodes one rune; an invalid byte comes back as itself in the
// surrogate range, which is neither a word character nor white space.
func decode(b []byte) (rune, int) {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size <= 1 {
		return 0xD800, 1
	}
	return r, size
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

// pyIsWord is Python's re \w on str patterns: alphanumeric in the Unicode
// sense (letters and numbers) or "_". Combining marks are not word
// characters there.
func pyIsWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// pyLower is Python's str.lower: the full lowercase mapping, which differs
// from the simple one for U+0130 ("İ" becomes "i̇", two code points), and
// the Final_Sigma rule for U+03A3.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(s, i, i+size) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
		i += size
	}
	return b.String()
}

// finalSigma reports whether the sigma at s[at:next] is in the Final_Sigma
// context: a cased letter before it and none after it, skipping
// case-ignorable characters both ways.
func finalSigma(s string, at, next int) bool {
	before := false
	for j := at; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if !caseIgnorable(r) {
			before = isCased(r)
			break
		}
	}
	if !before {
		return false
	}
	for j := next; j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if !caseIgnorable(r) {
			return !isCased(r)
		}
	}
	return true
}

func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
