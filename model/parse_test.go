package model

import (
	"slices"
	"testing"
)

func TestParseOfficial(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"list", `["naive Bayes classifier", "Gaussian mixture model"]`, []string{"naive Bayes classifier", "Gaussian mixture model"}},
		{"empty list", `[]`, nil},
		{"spaces inside", `[ "a" ,	"b" ]`, []string{"a", "b"}},
		{"text after the list", `["a"] and more`, []string{"a"}},
		{"chatter before", `Sure: ["a"]`, nil},
		{"leading space", ` ["a"]`, nil},
		{"across lines", "[\"a\",\n\"b\"]", nil},
		{"carriage return is fine", "[\"a\",\r\"b\"]", []string{"a", "b"}},
		{"nested list", `[["a", "b"]]`, nil},
		{"number item", `["a", 1]`, nil},
		{"null item", `["a", null]`, nil},
		{"object item", `[{"a": 1}]`, nil},
		{"trailing comma", `["a",]`, nil},
		{"single quotes", `['a']`, nil},
		{"bracket in a string cuts the list", `["a]", "b"]`, nil},
		{"unterminated", `["a", "b"`, nil},
		{"escapes", `["caf\u00e9", "a\"b", "c\\d", "e\/f", "tab\there"]`, []string{"café", `a"b`, `c\d`, "e/f", "tab\there"}},
		{"surrogate pair", `["\ud83d\ude00"]`, []string{"😀"}},
		{"lone surrogates stay distinct", `["\ud800", "\udc00"]`, []string{"\xed\xa0\x80", "\xed\xb0\x80"}},
		{"high surrogate then a non-low escape", `["\ud800\u0041"]`, []string{"\xed\xa0\x80A"}},
		{"invalid escape", `["\x41"]`, nil},
		{"short unicode escape", `["\u12"]`, nil},
		{"raw control character", "[\"a\x01\"]", nil},
		{"raw tab", "[\"a\tb\"]", nil},
		{"duplicates kept", `["a", "a"]`, []string{"a", "a"}},
		{"empty string item", `[""]`, []string{""}},
		{"no list", `none`, nil},
		{"empty", ``, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ParseOfficial(c.in); !slices.Equal(got, c.want) {
				t.Fatalf("ParseOfficial(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestOfficialResponse(t *testing.T) {
	cases := []struct{ in, want string }{
		{` ["a"]`, `["a"]`},
		{"\u00a0[\"a\"]\u3000\x1c", `["a"]`},
		{`I think ASSISTANT: ["b"] `, `["b"]`},
		{`ASSISTANT: x ASSISTANT:["c"]`, `["c"]`},
		{"", ""},
	}
	for _, c := range cases {
		if got := OfficialResponse(c.in); got != c.want {
			t.Errorf("OfficialResponse(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Parse in official mode is the official pipeline.
	if got := Parse(ParseOfficialMode, " [\"a\", \"b\"]"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Parse(official) = %q", got)
	}
}

func TestParseLenient(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"list", `["a", "b"]`, []string{"a", "b"}},
		{"empty", `[]`, []string{}},
		{"leading space", ` ["a"]`, []string{"a"}},
		{"chatter before and after", `The entities are ["Ada", "Babbage"]. Hope this helps!`, []string{"Ada", "Babbage"}},
		{"across lines", "[\n  \"a\",\n  \"b\"\n]", []string{"a", "b"}},
		{"non-strings dropped", `["a", 1, null, true, {"k": "v"}, ["x"], 2.5e3, "b"]`, []string{"a", "b"}},
		{"duplicates once", `["a", "b", "a"]`, []string{"a", "b"}},
		{"empty strings dropped", `["", " ", "a"]`, []string{"a"}},
		{"trailing comma", `["a", "b",]`, []string{"a", "b"}},
		{"single quotes", `['Ada', 'O\'Brien', "Bob"]`, []string{"Ada", "O'Brien", "Bob"}},
		{"cut short inside a string", `["Ada", "Bab`, []string{"Ada"}},
		{"cut short after a comma", `["Ada", "Babbage", `, []string{"Ada", "Babbage"}},
		{"cut short in a nested value", `["Ada", {"k": [1, `, []string{"Ada"}},
		{"bracket inside a string", `["a]b", "c"]`, []string{"a]b", "c"}},
		{"a list of non-strings is passed over", `See [1] below: ["x"]`, []string{"x"}},
		{"a list of nothing but non-strings", `[1, 2]`, nil},
		{"an empty list is the answer", `[] and then ["x"]`, []string{}},
		{"broken list then a good one", `[oops "a"] then ["b"]`, []string{"b"}},
		{"escapes", `["caf\u00e9\n"]`, []string{"café\n"}},
		{"no list", `I found nothing.`, nil},
		{"empty answer", ``, nil},
		{"ASSISTANT: prefix", `ASSISTANT: ["a"]`, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ParseLenient(c.in)
			if !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
				t.Fatalf("ParseLenient(%q) = %#v, want %#v", c.in, got, c.want)
			}
		})
	}
}

func TestUnquoteJSON(t *testing.T) {
	good := map[string]string{`"a"`: "a", `"\u00e9\ud800"`: "é\xed\xa0\x80", `""`: ""}
	for in, want := range good {
		if got, err := UnquoteJSON(in); err != nil || got != want {
			t.Errorf("UnquoteJSON(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{``, `a`, `"a`, `"a"b`, `"\q"`, "\"\x01\""} {
		if got, err := UnquoteJSON(in); err == nil {
			t.Errorf("UnquoteJSON(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`["a", "b"]`, `[`, `["\ud800`, `x [1, ["a"], {"b": "]"}] y`, `['a\'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Neither parser may panic or hang, and official items are a
		// subset of what the lenient parser finds in the same answer.
		off := ParseOfficial(s)
		len := ParseLenient(s)
		for _, it := range off {
			if it != "" && !containsFunc(len, it) && isValidLenientItem(it) {
				t.Errorf("official item %q missing from lenient %q for %q", it, len, s)
			}
		}
	})
}

func containsFunc(s []string, x string) bool { return slices.Contains(s, x) }

func isValidLenientItem(s string) bool {
	for _, r := range s {
		if !pyIsSpace(r) {
			return true
		}
	}
	return false
}
