package llama

import (
	"strings"
	"unicode/utf8"
)

// quoteTracker follows the strings of a JSON answer as it is generated,
// for the substring-constrained mode: every string of the answer must be a
// substring of the passage. It decodes escapes, so that "\u00e9" in the
// answer matches "é" in the passage.
type quoteTracker struct {
	passage  string
	inString bool
	esc      []byte // a pending escape, from its backslash
	cur      []byte // the decoded content of the string so far
}

// accepts reports whether piece keeps every string of the answer a
// substring of the passage (strings still open: their prefix so far). It
// does not change the tracker.
func (q *quoteTracker) accepts(piece []byte) bool {
	c := *q
	c.esc = append([]byte(nil), q.esc...)
	c.cur = append([]byte(nil), q.cur...)
	return c.feed(piece)
}

// feed takes piece and reports whether the answer still holds to the
// passage.
func (q *quoteTracker) feed(piece []byte) bool {
	for _, b := range piece {
		switch {
		case !q.inString:
			if b == '"' {
				q.inString, q.cur = true, q.cur[:0]
			}
		case len(q.esc) > 0:
			q.esc = append(q.esc, b)
			r, done, ok := decodeEscape(q.esc)
			if !ok {
				return false
			}
			if done {
				q.esc = q.esc[:0]
				q.cur = utf8.AppendRune(q.cur, r)
				if !q.holds() {
					return false
				}
			}
		case b == '\\':
			q.esc = append(q.esc[:0], b)
		case b == '"':
			q.inString = false
			if len(q.cur) == 0 {
				return false // an empty mention names nothing
			}
		case len(q.cur) == 0 && (b == ' ' || b == '\t' || b == '\n' || b == '\r'):
			return false // a mention starts with what it names
		default:
			q.cur = append(q.cur, b)
			if !q.holds() {
				return false
			}
		}
	}
	return true
}

// holds reports whether the string so far occurs in the passage, byte for
// byte: a trailing partial UTF-8 sequence must begin a character that
// follows there.
func (q *quoteTracker) holds() bool {
	return strings.Contains(q.passage, string(q.cur))
}

// decodeEscape decodes a JSON escape that starts with a backslash. done is
// false while it is incomplete; ok is false when it cannot be one.
func decodeEscape(e []byte) (r rune, done, ok bool) {
	if len(e) < 2 {
		return 0, false, true
	}
	switch e[1] {
	case '"', '\\', '/':
		return rune(e[1]), true, true
	case 'b':
		return '\b', true, true
	case 'f':
		return '\f', true, true
	case 'n':
		return '\n', true, true
	case 'r':
		return '\r', true, true
	case 't':
		return '\t', true, true
	case 'u':
		if len(e) < 6 {
			for _, c := range e[2:] {
				if !isHex(c) {
					return 0, false, false
				}
			}
			return 0, false, true
		}
		v, ok := hexRune(e[2:6])
		return v, ok, ok
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexRune(h []byte) (rune, bool) {
	var r rune
	for _, c := range h {
		if !isHex(c) {
			return 0, false
		}
		switch {
		case c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r, true
}
