// Package redact makes addresses fit to show. A URL may carry credentials
// in two places: its user information (https://user:PASSWORD@host/…) and
// its query or fragment (a presigned download's ?X-Amz-Signature=…, sig=,
// token=, key=, an OAuth #access_token=…). nerstream shows addresses in
// config print, logs, /readyz, errors and span attributes, and every one of
// them goes through this package first.
//
// [URL] keeps what locates the resource (scheme, host, port, path) byte for
// byte, and replaces with [Placeholder]:
//
//   - the user information: REDACTED, or REDACTED:REDACTED when it has a
//     password (the user name alone can be the credential, as in
//     https://TOKEN@host);
//   - the value of every query parameter, whatever its name: the names stay
//     (they tell a presigned address from a plain one), the values go; a
//     parameter without "=" is replaced whole;
//   - a fragment, whole.
//
// The names follow OpenTelemetry's HTTP conventions for url.full
// (REDACTED:REDACTED for credentials, REDACTED for query values), which
// list a few sensitive parameter names; this package hides every value,
// since a model's download address can be signed under any name.
//
// [Text] does the same to every URL inside a free text (an error message, a
// log value), and [Error] to an error's message while keeping the error
// chain for errors.Is and errors.As. A string with no "://" in it is
// returned as it is, without allocating, so the functions can sit on hot
// paths.
//
// The package uses the standard library only, so that every package of
// nerstream can import it.
package redact

import (
	"net/url"
	"strings"
)

// Placeholder replaces what is hidden.
const Placeholder = "REDACTED"

// URL returns u fit to show (see the package doc). A nil u is "".
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return String(u.String())
}

// String returns the URL raw fit to show (see the package doc), whether or
// not it parses. A string that does not start with scheme:// is taken as
// text that may hold URLs (openai:https://…, a list) and passed to [Text]:
// a file path, host:port or synth:tiny comes back unchanged, and so does a
// URL with nothing to hide.
func String(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	if i == 0 || !isScheme(raw[:i]) {
		return Text(raw)
	}
	return urlFrom(raw, i)
}

// urlFrom redacts raw, whose scheme ends at i (raw[i:] starts with "://").
func urlFrom(raw string, i int) string {
	head, rest := raw[:i+3], raw[i+3:]
	// The authority ends at the first '/', '?' or '#'.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := Placeholder
		if strings.Contains(authority[:at], ":") {
			userinfo = Placeholder + ":" + Placeholder
		}
		authority = userinfo + authority[at:]
	}
	path, query, fragment := tail, "", ""
	hasQuery, hasFragment := false, false
	if h := strings.IndexByte(path, '#'); h >= 0 {
		path, fragment, hasFragment = path[:h], path[h+1:], true
	}
	if q := strings.IndexByte(path, '?'); q >= 0 {
		path, query, hasQuery = path[:q], path[q+1:], true
	}
	var b strings.Builder
	b.Grow(len(raw) + 16)
	b.WriteString(head)
	b.WriteString(authority)
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(query))
	}
	if hasFragment {
		b.WriteByte('#')
		if fragment != "" {
			b.WriteString(Placeholder)
		}
	}
	return b.String()
}

// redactQuery replaces the value of every parameter of a raw query.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' })
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok {
			parts[i] = name + "=" + Placeholder
		} else {
			parts[i] = Placeholder
		}
	}
	return strings.Join(parts, "&")
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// Text returns s with every URL in it fit to show (see [String]). A URL
// starts at its scheme and ends before white space, a quote, '<', '>' or
// the end of s; punctuation that ends a sentence or a clause (".,;:!)]}")
// at its end is left outside it, as in "fetching https://h/m.gguf?sig=x:
// connection refused".
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		start := i
		for start > 0 && isSchemeByte(s[start-1]) {
			start--
		}
		// The scheme starts with a letter.
		for start < i && !isLetter(s[start]) {
			start++
		}
		if start == i { // "://" with no scheme before it
			b.WriteString(s[:i+3])
			s = s[i+3:]
			continue
		}
		end := i + 3
		for end < len(s) && !isURLEnd(s[end]) {
			end++
		}
		for end > i+3 && strings.IndexByte(".,;:!)]}", s[end-1]) >= 0 {
			end--
		}
		b.WriteString(s[:start])
		b.WriteString(urlFrom(s[start:end], i-start))
		s = s[end:]
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isSchemeByte(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isURLEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// Error returns err with its message passed through [Text]. The result
// wraps err, so errors.Is and errors.As still find what err holds
// (a *url.Error among them: its URL field is the whole address, so do not
// print it). It returns err itself when there is nothing to hide, and nil
// for nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	shown := Text(msg)
	if shown == msg {
		return err
	}
	return &shownError{msg: shown, err: err}
}

// shownError is an error with a message fit to show.
type shownError struct {
	msg string
	err error
}

func (e *shownError) Error() string { return e.msg }
func (e *shownError) Unwrap() error { return e.err }
