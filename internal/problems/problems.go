// Package problems collects what is wrong with a set of options, each
// problem at the path of its setting, so that a component's Validate can
// report every problem at once and config can place them under the
// component's section ("batch.max_docs: must be > 0").
package problems

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with one setting.
type Problem struct {
	// Path is the setting's YAML key within its options ("max_docs",
	// "tls.ca_file", "entity_types[1]").
	Path string
	// Text says what is wrong ("must be > 0").
	Text string
}

// List is every problem found; a non-empty List is an error.
type List []Problem

// Addf adds a problem at path.
func (l *List) Addf(path, format string, args ...any) {
	*l = append(*l, Problem{Path: path, Text: fmt.Sprintf(format, args...)})
}

// Add adds the problems of err, which Validate of nested options
// returned, under prefix; any other error is one problem at prefix.
func (l *List) Add(prefix string, err error) {
	if err == nil {
		return
	}
	if sub, ok := err.(List); ok {
		for _, p := range sub {
			*l = append(*l, Problem{Path: join(prefix, p.Path), Text: p.Text})
		}
		return
	}
	*l = append(*l, Problem{Path: prefix, Text: err.Error()})
}

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Error lists the problems as "path: text", separated by "; ".
func (l List) Error() string {
	s := make([]string, len(l))
	for i, p := range l {
		s[i] = p.Path + ": " + p.Text
	}
	return strings.Join(s, "; ")
}

// join puts a path under a prefix: "tls" and "ca_file" make
// "tls.ca_file", and a list index stays on its key ("entity_types[1]").
func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

// Positive adds the problem "must be > 0" at path when v is not.
func Positive[T ~int | ~int64](l *List, path string, v T) {
	if v <= 0 {
		l.Addf(path, "must be > 0")
	}
}
