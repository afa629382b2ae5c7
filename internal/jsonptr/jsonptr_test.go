package jsonptr

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in     string
		tokens []string
		err    bool
	}{
		{"", nil, false},
		{"/", []string{""}, false},
		{"/message", []string{"message"}, false},
		{"/error/detail", []string{"error", "detail"}, false},
		{"/a~1b/m~0n", []string{"a/b", "m~n"}, false},
		{"/~01", []string{"~1"}, false}, // ~01 is "~" then "1", not "/"
		{"/0/1", []string{"0", "1"}, false},
		{"message", nil, true},
		{"/a~", nil, true},
		{"/a~2", nil, true},
		{"/\xff", nil, true},
		{"/" + strings.Repeat("a", MaxBytes), nil, true},
		{strings.Repeat("/a", MaxTokens+1), nil, true},
	} {
		p, err := Parse(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Parse(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) error %v is not ErrSyntax", tc.in, err)
			}
			continue
		}
		if strings.Join(p.tokens, "|") != strings.Join(tc.tokens, "|") || len(p.tokens) != len(tc.tokens) {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, p.tokens, tc.tokens)
		}
		if p.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q", tc.in, p.String())
		}
	}
}

const event = `{ "ts":"2026-12-03T10:00:00Z", "n":12345678901234567890, "f":1.10,
  "esc":"a\"b\\c\u00e9\/", "a~b":1, "x/y":2, "":"empty",
  "list":[1,{"k":"v"},[3]], "error":{"detail":"disk full"}, "dup":1, "dup":"last",
  "message":"card declined for Jane Doe" }`

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		ptr, want string
		err       error
	}{
		{"", event, nil},
		{"/n", `12345678901234567890`, nil},
		{"/f", `1.10`, nil},
		{"/esc", `"a\"b\\c\u00e9\/"`, nil},
		{"/a~0b", `1`, nil},
		{"/x~1y", `2`, nil},
		{"/", `"empty"`, nil},
		{"/list/1/k", `"v"`, nil},
		{"/list/2/0", `3`, nil},
		{"/error/detail", `"disk full"`, nil},
		{"/dup", `"last"`, nil},
		{"/message", `"card declined for Jane Doe"`, nil},
		{"/missing", "", ErrNotFound},
		{"/list/3", "", ErrNotFound},
		{"/list/01", "", ErrNotFound},
		{"/list/-1", "", ErrNotFound},
		{"/n/x", "", ErrNotFound},
		{"/error/detail/x", "", ErrNotFound},
	} {
		got, err := Get([]byte(event), MustParse(tc.ptr))
		if !errors.Is(err, tc.err) || (err != nil) != (tc.err != nil) {
			t.Errorf("Get(%q) error = %v, want %v", tc.ptr, err, tc.err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Get(%q) = %s, want %s", tc.ptr, got, tc.want)
		}
	}
	for _, bad := range []string{"", "{", `{"a"`, `{"a":`, `{"a":1,`, `{"a":"x`, `[1,`, `{"a" 1}`} {
		if _, err := Get([]byte(bad), MustParse("/zz")); !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidJSON or ErrNotFound", bad, err)
		}
	}
}

// oneSplice reports whether out is in with one span replaced: a common
// prefix and a common suffix (not overlapping in either) cover all of in
// but what was replaced, so every other byte is equal.
func oneSplice(in, out []byte, replaced int) bool {
	n := min(len(in), len(out))
	pre := 0
	for pre < n && in[pre] == out[pre] {
		pre++
	}
	suf := 0
	for suf < n-pre && in[len(in)-1-suf] == out[len(out)-1-suf] {
		suf++
	}
	return pre+suf >= len(in)-replaced
}

func TestSet(t *testing.T) {
	v := []byte(`[{"text":"Jane Doe","type":"person","start":19,"end":27}]`)
	for _, tc := range []struct {
		doc, ptr, want string
		err            error
	}{
		{`{"message":"x"}`, "/entities", `{"message":"x","entities":V}`, nil},
		{"{\n  \"n\": 12345678901234567890 ,\n  \"f\": 1.10\n}\n", "/entities", "{\n  \"n\": 12345678901234567890 ,\n  \"f\": 1.10,\"entities\":V\n}\n", nil},
		{`{}`, "/entities", `{"entities":V}`, nil},
		{`{ }`, "/entities", `{"entities":V }`, nil},
		{`{"entities":[{"old":1}],"z":1}`, "/entities", `{"entities":V,"z":1}`, nil},
		{`{"a":1}`, "/ner/entities", `{"a":1,"ner":{"entities":V}}`, nil},
		{`{"ner":{"x":1}}`, "/ner/entities", `{"ner":{"x":1,"entities":V}}`, nil},
		{`{"ner":{}}`, "/ner/a~1b", `{"ner":{"a/b":V}}`, nil},
		{`{"list":[1]}`, "/list/0", `{"list":[V]}`, nil},
		{`{"list":[1]}`, "/list/5", "", ErrCannotCreate},
		{`{"s":"x"}`, "/s/y", "", ErrCannotCreate},
		{`{"a":1}`, "", "", ErrCannotCreate},
		{`{"a":`, "/b", "", ErrInvalidJSON},
	} {
		got, err := Set([]byte(tc.doc), MustParse(tc.ptr), v)
		if !errors.Is(err, tc.err) || (err != nil) != (tc.err != nil) {
			t.Errorf("Set(%s, %q) error = %v, want %v", tc.doc, tc.ptr, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		want := strings.ReplaceAll(tc.want, "V", string(v))
		if string(got) != want {
			t.Errorf("Set(%s, %q) =\n%s\nwant\n%s", tc.doc, tc.ptr, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("Set(%s, %q) is not valid JSON: %s", tc.doc, tc.ptr, got)
		}
		replaced := 0
		if old, err := Get([]byte(tc.doc), MustParse(tc.ptr)); err == nil {
			replaced = len(old)
		}
		if !oneSplice([]byte(tc.doc), got, replaced) {
			t.Errorf("Set(%s, %q) changed bytes outside one splice", tc.doc, tc.ptr)
		}
	}
}

// FuzzSet: on any valid JSON object, Set either fails with one of its
// errors or writes valid JSON in which the value is found at the pointer
// and every byte outside the insertion is the input's.
func FuzzSet(f *testing.F) {
	for _, s := range []string{event, `{}`, `{"a":{"b":[1,2]}}`, "{\"entities\" : [1] \n}", `{"x":"\u2028\ud83d\ude00"}`} {
		f.Add(s, "/entities")
		f.Add(s, "/ner/entities")
		f.Add(s, "/a/b/0")
	}
	f.Fuzz(func(t *testing.T, doc, ptr string) {
		p, err := Parse(ptr)
		if err != nil || !json.Valid([]byte(doc)) {
			return
		}
		v := []byte(`{"added":[1.10,"é"]}`)
		out, err := Set([]byte(doc), p, v)
		if err != nil {
			if !errors.Is(err, ErrCannotCreate) && !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("Set: unexpected error %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Set(%q, %q) = %q: not valid JSON", doc, ptr, out)
		}
		got, err := Get(out, p)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get after Set(%q, %q) = %q, %v", doc, ptr, got, err)
		}
		replaced := 0
		if old, err := Get([]byte(doc), p); err == nil {
			replaced = len(old)
		}
		if !oneSplice([]byte(doc), out, replaced) {
			t.Fatalf("Set(%q, %q) = %q changed bytes outside the insertion", doc, ptr, out)
		}
	})
}
