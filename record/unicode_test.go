package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckUnicode(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        string // "" when the value is Unicode
	}{
		{"plain", `{"text": "Ada Lovelace"}`, ""},
		{"non-ASCII", `{"text": "Zürich 東京 😀"}`, ""},
		{"escaped pair", `{"text": "\ud83d\ude00 and \uD83D\uDE00"}`, ""},
		{"escaped BMP", `{"text": "\u00fc\u6771\uffff\ue000\ud7ff"}`, ""},
		{"escaped backslash then u", `{"text": "C:\\ud800"}`, ""},
		{"escaped quote", `{"text": "\"\ud83d\ude00\""}`, ""},
		{"malformed escape", `{"text": "\u12"}`, ""}, // the JSON decoder refuses it
		{"invalid byte", "{\"text\": \"caf\xe9\"}", "the value is not valid UTF-8 (byte 13)"},
		{"truncated rune", "{\"text\": \"\xe6\x9d\"}", "the value is not valid UTF-8 (byte 10)"},
		{"lone high", `{"text": "a\ud800b"}`, `the value holds \ud800, a lone UTF-16 surrogate, which is no Unicode character (byte 11)`},
		{"lone high at the end", `{"text": "\uDBFF"}`, `holds \udbff, a lone`},
		{"high then not a low", `{"text": "\ud800\u0041"}`, `holds \ud800, a lone`},
		{"two highs", `{"text": "\ud800\ud800"}`, `holds \ud800, a lone`},
		{"lone low", `{"text": "\udc00"}`, `holds \udc00, a lone`},
		{"low then high", `{"text": "\ude00\ud83d"}`, `holds \ude00, a lone`},
		{"in the id", `{"id": "\ud800", "text": "x"}`, `holds \ud800, a lone`},
		{"after an escaped backslash", `{"text": "\\\ud800"}`, `holds \ud800, a lone`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckUnicode("the value", []byte(tc.value))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckUnicode = %v, want nil", err)
				}
				return
			}
			ie, ok := errors.AsType[*InputError](err)
			if !ok || ie.Reason != ReasonInvalidUTF8 || !strings.Contains(ie.Detail, tc.want) {
				t.Fatalf("CheckUnicode = %v, want an invalid_utf8 InputError with %q", err, tc.want)
			}
		})
	}
}

// TestCheckUnicodeAgreesWithDecoding: a JSON string that CheckUnicode
// takes decodes to itself without U+FFFD, one it refuses to U+FFFD.
func TestCheckUnicodeAgreesWithDecoding(t *testing.T) {
	for _, s := range []string{`"\ud83d\ude00"`, `"\ud800"`, `"\udfff\ud800"`, `"\\ud800"`, `"x\u00e9"`, "\"caf\xe9\""} {
		var out string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatal(err)
		}
		replaced := strings.ContainsRune(out, '\ufffd')
		if ok := CheckUnicode("v", []byte(s)) == nil; ok == replaced {
			t.Errorf("%s: CheckUnicode ok=%v, but decoding gives %q", s, ok, out)
		}
	}
}
