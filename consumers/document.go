package consumers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Document is a decoded input record.
type Document struct {
	// ID is the record's "id"; empty when the record has none, and the
	// caller then names it (topic/partition/offset, or file:line).
	ID string
	// Text is the passage; never empty.
	Text string
	// EntityTypes are the record's "entity_types"; empty means the
	// configured defaults.
	EntityTypes []string
	// Metadata is the record's "metadata" object, passed through; "{}"
	// when absent.
	Metadata json.RawMessage
}

// DecodeError is an input value that cannot be a document. Reason is a
// short code for the dead-letter header nerstream-error.
type DecodeError struct {
	Reason string
	Detail string
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Detail }

// The reasons of a [DecodeError].
const (
	ReasonInvalidJSON  = "invalid_json"
	ReasonMissingText  = "missing_text"
	ReasonEmptyText    = "empty_text"
	ReasonInvalidUTF8  = "invalid_utf8"
	ReasonInvalidTypes = "invalid_entity_types"
	ReasonTooManyTypes = "too_many_entity_types"
	ReasonTooLarge     = "value_too_large"
)

// Limits bound what a document may hold. Zero values mean no bound.
type Limits struct {
	// MaxBytes bounds the value's size.
	MaxBytes int
	// MaxTypes bounds the number of entity types.
	MaxTypes int
}

// DecodeJSON decodes a JSON input value:
// {"id": "…", "text": "…", "entity_types": ["…"], "metadata": {…}}. Only
// "text" is required. Unknown fields are ignored.
func DecodeJSON(value []byte, lim Limits) (Document, error) {
	if lim.MaxBytes > 0 && len(value) > lim.MaxBytes {
		return Document{}, &DecodeError{ReasonTooLarge, fmt.Sprintf("value of %d bytes is over the limit of %d", len(value), lim.MaxBytes)}
	}
	if !utf8.Valid(value) {
		return Document{}, &DecodeError{ReasonInvalidUTF8, "value is not valid UTF-8"}
	}
	var rec struct {
		ID          *json.RawMessage `json:"id"`
		Text        *string          `json:"text"`
		EntityTypes json.RawMessage  `json:"entity_types"`
		Metadata    json.RawMessage  `json:"metadata"`
	}
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Document{}, &DecodeError{ReasonInvalidJSON, "value is not a JSON object"}
	}
	if err := json.Unmarshal(trimmed, &rec); err != nil {
		return Document{}, &DecodeError{ReasonInvalidJSON, oneLine(err.Error())}
	}
	if rec.Text == nil {
		return Document{}, &DecodeError{ReasonMissingText, `no "text" string`}
	}
	d := Document{Text: *rec.Text, Metadata: json.RawMessage("{}")}
	if strings.TrimSpace(d.Text) == "" {
		return Document{}, &DecodeError{ReasonEmptyText, `"text" is empty`}
	}
	if rec.ID != nil {
		var s string
		var n json.Number
		switch {
		case json.Unmarshal(*rec.ID, &s) == nil:
			d.ID = s
		case json.Unmarshal(*rec.ID, &n) == nil:
			d.ID = n.String()
		case string(*rec.ID) == "null":
		default:
			return Document{}, &DecodeError{ReasonInvalidJSON, `"id" is neither a string nor a number`}
		}
	}
	if len(rec.EntityTypes) > 0 && string(rec.EntityTypes) != "null" {
		if err := json.Unmarshal(rec.EntityTypes, &d.EntityTypes); err != nil {
			return Document{}, &DecodeError{ReasonInvalidTypes, `"entity_types" is not a list of strings`}
		}
		if len(d.EntityTypes) == 0 {
			return Document{}, &DecodeError{ReasonInvalidTypes, `"entity_types" is an empty list`}
		}
		for _, t := range d.EntityTypes {
			if strings.TrimSpace(t) == "" {
				return Document{}, &DecodeError{ReasonInvalidTypes, `"entity_types" holds an empty type`}
			}
		}
		if lim.MaxTypes > 0 && len(d.EntityTypes) > lim.MaxTypes {
			return Document{}, &DecodeError{ReasonTooManyTypes, fmt.Sprintf("%d entity types is over the limit of %d", len(d.EntityTypes), lim.MaxTypes)}
		}
	}
	if len(rec.Metadata) > 0 && string(rec.Metadata) != "null" {
		if bytes.TrimSpace(rec.Metadata)[0] != '{' {
			return Document{}, &DecodeError{ReasonInvalidJSON, `"metadata" is not an object`}
		}
		d.Metadata = rec.Metadata
	}
	return d, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
