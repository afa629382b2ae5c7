package consumers

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"

	"github.com/nerstream/nerstream/record"
)

func snappyBlock(s string) string { return string(snappy.Encode(nil, []byte(s))) }

func snappyStream(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := snappy.NewBufferedWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), snappyStreamID) {
		t.Fatalf("stream does not open with the stream identifier: %q", b.String()[:10])
	}
	return b.String()
}

// snappyBomb is a 6-byte block whose header claims 0xffffffff bytes.
const snappyBomb = "\xff\xff\xff\xff\x0f\x00"

type decodeCase struct {
	name   string
	in     string
	enc    string
	format Format
	lim    Limits
	want   record.Document // checked when reason is ""
	reason string
	null   bool // the value is nil, as kafka-go hands over a tombstone; in is ""
}

// value is the case's value as Decode gets it.
func (c decodeCase) value() []byte {
	if c.null {
		return nil
	}
	return []byte(c.in)
}

func decodeCases(t testing.TB) []decodeCase {
	const js = `{"id": "d1", "text": "Ada", "entity_types": ["person"], "metadata": {"k": 1}}`
	jsDoc := record.Document{ID: "d1", Text: "Ada", Types: []string{"person"}, Metadata: []byte(`{"k": 1}`)}
	text := " Zoë met Ada.\n"
	textDoc := record.Document{Text: text, Metadata: []byte("{}")}
	big := strings.Repeat("a", 5000)
	bigJSON := `{"text": "` + big + `"}`
	brokenStream := snappyStream(t, text)
	brokenStream = brokenStream[:len(brokenStream)-3]
	badCRC := []byte(snappyStream(t, text))
	badCRC[len(snappyStreamID)+4] ^= 1
	return []decodeCase{
		// JSON.
		{name: "json plain", in: js, format: FormatJSON, want: jsDoc},
		{name: "json default format", in: js, want: jsDoc},
		{name: "json identity", in: js, enc: "identity", format: FormatJSON, want: jsDoc},
		{name: "json IDENTITY spaced", in: js, enc: " IDENTITY ", format: FormatJSON, want: jsDoc},
		{name: "json blank encoding", in: js, enc: " \t", format: FormatJSON, want: jsDoc},
		{name: "json snappy block", in: snappyBlock(js), enc: "snappy", format: FormatJSON, want: jsDoc},
		{name: "json snappy stream", in: snappyStream(t, js), enc: "snappy", format: FormatJSON, want: jsDoc},
		{name: "json Snappy spaced", in: snappyBlock(js), enc: "  SnAPpy\t", format: FormatJSON, want: jsDoc},
		{name: "json snappy block large", in: snappyBlock(bigJSON), enc: "snappy", format: FormatJSON, lim: Limits{MaxBytes: 6000},
			want: record.Document{Text: big, Metadata: []byte("{}")}},
		{name: "json invalid", in: `hello`, format: FormatJSON, reason: record.ReasonInvalidJSON},
		{name: "json snappy invalid inside", in: snappyBlock(`hello`), enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidJSON},
		{name: "json missing text", in: `{"id": "x"}`, format: FormatJSON, reason: record.ReasonMissingText},
		{name: "json empty text", in: `{"text": " "}`, format: FormatJSON, reason: record.ReasonEmptyText},
		{name: "json invalid UTF-8", in: "{\"text\": \"caf\xe9\"}", format: FormatJSON, reason: record.ReasonInvalidUTF8},
		{name: "json snappy invalid UTF-8", in: snappyBlock("{\"text\": \"caf\xe9\"}"), enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidUTF8},
		{name: "json invalid types", in: `{"text": "a", "entity_types": [1]}`, format: FormatJSON, reason: record.ReasonInvalidTypes},
		{name: "json too many types", in: `{"text": "a", "entity_types": ["a", "b"]}`, format: FormatJSON, lim: Limits{MaxTypes: 1}, reason: record.ReasonTooManyTypes},
		{name: "json too large", in: bigJSON, format: FormatJSON, lim: Limits{MaxBytes: 1000}, reason: record.ReasonTooLarge},
		{name: "json snappy block decompressed too large", in: snappyBlock(bigJSON), enc: "snappy", format: FormatJSON, lim: Limits{MaxBytes: 1000}, reason: record.ReasonTooLarge},
		{name: "json snappy stream decompressed too large", in: snappyStream(t, bigJSON), enc: "snappy", format: FormatJSON, lim: Limits{MaxBytes: 1000}, reason: record.ReasonTooLarge},
		{name: "json snappy compressed too large", in: snappyBlock(js), enc: "snappy", format: FormatJSON, lim: Limits{MaxBytes: 20}, reason: record.ReasonTooLarge},
		{name: "json snappy bomb", in: snappyBomb, enc: "snappy", format: FormatJSON, lim: Limits{MaxBytes: 1 << 20}, reason: record.ReasonTooLarge},
		{name: "json snappy bomb unlimited", in: snappyBomb, enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		{name: "json snappy not snappy", in: js, enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		// A tombstone (a null value) was an invalid_json dead letter: it
		// holds no document, and it is no broken JSON either. kafka-go
		// hands over a value of no bytes as nil too, so both are
		// empty_value, whatever the format and the encoding.
		{name: "json tombstone", null: true, format: FormatJSON, reason: record.ReasonEmptyValue},
		{name: "json tombstone default format", null: true, reason: record.ReasonEmptyValue},
		{name: "json tombstone snappy", null: true, enc: "snappy", format: FormatJSON, reason: record.ReasonEmptyValue},
		{name: "json tombstone gzip", null: true, enc: "gzip", format: FormatJSON, reason: record.ReasonEmptyValue},
		{name: "json empty value", in: "", format: FormatJSON, reason: record.ReasonEmptyValue},
		{name: "json snappy empty", in: "", enc: "snappy", format: FormatJSON, reason: record.ReasonEmptyValue},
		{name: "json blank value", in: " ", format: FormatJSON, reason: record.ReasonInvalidJSON},
		// s2 extends the snappy block format; a value that uses the
		// extensions is not snappy.
		{name: "json s2 block", in: string(s2.Encode(nil, []byte(`{"text": "`+strings.Repeat("abcdefgh12345678", 50)+`"}`))), enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		{name: "json snappy truncated block", in: snappyBlock(js)[:10], enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		{name: "json snappy truncated stream", in: brokenStream, enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		{name: "json snappy stream bad CRC", in: string(badCRC), enc: "snappy", format: FormatJSON, reason: record.ReasonInvalidSnappy},
		{name: "json gzip", in: js, enc: "gzip", format: FormatJSON, reason: record.ReasonUnsupportedEncoding},
		{name: "json br", in: js, enc: "br", format: FormatJSON, reason: record.ReasonUnsupportedEncoding},
		{name: "json encoding list", in: js, enc: "snappy, identity", format: FormatJSON, reason: record.ReasonUnsupportedEncoding},

		// Text.
		{name: "text plain", in: text, format: FormatText, want: textDoc},
		{name: "text identity", in: text, enc: "Identity", format: FormatText, want: textDoc},
		{name: "text JSON-looking", in: js, format: FormatText, want: record.Document{Text: js, Metadata: []byte("{}")}},
		{name: "text snappy block", in: snappyBlock(text), enc: "snappy", format: FormatText, want: textDoc},
		{name: "text snappy stream", in: snappyStream(t, text), enc: "SNAPPY", format: FormatText, want: textDoc},
		{name: "text snappy stream large", in: snappyStream(t, strings.Repeat(big, 40)), enc: "snappy", format: FormatText, lim: Limits{MaxBytes: 200000},
			want: record.Document{Text: strings.Repeat(big, 40), Metadata: []byte("{}")}},
		{name: "text at the limit", in: "abcd", format: FormatText, lim: Limits{MaxBytes: 4}, want: record.Document{Text: "abcd", Metadata: []byte("{}")}},
		{name: "text too large", in: "abcde", format: FormatText, lim: Limits{MaxBytes: 4}, reason: record.ReasonTooLarge},
		{name: "text snappy decompressed too large", in: snappyBlock(big), enc: "snappy", format: FormatText, lim: Limits{MaxBytes: 1000}, reason: record.ReasonTooLarge},
		{name: "text snappy stream decompressed too large", in: snappyStream(t, big), enc: "snappy", format: FormatText, lim: Limits{MaxBytes: 1000}, reason: record.ReasonTooLarge},
		{name: "text snappy compressed too large", in: snappyBlock(text), enc: "snappy", format: FormatText, lim: Limits{MaxBytes: 5}, reason: record.ReasonTooLarge},
		{name: "text snappy bomb", in: snappyBomb, enc: "snappy", format: FormatText, lim: Limits{MaxBytes: 1 << 20}, reason: record.ReasonTooLarge},
		{name: "text invalid UTF-8", in: "caf\xe9", format: FormatText, reason: record.ReasonInvalidUTF8},
		{name: "text snappy invalid UTF-8", in: snappyBlock("caf\xe9"), enc: "snappy", format: FormatText, reason: record.ReasonInvalidUTF8},
		{name: "text tombstone", null: true, format: FormatText, reason: record.ReasonEmptyValue},
		{name: "text tombstone snappy", null: true, enc: "snappy", format: FormatText, reason: record.ReasonEmptyValue},
		{name: "text empty", in: "", format: FormatText, reason: record.ReasonEmptyValue},
		{name: "text blank", in: " \n\t\r ", format: FormatText, reason: record.ReasonEmptyText},
		{name: "text snappy blank", in: snappyBlock("  "), enc: "snappy", format: FormatText, reason: record.ReasonEmptyText},
		{name: "text snappy empty stream", in: snappyStreamID, enc: "snappy", format: FormatText, reason: record.ReasonEmptyText},
		{name: "text snappy not snappy", in: text, enc: "snappy", format: FormatText, reason: record.ReasonInvalidSnappy},
		{name: "text snappy truncated stream", in: brokenStream, enc: "snappy", format: FormatText, reason: record.ReasonInvalidSnappy},
		{name: "text gzip", in: text, enc: "gzip", format: FormatText, reason: record.ReasonUnsupportedEncoding},
		{name: "text control encoding", in: text, enc: strings.Repeat("\x18", 100), format: FormatText, reason: record.ReasonUnsupportedEncoding},
		{name: "text invalid UTF-8 encoding", in: "0", enc: strings.Repeat("\xa4", 12), format: FormatText, reason: record.ReasonUnsupportedEncoding},
		{name: "text long odd encoding", in: text, enc: strings.Repeat("x\n", 500), format: FormatText, reason: record.ReasonUnsupportedEncoding},
	}
}

// checkDecodeError fails unless err is a *record.InputError with a reason and a
// short one-line detail.
func checkDecodeError(t testing.TB, err error) *record.InputError {
	t.Helper()
	var de *record.InputError
	if !errors.As(err, &de) {
		t.Fatalf("err = %#v, not a *record.InputError", err)
	}
	if de.Reason == "" {
		t.Fatalf("empty reason in %q", de.Error())
	}
	if strings.ContainsAny(de.Error(), "\r\n") || len(de.Detail) > 200 {
		t.Fatalf("detail is not one short line: %q", de.Error())
	}
	return de
}

func TestDecode(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.value(), c.enc, DecodeOptions{Format: c.format, Limits: c.lim})
			if c.reason != "" {
				if err == nil {
					t.Fatalf("no error, want reason %s", c.reason)
				}
				if de := checkDecodeError(t, err); de.Reason != c.reason {
					t.Fatalf("err = %v, want reason %s", err, c.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != c.want.ID || got.Text != c.want.Text || !slices.Equal(got.Types, c.want.Types) || string(got.Metadata) != string(c.want.Metadata) {
				t.Errorf("got %+v (metadata %s), want %+v", got, got.Metadata, c.want)
			}
		})
	}
}

func TestDecodeSnappyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 17, 64, 65, 1000, 65535, 65536, 65537, 300000} {
		// Text from a small alphabet, so that it compresses, with copies of
		// many lengths and overlaps.
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString([]string{"a", "b", " ", "\n", "z", "ë"}[rng.IntN(6)])
		}
		s := "x" + sb.String()
		for name, enc := range map[string]string{"block": snappyBlock(s), "stream": snappyStream(t, s)} {
			got, err := Decode([]byte(enc), "snappy", DecodeOptions{Format: FormatText, Limits: Limits{MaxBytes: max(len(s), len(enc))}})
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", name, n, err)
			}
			if got.Text != s {
				t.Fatalf("%s of %d bytes: text differs", name, n)
			}
			_, err = Decode([]byte(enc), "snappy", DecodeOptions{Format: FormatText, Limits: Limits{MaxBytes: len(s) - 1}})
			if de := checkDecodeError(t, err); de.Reason != record.ReasonTooLarge {
				t.Fatalf("%s of %d bytes, limit one less: %v", name, n, err)
			}
		}
	}
}

// TestDecodeSnappyBomb checks that a value claiming or expanding to far more
// than the limit is refused without allocating what it claims.
func TestDecodeSnappyBomb(t *testing.T) {
	zeros := strings.Repeat("\x00", 64<<20)
	stream := snappyStream(t, zeros)
	block := snappyBlock(zeros[:1<<20])
	for _, c := range []struct {
		name   string
		in     string
		lim    Limits
		reason string
	}{
		{"block header claims 4 GiB", snappyBomb, Limits{MaxBytes: 1 << 20}, record.ReasonTooLarge},
		{"block header claims 4 GiB, no limit", snappyBomb, Limits{}, record.ReasonInvalidSnappy},
		{"real block of 1 MiB", block, Limits{MaxBytes: 64 << 10}, record.ReasonTooLarge},
		{"stream of 64 MiB", stream, Limits{MaxBytes: 4 << 20}, record.ReasonTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.lim.MaxBytes > 0 && len(c.in) >= c.lim.MaxBytes {
				t.Fatalf("input of %d bytes is refused for its own size", len(c.in))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode([]byte(c.in), "snappy", DecodeOptions{Format: FormatText, Limits: c.lim})
			runtime.ReadMemStats(&after)
			if de := checkDecodeError(t, err); de.Reason != c.reason {
				t.Fatalf("err = %v, want reason %s", err, c.reason)
			}
			// The input copy, a stream reader (about 140 KiB) and the
			// output, grown by io.ReadAll: about 3 times the limit, 5
			// with -race. Far less than the 64 MiB and 4 GiB claimed.
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("input of %d bytes, allocated %d", len(c.in), got)
			if got > uint64(len(c.in)+8*c.lim.MaxBytes+1<<20) {
				t.Errorf("allocated %d bytes", got)
			}
		})
	}
}

func TestQuoteShort(t *testing.T) {
	for _, s := range []string{"", "gzip", strings.Repeat("a", 46), strings.Repeat("a", 47), strings.Repeat("ë", 30),
		strings.Repeat("\xa4", 12), strings.Repeat("\x18", 12), strings.Repeat("x\n", 100), "😀\xff😀"} {
		got := quoteShort(s)
		if strings.ContainsAny(got, "\r\n") || len(got) > 48+len("…") || !utf8.ValidString(got) {
			t.Errorf("quoteShort(%q) = %q", s, got)
		}
		if q := strconv.Quote(s); len(q) <= 48 && got != q {
			t.Errorf("quoteShort(%q) = %q, want %q", s, got, q)
		}
	}
}

func TestDecodeUnknownFormat(t *testing.T) {
	_, err := Decode([]byte("a"), "", DecodeOptions{Format: "xml"})
	var de *record.InputError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("err = %#v, want a plain error", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases(f) {
		if len(c.in) > 4096 {
			continue
		}
		f.Add(c.value(), c.enc, c.format == FormatText, c.lim.MaxBytes, c.lim.MaxTypes)
	}
	f.Fuzz(func(t *testing.T, value []byte, enc string, text bool, maxBytes, maxTypes int) {
		opts := DecodeOptions{Format: FormatJSON, Limits: Limits{MaxBytes: maxBytes % (1 << 20), MaxTypes: maxTypes}}
		if text {
			opts.Format = FormatText
		}
		orig := slices.Clone(value)
		d, err := Decode(value, enc, opts)
		if !bytes.Equal(orig, value) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if strings.TrimSpace(d.Text) == "" || !utf8.ValidString(d.Text) || len(d.Metadata) == 0 {
			t.Fatalf("bad document %+v", d)
		}
		if mb := opts.Limits.MaxBytes; mb > 0 && len(d.Text) > mb {
			t.Fatalf("text of %d bytes over the limit of %d", len(d.Text), mb)
		}
		if text && strings.TrimSpace(enc) == "" && d.Text != string(value) {
			t.Fatalf("text %q is not the value %q", d.Text, value)
		}
	})
}
