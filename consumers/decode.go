package consumers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/snappy"

	"github.com/nerstream/nerstream/record"
)

// Format is how an input value holds a document (input.format).
type Format string

// The input formats.
const (
	// FormatJSON is a JSON object per value; see [DecodeJSON].
	FormatJSON Format = "json"
	// FormatText takes the whole value as the text.
	FormatText Format = "text"
)

// DecodeOptions say how [Decode] reads a value.
type DecodeOptions struct {
	// Format is the value's format; "" means FormatJSON.
	Format Format
	// Limits bound the value, both as received and decompressed.
	Limits Limits
	// Fields selects the document's members of a JSON value; nil reads
	// DESIGN.md's schema.
	Fields *Selector
}

// snappyStreamID is the stream identifier chunk that opens a snappy
// framed stream (https://github.com/google/snappy/blob/main/framing_format.txt).
const snappyStreamID = "\xff\x06\x00\x00sNaPpY"

// maxSnappyRatio bounds how many bytes one byte of a standard snappy
// block can decode to: the best case is a 3-byte copy of 64 bytes. A block
// whose header claims more is corrupt, whatever Limits.MaxBytes says.
const maxSnappyRatio = 22

// Decode decodes an input value into a document. contentEncoding is the
// value of the record's content-encoding header, "" when it has none:
// "snappy" (any case, surrounding white space ignored) means the value is
// a snappy block or a snappy framed stream, decompressed first; "" and
// "identity" mean the value is as is; anything else is a [*record.InputError]
// with reason unsupported_content_encoding.
//
// A value of no bytes (a Kafka tombstone: a null value) is a
// [*record.InputError] with reason empty_value, whatever the format and the
// content-encoding: it holds no document, and it is no broken JSON either.
//
// opts.Limits.MaxBytes bounds both the value as received and as
// decompressed, and a snappy value is never decompressed past it. Every
// error about the value is a [*record.InputError]; an unknown opts.Format is a
// plain error.
func Decode(value []byte, contentEncoding string, opts DecodeOptions) (record.Document, error) {
	format := opts.Format
	if format == "" {
		format = FormatJSON
	}
	if format != FormatJSON && format != FormatText {
		return record.Document{}, fmt.Errorf("consumers: unknown input format %s", quoteShort(string(format)))
	}
	if len(value) == 0 {
		return record.Document{}, &record.InputError{Reason: record.ReasonEmptyValue, Detail: "the record has no value (a tombstone)"}
	}
	lim := opts.Limits
	enc := strings.TrimSpace(contentEncoding)
	switch {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case strings.EqualFold(enc, "snappy"):
		if err := checkSize(len(value), lim, "compressed value"); err != nil {
			return record.Document{}, err
		}
		var err error
		if value, err = unsnappy(value, lim); err != nil {
			return record.Document{}, err
		}
	default:
		return record.Document{}, &record.InputError{Reason: record.ReasonUnsupportedEncoding, Detail: "content-encoding " + quoteShort(contentEncoding) + " is not supported (want snappy or identity)"}
	}
	if format == FormatJSON {
		return DecodeFields(value, lim, opts.Fields)
	}
	return decodeText(value, lim)
}

// decodeText takes the whole value as the text.
func decodeText(value []byte, lim Limits) (record.Document, error) {
	if err := checkSize(len(value), lim, "value"); err != nil {
		return record.Document{}, err
	}
	if !utf8.Valid(value) {
		return record.Document{}, &record.InputError{Reason: record.ReasonInvalidUTF8, Detail: "value is not valid UTF-8"}
	}
	if len(bytes.TrimSpace(value)) == 0 {
		return record.Document{}, &record.InputError{Reason: record.ReasonEmptyText, Detail: "value is empty or only white space"}
	}
	return record.Document{Text: string(value), Metadata: []byte("{}")}, nil
}

// unsnappy decompresses a snappy block or framed stream, within
// lim.MaxBytes.
func unsnappy(value []byte, lim Limits) ([]byte, error) {
	if bytes.HasPrefix(value, []byte(snappyStreamID)) {
		return unsnappyStream(value, lim)
	}
	n, err := snappy.DecodedLen(value)
	switch {
	case errors.Is(err, snappy.ErrTooLarge):
		return nil, &record.InputError{Reason: record.ReasonTooLarge, Detail: "snappy block claims a length over 2 GiB"}
	case err != nil:
		return nil, &record.InputError{Reason: record.ReasonInvalidSnappy, Detail: "snappy block has no valid length header"}
	}
	if err := checkSize(n, lim, "decompressed value"); err != nil {
		return nil, err
	}
	if uint64(n) > maxSnappyRatio*uint64(len(value)) {
		return nil, &record.InputError{Reason: record.ReasonInvalidSnappy, Detail: fmt.Sprintf("snappy block of %d bytes claims %d, more than it can hold", len(value), n)}
	}
	// DecodeStrict, not Decode: the header says snappy, so the s2
	// extensions that Decode also accepts are corrupt input here.
	out, err := snappy.DecodeStrict(nil, value)
	if err != nil {
		return nil, &record.InputError{Reason: record.ReasonInvalidSnappy, Detail: "snappy block: " + oneLine(err.Error())}
	}
	return out, nil
}

var snappyReaders = sync.Pool{New: func() any { return snappy.NewReader(nil) }}

// unsnappyStream decompresses a snappy framed stream, reading no more than
// lim.MaxBytes+1 bytes of it.
func unsnappyStream(value []byte, lim Limits) ([]byte, error) {
	zr := snappyReaders.Get().(*snappy.Reader)
	defer snappyReaders.Put(zr)
	defer zr.Reset(nil)
	zr.Reset(bytes.NewReader(value))
	var r io.Reader = zr
	if lim.MaxBytes > 0 {
		r = io.LimitReader(zr, int64(lim.MaxBytes)+1)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, &record.InputError{Reason: record.ReasonInvalidSnappy, Detail: "snappy stream: " + oneLine(err.Error())}
	}
	if lim.MaxBytes > 0 && len(out) > lim.MaxBytes {
		return nil, &record.InputError{Reason: record.ReasonTooLarge, Detail: fmt.Sprintf("decompressed value is over the limit of %d bytes", lim.MaxBytes)}
	}
	return out, nil
}

// checkSize is a value_too_large error when n is over lim.MaxBytes.
func checkSize(n int, lim Limits, what string) error {
	if lim.MaxBytes > 0 && n > lim.MaxBytes {
		return &record.InputError{Reason: record.ReasonTooLarge, Detail: fmt.Sprintf("%s of %d bytes is over the limit of %d", what, n, lim.MaxBytes)}
	}
	return nil
}

// quoteShort quotes s for an error detail: one line of at most about 50
// bytes, a prefix of s and "…" when s is longer.
func quoteShort(s string) string {
	const max = 48
	n, end := 2, 0 // the quoted length of s[:end], quotes included
	for end < len(s) {
		_, w := utf8.DecodeRuneInString(s[end:])
		qn := len(strconv.Quote(s[end:end+w])) - 2
		if n+qn > max {
			return strconv.Quote(s[:end]) + "…"
		}
		n += qn
		end += w
	}
	return strconv.Quote(s)
}
