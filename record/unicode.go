package record

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// CheckUnicode checks that a JSON value holds Unicode text only: that its
// bytes are valid UTF-8, and that no \u escape names a lone UTF-16
// surrogate ("\ud800" without the low half after it, or a low half
// alone). Go's encoding/json decodes either into U+FFFD, and Python's json
// module keeps a lone surrogate; both would annotate another text than the
// one sent. Every reader of JSON documents (the stream's consumers,
// annotate, nerstream serve) refuses such a value in the same words: the
// error is an [*InputError] with [ReasonInvalidUTF8] whose detail starts
// with what, and says where ("the value is not valid UTF-8 (byte 12)").
//
// The value's structure is not checked: only strings hold backslashes in
// JSON, and a decoder refuses a value that is not JSON.
func CheckUnicode(what string, value []byte) error {
	if !utf8.Valid(value) {
		i := 0
		for i < len(value) {
			r, n := utf8.DecodeRune(value[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return &InputError{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("%s is not valid UTF-8 (byte %d)", what, i)}
	}
	for i := 0; i+1 < len(value); i++ {
		if value[i] != '\\' {
			continue
		}
		if value[i+1] != 'u' {
			i++ // an escape of one character: \\ and \" included
			continue
		}
		r, ok := hex4(value[i+2:])
		if !ok {
			continue // not an escape the decoder takes: it says so
		}
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if len(value) >= i+12 && value[i+6] == '\\' && value[i+7] == 'u' {
				if lo, ok := hex4(value[i+8:]); ok && lo >= 0xdc00 && lo < 0xe000 {
					i += 11 // a pair: one character
					continue
				}
			}
		case r >= 0xdc00 && r < 0xe000:
		default:
			i += 5
			continue
		}
		return &InputError{Reason: ReasonInvalidUTF8,
			Detail: fmt.Sprintf("%s holds \\u%04x, a lone UTF-16 surrogate, which is no Unicode character (byte %d)", what, r, i)}
	}
	return nil
}

// hex4 reads the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(v), err == nil
}
