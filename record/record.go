// Package record is the vocabulary that nerstream's packages share: the
// document that comes in, the annotation that goes out, its entities, where a
// record came from, record headers, and the reasons a record becomes a dead
// letter.
//
// It holds plain types and constants, and the one check that every reader
// of JSON documents shares ([CheckUnicode]), and imports the standard
// library only,
// as database/sql/driver is the small leaf that database/sql and its drivers
// share: consumers decode into a [Document], model fills an annotation with
// [Entity] values, pipeline carries [Header]s, and producers writes an
// [Annotation] as the output record (DESIGN.md, "Records").
package record

import (
	"bytes"
	"encoding/json"
	"math"
)

// Document is one text to annotate: a decoded input record, a line of a JSON
// lines file, or one document of a request.
type Document struct {
	// ID names the document in its annotation. Empty means the reader
	// names it (topic/partition/offset for a Kafka record, FILE:LINE for
	// a file).
	ID string
	// Text is the passage.
	Text string
	// Types are the entity types to ask about; empty means the configured
	// defaults.
	Types []string
	// Metadata is the input's "metadata" object, passed through to the
	// annotation as it is; nil means none ({} in the annotation).
	Metadata json.RawMessage
	// Fields, when set, are the document's texts, each annotated on its
	// own with spans relative to it (input.fields.text naming several
	// fields); Text is then the first of them.
	Fields []Field
	// Event is the input value as decoded (decompressed), which an
	// enriched output record copies; nil when the reader keeps none.
	Event json.RawMessage
	// Key, when set, is the output record's key, read from the field
	// that input.fields.key names.
	Key string
}

// Field is one text of a document: the JSON Pointer (RFC 6901) of the
// member it was read from, and its text.
type Field struct {
	Pointer string
	Text    string
}

// Entity is one recognised mention, located in the document's text. Start
// and End are Unicode code-point offsets, end exclusive, as a Python slice:
// text[Start:End] == Text always.
type Entity struct {
	Text  string `json:"text"`
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
	// Mention is the model's spelling when it differs from Text (in case
	// or white space).
	Mention string `json:"mention,omitempty"`
	// Field is the JSON Pointer of the input field the mention is in,
	// when the document has several texts; Start and End are then
	// offsets into that field's text.
	Field string `json:"field,omitempty"`
	// Score is the model's probability of the mention, 0 to 1, rounded
	// to 4 digits (see [RoundScore]); nil where the engine gave no token
	// probabilities. A pointer, so that a score of 0 is written.
	Score *float64 `json:"score,omitempty"`
}

// RoundScore rounds a probability to the 4 digits that records carry, and
// clamps it to [0, 1].
func RoundScore(p float64) float64 {
	switch {
	case !(p > 0): // NaN too
		return 0
	case p >= 1:
		return 1
	}
	return math.Round(p*1e4) / 1e4
}

// Tags maps each entity type to its unique mentions, in the order they
// come: the form that tagging and search indexes take.
func Tags(ents []Entity) map[string][]string {
	tags := map[string][]string{}
	seen := map[[2]string]bool{}
	for _, e := range ents {
		k := [2]string{e.Type, e.Text}
		if !seen[k] {
			seen[k] = true
			tags[e.Type] = append(tags[e.Type], e.Text)
		}
	}
	return tags
}

// Mention is something the model named that the text does not hold.
type Mention struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Source is where an input record came from.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Annotation is the output record of one document (DESIGN.md, "Records"),
// written as JSON to the annotation topic keyed by ID, and by `nerstream
// annotate` and `nerstream serve`.
type Annotation struct {
	ID          string    `json:"id"`
	Source      *Source   `json:"source,omitempty"`
	Model       string    `json:"model"`
	EntityTypes []string  `json:"entity_types"`
	Entities    []Entity  `json:"entities"`
	Unaligned   []Mention `json:"unaligned,omitempty"`
	// EmptyScores holds, for each entity type whose answer was "[]" (in
	// every window), the model's probability of that answer: how sure it
	// is that the text names no such entity. Rounded as Entity.Score.
	EmptyScores map[string]float64 `json:"empty_scores,omitempty"`
	Metadata    json.RawMessage    `json:"metadata"`
}

// MarshalJSON writes the record as DESIGN.md has it: empty lists as [] rather
// than null, and empty or null metadata as {}, so that consumers of the
// records need no null checks. It escapes no HTML: an encoder that does
// (json.Marshal) still escapes the result.
func (a Annotation) MarshalJSON() ([]byte, error) {
	type plain Annotation // without this method
	p := plain(a)
	if p.EntityTypes == nil {
		p.EntityTypes = []string{}
	}
	if p.Entities == nil {
		p.Entities = []Entity{}
	}
	if m := bytes.TrimSpace(p.Metadata); len(m) == 0 || bytes.Equal(m, []byte("null")) {
		p.Metadata = json.RawMessage("{}")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Header is one Kafka record header. Keys may repeat; order is kept.
type Header struct {
	Key   string
	Value []byte
}

// InputError is input that cannot be annotated: a value that is not a
// document, or a document the model refuses. Reason is one of the Reason
// constants, the value of a dead letter's nerstream-error header; Detail
// says what was wrong, in one line, and never holds the document's text.
type InputError struct {
	Reason string
	Detail string
}

func (e *InputError) Error() string { return e.Reason + ": " + e.Detail }

// The reasons a record becomes a dead letter, as its nerstream-error header
// says.
const (
	// Decoding the record's value (consumers).

	// ReasonEmptyValue is a record without a value: a null value (a
	// tombstone, which compacted topics use to delete a key) or a value of
	// no bytes; kafka-go hands both over as nil.
	ReasonEmptyValue  = "empty_value"
	ReasonInvalidJSON = "invalid_json"
	ReasonMissingText = "missing_text"
	// ReasonMissingField is a value without a string at a text field
	// that input.fields.text names (other than the default "/text").
	ReasonMissingField = "missing_field"
	ReasonInvalidTypes = "invalid_entity_types"
	ReasonTooLarge     = "value_too_large"
	// ReasonInvalidSnappy is a value with content-encoding snappy whose
	// body is neither a snappy block nor a snappy stream.
	ReasonInvalidSnappy = "invalid_snappy"
	// ReasonUnsupportedEncoding is a content-encoding other than snappy
	// or identity.
	ReasonUnsupportedEncoding = "unsupported_content_encoding"
	// ReasonInvalidValue is a value that failed to decode for a reason
	// that has no code of its own.
	ReasonInvalidValue = "invalid_value"

	// Checking the document (consumers and model).

	ReasonEmptyText     = "empty_text"
	ReasonInvalidUTF8   = "invalid_utf8"
	ReasonTooManyTypes  = "too_many_entity_types"
	ReasonNoTypes       = "no_entity_types"
	ReasonInvalidType   = "invalid_entity_type"
	ReasonTextTooLong   = "text_too_long"
	ReasonTypeTooLong   = "entity_type_too_long"
	ReasonContextTooBig = "prompt_exceeds_context"
	// ReasonEngineRefused is a document whose text the engine refused on
	// its own (a remote server answered 400 to counting its tokens).
	ReasonEngineRefused = "engine_refused"

	// Processing (pipeline).

	// ReasonInferenceFailed is a document on which the model failed
	// retry.max_attempts times.
	ReasonInferenceFailed = "inference_failed"
	// ReasonEncodeFailed is an annotation that could not be encoded as a
	// record.
	ReasonEncodeFailed = "encode_failed"
)
