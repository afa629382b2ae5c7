package consumers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nerstream/nerstream/internal/jsonptr"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/record"
)

// FieldsConfig is input.fields: the members of a JSON value that hold the
// document, each a JSON Pointer (RFC 6901: "/message", "/error/detail",
// "/a~1b" for the key "a/b"). The defaults read DESIGN.md's schema.
type FieldsConfig struct {
	// Text are the members that hold the text; several are annotated as
	// separate texts, with spans relative to each and entities naming
	// their field. With one, a value without a string there is a dead
	// letter (missing_field); with several, absent members are skipped
	// and only a value with none of them is. Default: ["/text"].
	Text []string `yaml:"text"`
	// ID holds the document id, a string or a number. Default: "/id".
	ID string `yaml:"id"`
	// EntityTypes holds the entity types, a list of strings. Default:
	// "/entity_types".
	EntityTypes string `yaml:"entity_types"`
	// Key holds the output record's key, a string or a number. Default:
	// "" (the document id for an annotation, the input's key for an
	// enriched event).
	Key string `yaml:"key"`
}

// DefaultFieldsConfig returns the fields that zero values stand for.
func DefaultFieldsConfig() FieldsConfig {
	return FieldsConfig{Text: []string{"/text"}, ID: "/id", EntityTypes: "/entity_types"}
}

// Validate reports every pointer that does not parse, at its YAML key.
func (f FieldsConfig) Validate() error {
	var p problems.List
	if len(f.Text) == 0 {
		p.Addf("text", "must name at least one field")
	}
	if len(f.Text) > maxTextFields {
		p.Addf("text", "%d fields is over the limit of %d", len(f.Text), maxTextFields)
	}
	for i, t := range f.Text {
		if t == "" {
			p.Addf(fmt.Sprintf("text[%d]", i), "must name a member, not the whole value")
			continue
		}
		checkPointer(&p, fmt.Sprintf("text[%d]", i), t)
	}
	for _, f := range []struct{ key, ptr string }{{"id", f.ID}, {"entity_types", f.EntityTypes}, {"key", f.Key}} {
		if f.ptr != "" {
			checkPointer(&p, f.key, f.ptr)
		}
	}
	return p.Err()
}

// maxTextFields bounds input.fields.text.
const maxTextFields = 16

func checkPointer(p *problems.List, key, ptr string) {
	if ptr == "" {
		p.Addf(key, "must name a member, not the whole value")
		return
	}
	if _, err := jsonptr.Parse(ptr); err != nil {
		p.Addf(key, "%s: %v", quoteShort(ptr), err)
	}
}

// isDefault reports whether f reads DESIGN.md's schema, which DecodeJSON
// reads.
func (f FieldsConfig) isDefault() bool {
	d := DefaultFieldsConfig()
	return len(f.Text) == 1 && f.Text[0] == d.Text[0] && f.ID == d.ID && f.EntityTypes == d.EntityTypes && f.Key == ""
}

// Selector reads the fields of a [FieldsConfig] from JSON values; make one
// with [FieldsConfig.Selector].
type Selector struct {
	text                 []jsonptr.Pointer
	id, types, key, meta jsonptr.Pointer
	hasKey               bool
}

// Selector parses the pointers. It returns nil, and no error, for the
// default fields: [DecodeJSON] reads those.
func (f FieldsConfig) Selector() (*Selector, error) {
	f = fillFields(f)
	if f.isDefault() {
		return nil, nil
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("input.fields: %w", err)
	}
	s := &Selector{meta: jsonptr.MustParse("/metadata")}
	for _, t := range f.Text {
		s.text = append(s.text, jsonptr.MustParse(t))
	}
	s.id, s.types = jsonptr.MustParse(f.ID), jsonptr.MustParse(f.EntityTypes)
	if f.Key != "" {
		s.key, s.hasKey = jsonptr.MustParse(f.Key), true
	}
	return s, nil
}

func fillFields(f FieldsConfig) FieldsConfig {
	d := DefaultFieldsConfig()
	if len(f.Text) == 0 {
		f.Text = d.Text
	}
	f.ID = cmp.Or(f.ID, d.ID)
	f.EntityTypes = cmp.Or(f.EntityTypes, d.EntityTypes)
	return f
}

// DecodeFields decodes a JSON value whose document lies at the selector's
// fields; a nil selector reads DESIGN.md's schema ([DecodeJSON]). The
// document keeps the value as its Event. A value without a string at its
// text field is a [*record.InputError] with reason missing_field, whose
// detail names the pointer; the other reasons are DecodeJSON's. Metadata
// is the "/metadata" member when it is an object, else {}.
func DecodeFields(value []byte, lim Limits, sel *Selector) (record.Document, error) {
	if sel == nil {
		d, err := DecodeJSON(value, lim)
		if err == nil {
			d.Event = value
		}
		return d, err
	}
	if lim.MaxBytes > 0 && len(value) > lim.MaxBytes {
		return record.Document{}, &record.InputError{Reason: record.ReasonTooLarge, Detail: fmt.Sprintf("value of %d bytes is over the limit of %d", len(value), lim.MaxBytes)}
	}
	notUnicode := record.CheckUnicode("value", value)
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return record.Document{}, cmp.Or(notUnicode, error(&record.InputError{Reason: record.ReasonInvalidJSON, Detail: "value is not a JSON object"}))
	}
	if !json.Valid(trimmed) {
		return record.Document{}, cmp.Or(notUnicode, error(&record.InputError{Reason: record.ReasonInvalidJSON, Detail: "value is not valid JSON"}))
	}
	var id string
	if raw, err := jsonptr.Get(trimmed, sel.id); err == nil {
		raw := json.RawMessage(raw)
		var idErr error
		if id, idErr = decodeID(&raw); idErr != nil && notUnicode == nil {
			return record.Document{}, &record.InputError{Reason: record.ReasonInvalidJSON, Detail: fmt.Sprintf("the id at %s is neither a string nor a number", quoteShort(sel.id.String()))}
		}
	}
	fail := func(err error) (record.Document, error) { return record.Document{ID: id}, err }
	if notUnicode != nil {
		return fail(notUnicode)
	}
	d := record.Document{ID: id, Metadata: json.RawMessage("{}"), Event: value}
	for _, p := range sel.text {
		raw, err := jsonptr.Get(trimmed, p)
		if errors.Is(err, jsonptr.ErrNotFound) && len(sel.text) > 1 {
			continue // an optional field of several
		}
		var text string
		if err != nil || raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
			what := "no member"
			if err == nil {
				what = "no string"
			}
			return fail(&record.InputError{Reason: record.ReasonMissingField, Detail: fmt.Sprintf("%s at %s", what, quoteShort(p.String()))})
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		d.Fields = append(d.Fields, record.Field{Pointer: p.String(), Text: text})
	}
	if len(d.Fields) == 0 {
		if len(sel.text) == 1 {
			return fail(&record.InputError{Reason: record.ReasonEmptyText, Detail: fmt.Sprintf("the text at %s is empty", quoteShort(sel.text[0].String()))})
		}
		return fail(&record.InputError{Reason: record.ReasonMissingField, Detail: fmt.Sprintf("no text at any of the %d fields of input.fields.text", len(sel.text))})
	}
	d.Text = d.Fields[0].Text
	if len(sel.text) == 1 {
		d.Fields = nil
	}
	if raw, err := jsonptr.Get(trimmed, sel.types); err == nil {
		types, err := decodeTypes(raw, lim)
		if err != nil {
			return fail(err)
		}
		d.Types = types
	}
	if raw, err := jsonptr.Get(trimmed, sel.meta); err == nil && raw[0] == '{' {
		d.Metadata = raw
	}
	if sel.hasKey {
		if raw, err := jsonptr.Get(trimmed, sel.key); err == nil {
			raw := json.RawMessage(raw)
			d.Key, _ = decodeID(&raw)
		}
	}
	return d, nil
}
