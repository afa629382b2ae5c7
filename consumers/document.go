package consumers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

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
// "text" is required. Unknown fields are ignored. A value that is not
// Unicode text (see [record.CheckUnicode]: invalid UTF-8, or a lone
// surrogate escape such as "\ud800") is refused with reason
// invalid_utf8.
//
// On an error, the document returned holds the value's id when it has a
// readable one (valid JSON, a string or a number, Unicode), and nothing
// else: for the reports that name the document (annotate's error lines).
func DecodeJSON(value []byte, lim Limits) (record.Document, error) {
	if lim.MaxBytes > 0 && len(value) > lim.MaxBytes {
		return record.Document{}, &record.InputError{Reason: record.ReasonTooLarge, Detail: fmt.Sprintf("value of %d bytes is over the limit of %d", len(value), lim.MaxBytes)}
	}
	var rec struct {
		ID          *json.RawMessage `json:"id"`
		Text        *string          `json:"text"`
		EntityTypes json.RawMessage  `json:"entity_types"`
		Metadata    json.RawMessage  `json:"metadata"`
	}
	// Not Unicode comes first of the reasons, but after the id is read.
	notUnicode := record.CheckUnicode("value", value)
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return record.Document{}, cmp.Or(notUnicode, error(&record.InputError{Reason: record.ReasonInvalidJSON, Detail: "value is not a JSON object"}))
	}
	if err := json.Unmarshal(trimmed, &rec); err != nil {
		return record.Document{}, cmp.Or(notUnicode, error(&record.InputError{Reason: record.ReasonInvalidJSON, Detail: oneLine(err.Error())}))
	}
	id, idErr := decodeID(rec.ID)
	fail := func(err error) (record.Document, error) { return record.Document{ID: id}, err }
	if notUnicode != nil {
		return fail(notUnicode)
	}
	if idErr != nil {
		return fail(idErr)
	}
	if rec.Text == nil {
		return fail(&record.InputError{Reason: record.ReasonMissingText, Detail: `no "text" string`})
	}
	d := record.Document{ID: id, Text: *rec.Text, Metadata: json.RawMessage("{}")}
	if strings.TrimSpace(d.Text) == "" {
		return fail(&record.InputError{Reason: record.ReasonEmptyText, Detail: `"text" is empty`})
	}
	types, err := decodeTypes(rec.EntityTypes, lim)
	if err != nil {
		return fail(err)
	}
	d.Types = types
	if len(rec.Metadata) > 0 && string(rec.Metadata) != "null" {
		if bytes.TrimSpace(rec.Metadata)[0] != '{' {
			return fail(&record.InputError{Reason: record.ReasonInvalidJSON, Detail: `"metadata" is not an object`})
		}
		d.Metadata = rec.Metadata
	}
	return d, nil
}

// decodeTypes reads the "entity_types" field: nil when it is absent or
// null.
func decodeTypes(raw json.RawMessage, lim Limits) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var types []string
	if err := json.Unmarshal(raw, &types); err != nil {
		return nil, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" is not a list of strings`}
	}
	if len(types) == 0 {
		return nil, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" is an empty list`}
	}
	for _, t := range types {
		if strings.TrimSpace(t) == "" {
			return nil, &record.InputError{Reason: record.ReasonInvalidTypes, Detail: `"entity_types" holds an empty type`}
		}
	}
	if lim.MaxTypes > 0 && len(types) > lim.MaxTypes {
		return nil, &record.InputError{Reason: record.ReasonTooManyTypes, Detail: fmt.Sprintf("%d entity types is over the limit of %d", len(types), lim.MaxTypes)}
	}
	return types, nil
}

// decodeID reads the "id" field: a string, or a number as written; ""
// when it is absent or null, or not Unicode (the error is then the
// value's).
func decodeID(raw *json.RawMessage) (string, error) {
	if raw == nil || record.CheckUnicode("id", *raw) != nil {
		return "", nil
	}
	var s string
	var n json.Number
	switch {
	case json.Unmarshal(*raw, &s) == nil:
		return s, nil
	case json.Unmarshal(*raw, &n) == nil:
		return n.String(), nil
	case string(*raw) == "null":
		return "", nil
	}
	return "", &record.InputError{Reason: record.ReasonInvalidJSON, Detail: `"id" is neither a string nor a number`}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
