// Package jsonptr reads and writes JSON documents at JSON Pointers (RFC
// 6901) without re-encoding them: [Find] gives the byte span of the value a
// pointer names, and [Set] splices a new value into the original bytes, so
// that every byte outside the splice (big integers, 1.10, escapes, key
// order, white space) stays as it was. consumers selects input fields with
// it, producers adds entities to enriched events.
//
// Documents are scanned by a small scanner that records byte offsets; the
// callers check them with json.Valid first, and a document that is not
// valid JSON gives an error, never a panic. Where an object repeats a
// key, the last member wins, as in encoding/json.
package jsonptr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on a pointer: a longer one is a configuration error.
const (
	MaxBytes  = 512
	MaxTokens = 32
)

// Pointer is a parsed JSON Pointer: its reference tokens, unescaped. The
// zero value (no tokens) names the whole document.
type Pointer struct {
	tokens []string
}

// ErrSyntax is a string that is no valid pointer.
var ErrSyntax = errors.New("not a JSON Pointer")

// ErrNotFound is a pointer that names nothing in the document.
var ErrNotFound = errors.New("no such member")

// ErrInvalidJSON is a document that the scanner cannot read.
var ErrInvalidJSON = errors.New("invalid JSON")

// ErrCannotCreate is a Set whose target cannot be made: its parent is not
// an object, or the pointer names the whole document.
var ErrCannotCreate = errors.New("cannot create the member")

// Parse parses s: "" (the whole document) or "/" followed by reference
// tokens separated by "/", in which "~1" stands for "/" and "~0" for "~".
// Any other "~", invalid UTF-8, more than MaxBytes bytes or MaxTokens tokens
// wrap ErrSyntax.
func Parse(s string) (Pointer, error) {
	switch {
	case s == "":
		return Pointer{}, nil
	case len(s) > MaxBytes:
		return Pointer{}, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, MaxBytes)
	case !utf8.ValidString(s):
		return Pointer{}, fmt.Errorf("%w: not UTF-8", ErrSyntax)
	case s[0] != '/':
		return Pointer{}, fmt.Errorf("%w: must be empty or start with \"/\"", ErrSyntax)
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) > MaxTokens {
		return Pointer{}, fmt.Errorf("%w: more than %d tokens", ErrSyntax, MaxTokens)
	}
	for i, p := range parts {
		for j := 0; j < len(p); j++ {
			if p[j] == '~' && (j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1')) {
				return Pointer{}, fmt.Errorf("%w: \"~\" must be followed by 0 or 1", ErrSyntax)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return Pointer{tokens: parts}, nil
}

// MustParse is Parse for pointers written in the code; it panics on error.
func MustParse(s string) Pointer {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String is the pointer as RFC 6901 writes it.
func (p Pointer) String() string {
	var b strings.Builder
	for _, t := range p.tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// IsRoot reports whether p names the whole document.
func (p Pointer) IsRoot() bool { return len(p.tokens) == 0 }

// HasPrefix reports whether q is p or an ancestor of p.
func (p Pointer) HasPrefix(q Pointer) bool {
	if len(q.tokens) > len(p.tokens) {
		return false
	}
	for i, t := range q.tokens {
		if p.tokens[i] != t {
			return false
		}
	}
	return true
}

// Find returns the byte span doc[start:end] of the value p names. A pointer
// that names nothing wraps ErrNotFound; a document the scanner cannot
// read wraps ErrInvalidJSON.
func Find(doc []byte, p Pointer) (start, end int, err error) {
	s := scanner{b: doc}
	start, end, _, err = s.find(p.tokens)
	return start, end, err
}

// Get returns the raw bytes of the value p names (see Find).
func Get(doc []byte, p Pointer) ([]byte, error) {
	start, end, err := Find(doc, p)
	if err != nil {
		return nil, err
	}
	return doc[start:end], nil
}

// Set returns a copy of doc with value at p: the existing value's bytes
// replaced when p names one, else a new member inserted after the last
// member of the deepest existing object on p's path, with objects made for
// the tokens that do not exist yet. Every other byte of doc is kept. value
// must be valid JSON; Set does not check it. A pointer whose existing
// parent is not an object (an array, a string) or the root pointer wraps
// ErrCannotCreate.
func Set(doc []byte, p Pointer, value []byte) ([]byte, error) {
	if p.IsRoot() {
		return nil, fmt.Errorf("%w: the pointer names the whole document", ErrCannotCreate)
	}
	s := scanner{b: doc}
	start, end, depth, err := s.find(p.tokens)
	if err == nil {
		return splice(doc, start, end, value), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// depth tokens exist: the value at p.tokens[:depth] is the parent.
	pstart, pend, _, err := s.find(p.tokens[:depth])
	if err != nil {
		return nil, err
	}
	if doc[pstart] != '{' {
		return nil, fmt.Errorf("%w: %s is not an object", ErrCannotCreate, Pointer{tokens: p.tokens[:depth]})
	}
	var member bytes.Buffer
	rest := p.tokens[depth:]
	for i, t := range rest {
		k, _ := json.Marshal(t) // a string always marshals
		member.Write(k)
		member.WriteByte(':')
		if i < len(rest)-1 {
			member.WriteByte('{')
		}
	}
	member.Write(value)
	for range len(rest) - 1 {
		member.WriteByte('}')
	}
	// Insert after the last member's value, or just after "{" when the
	// object is empty.
	at, empty, err := s.lastValueEnd(pstart, pend)
	if err != nil {
		return nil, err
	}
	ins := member.Bytes()
	if !empty {
		ins = append([]byte{','}, ins...)
	}
	return splice(doc, at, at, ins), nil
}

func splice(doc []byte, start, end int, ins []byte) []byte {
	out := make([]byte, 0, len(doc)-(end-start)+len(ins))
	out = append(out, doc[:start]...)
	out = append(out, ins...)
	return append(out, doc[end:]...)
}

// scanner walks a JSON document by byte offsets.
type scanner struct{ b []byte }

func (s *scanner) bad(i int) error {
	return fmt.Errorf("%w at byte %d", ErrInvalidJSON, i)
}

func (s *scanner) ws(i int) int {
	for i < len(s.b) && (s.b[i] == ' ' || s.b[i] == '\t' || s.b[i] == '\n' || s.b[i] == '\r') {
		i++
	}
	return i
}

// find locates the value at tokens; on ErrNotFound, depth is how many
// tokens exist.
func (s *scanner) find(tokens []string) (start, end, depth int, err error) {
	i := s.ws(0)
	if i >= len(s.b) {
		return 0, 0, 0, s.bad(i)
	}
	for depth = 0; depth < len(tokens); depth++ {
		var found bool
		switch s.b[i] {
		case '{':
			i, found, err = s.member(i, tokens[depth])
		case '[':
			i, found, err = s.element(i, tokens[depth])
		default:
			found = false
		}
		if err != nil {
			return 0, 0, depth, err
		}
		if !found {
			return 0, 0, depth, fmt.Errorf("%w: %s", ErrNotFound, Pointer{tokens: tokens[:depth+1]})
		}
	}
	end, err = s.skip(i)
	return i, end, depth, err
}

// member finds key in the object at i and returns the offset of its value
// (the last, where the key repeats).
func (s *scanner) member(i int, key string) (int, bool, error) {
	at, found := -1, false
	i = s.ws(i + 1)
	if i < len(s.b) && s.b[i] == '}' {
		return 0, false, nil
	}
	for {
		if i >= len(s.b) || s.b[i] != '"' {
			return 0, false, s.bad(i)
		}
		kend, err := s.str(i)
		if err != nil {
			return 0, false, err
		}
		match, err := keyEquals(s.b[i:kend], key)
		if err != nil {
			return 0, false, s.bad(i)
		}
		i = s.ws(kend)
		if i >= len(s.b) || s.b[i] != ':' {
			return 0, false, s.bad(i)
		}
		i = s.ws(i + 1)
		if match {
			at, found = i, true
		}
		if i, err = s.skip(i); err != nil {
			return 0, false, err
		}
		i = s.ws(i)
		if i >= len(s.b) {
			return 0, false, s.bad(i)
		}
		if s.b[i] == '}' {
			return at, found, nil
		}
		if s.b[i] != ',' {
			return 0, false, s.bad(i)
		}
		i = s.ws(i + 1)
	}
}

// element finds the array element that token indexes.
func (s *scanner) element(i int, token string) (int, bool, error) {
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 || (len(token) > 1 && token[0] == '0') || token[0] == '+' {
		return 0, false, nil
	}
	i = s.ws(i + 1)
	if i < len(s.b) && s.b[i] == ']' {
		return 0, false, nil
	}
	for k := 0; ; k++ {
		if k == n {
			return i, true, nil
		}
		if i, err = s.skip(i); err != nil {
			return 0, false, err
		}
		i = s.ws(i)
		if i >= len(s.b) {
			return 0, false, s.bad(i)
		}
		if s.b[i] == ']' {
			return 0, false, nil
		}
		if s.b[i] != ',' {
			return 0, false, s.bad(i)
		}
		i = s.ws(i + 1)
	}
}

// lastValueEnd returns where the last member of the object at
// b[start:end] ends, or the offset after "{" and true when it has none.
func (s *scanner) lastValueEnd(start, end int) (int, bool, error) {
	i := s.ws(start + 1)
	if i < end && s.b[i] == '}' {
		return start + 1, true, nil
	}
	last := -1
	for i < end {
		kend, err := s.str(i)
		if err != nil {
			return 0, false, err
		}
		i = s.ws(s.ws(kend) + 1)
		if i, err = s.skip(i); err != nil {
			return 0, false, err
		}
		last = i
		i = s.ws(i)
		if i >= end || s.b[i] == '}' {
			break
		}
		i = s.ws(i + 1)
	}
	if last < 0 {
		return 0, false, s.bad(start)
	}
	return last, false, nil
}

func keyEquals(raw []byte, key string) (bool, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == key, nil
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return false, err
	}
	return k == key, nil
}

// str returns the offset after the string that starts at i.
func (s *scanner) str(i int) (int, error) {
	if i >= len(s.b) || s.b[i] != '"' {
		return 0, s.bad(i)
	}
	for j := i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, s.bad(i)
}

// skip returns the offset after the value that starts at i.
func (s *scanner) skip(i int) (int, error) {
	if i >= len(s.b) {
		return 0, s.bad(i)
	}
	switch c := s.b[i]; c {
	case '"':
		return s.str(i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s.b); j++ {
			switch s.b[j] {
			case '"':
				e, err := s.str(j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, s.bad(i)
	default:
		j := i
		for j < len(s.b) && !strings.ContainsRune(" \t\r\n,]}:", rune(s.b[j])) {
			j++
		}
		if j == i {
			return 0, s.bad(i)
		}
		return j, nil
	}
}
