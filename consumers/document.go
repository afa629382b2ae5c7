package consumers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nerstream/nerstream/record"
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
func DecodeJSON(value []byte, lim Limits) (record.Document, error) {
	if lim.MaxBytes > 0 && len(value) > lim.MaxBytes {
		return record.Document{}, &record.InputError{Reason: record.ReasonTooLarge, Detail: fmt.Sprintf("value of %d bytes is over the limit of %d", len(value), lim.MaxBytes)}
	}
	if !utf8.Valid(value) {
		return record.Document{}, &record.InputError{Reason: record.ReasonInvalidUTF8, Detail: "value is not valid UTF-8"}
	}
	var rec struct {
		ID          *json.RawMessage `json:"id"`
		Text        *string          `json:"text"`
		EntityTypes json.RawMessage  `json:"entity_types"`
		Metadata    json.RawMessage  `json:"metadata"`
	}
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return record.Document{}, &record.InputError{Reason: record.ReasonInvalidJSON, Detail: "value is not a JSON object"}
	}
	if err := json.Unmarshal(trimmed, &rec); err != nil {
		return record.Document{}, &record.InputError{Reason: record.ReasonInvalidJSON, Detail: oneLine(err.Error())}
	}
	if rec.Text == nil {
		return record.Document{}, &record.InputError{Reason: record.ReasonMissingText, Detail: `no "text" string`}
	}
	d := record.Document{Text: *rec.Text, Metadata: json.RawMessage("{}")}
	if strings.TrimSpace(d.Text) == "" {
		return record.Document{}, &record.InputError{Reason: record.ReasonEmptyText, Detail: `"text" is empty`}
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
			return record.Document{}, &record.InputError{Reason: record.ReasonInvalidJSON, Detail: `"id" is neither a string nor a number`}
		}
	}
	if len(rec.EntityTypes) > 0 && string(rec.EntityTypes) != "null" {
		if err := json.Unmarshal(rec.EntityTypes, &d.Types); err != nil {
			return record.Document{}, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" is not a list of strings`}
		}
		if len(d.Types) == 0 {
			return record.Document{}, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" is an empty list`}
		}
		for _, t := range d.Types {
			if strings.TrimSpace(t) == "" {
				return record.Document{}, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" holds an empty type`}
			}
		}
		if lim.MaxTypes > 0 && len(d.Types) > lim.MaxTypes {
			return record.Document{}, &record.InputError{Reason: record.ReasonTooManyTypes, Detail: fmt.Sprintf("%d entity types is over the limit of %d", len(d.Types), lim.MaxTypes)}
		}
	}
	if len(rec.Metadata) > 0 && string(rec.Metadata) != "null" {
		if bytes.TrimSpace(rec.Metadata)[0] != '{' {
			return record.Document{}, &record.InputError{Reason: record.ReasonInvalidJSON, Detail: `"metadata" is not an object`}
		}
		d.Metadata = rec.Metadata
	}
	return d, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
