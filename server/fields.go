package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/nerstream/nerstream/internal/jsonptr"
	"github.com/nerstream/nerstream/record"
)

// requestFields is the "fields" of a document of /v1/annotate that sends
// an "event": the JSON Pointers of its members, as input.fields has them.
type requestFields struct {
	Text        []string `json:"text"`
	ID          string   `json:"id"`
	EntityTypes string   `json:"entity_types"`
}

// requestEnrich is the "enrich" of a document with "mode": "enrich", as
// output.enrich has it.
type requestEnrich struct {
	Field     string `json:"field"`
	Tags      bool   `json:"tags"`
	TagsField string `json:"tags_field"`
}

// maxRequestFields bounds the text fields of one document.
const maxRequestFields = 16

// eventDoc is a document read from an event: the document, and how its
// answer is written.
type eventDoc struct {
	enrich          bool
	field, tagsPath jsonptr.Pointer
	tags            bool
}

// fromEvent reads the document of a request that sends an "event" with
// "fields" (default: DESIGN.md's schema). Every problem is a 400 with its
// reason, naming the pointer, never the event's text.
func (r *annotateRequest) fromEvent(where string) (record.Document, eventDoc, *apiError) {
	var how eventDoc
	ev := bytes.TrimSpace(r.Event)
	if len(ev) == 0 || ev[0] != '{' {
		return record.Document{}, how, badRequest("invalid_event", "%sevent must be a JSON object", where)
	}
	f := requestFields{Text: []string{"/text"}, ID: "/id", EntityTypes: "/entity_types"}
	if r.Fields != nil {
		if len(r.Fields.Text) > 0 {
			f.Text = r.Fields.Text
		}
		if r.Fields.ID != "" {
			f.ID = r.Fields.ID
		}
		if r.Fields.EntityTypes != "" {
			f.EntityTypes = r.Fields.EntityTypes
		}
	}
	if len(f.Text) > maxRequestFields {
		return record.Document{}, how, badRequest("invalid_field", "%sfields.text: %d fields is over the limit of %d", where, len(f.Text), maxRequestFields)
	}
	parse := func(key, s string) (jsonptr.Pointer, *apiError) {
		p, err := jsonptr.Parse(s)
		if err == nil && p.IsRoot() {
			err = errors.New("must name a member, not the whole event")
		}
		if err != nil {
			return p, badRequest("invalid_field", "%s%s: %s: %v", where, key, quoteShort(s), err)
		}
		return p, nil
	}
	var doc record.Document
	for i, s := range f.Text {
		p, e := parse(fmt.Sprintf("fields.text[%d]", i), s)
		if e != nil {
			return doc, how, e
		}
		raw, err := jsonptr.Get(ev, p)
		if errors.Is(err, jsonptr.ErrNotFound) && len(f.Text) > 1 {
			continue
		}
		var text string
		if err != nil || raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
			return doc, how, badRequest(record.ReasonMissingField, "%sno string at %s", where, quoteShort(s))
		}
		doc.Fields = append(doc.Fields, record.Field{Pointer: p.String(), Text: text})
	}
	if len(doc.Fields) == 0 {
		return doc, how, badRequest(record.ReasonMissingField, "%sno text at any of the %d fields", where, len(f.Text))
	}
	doc.Text = doc.Fields[0].Text
	if len(f.Text) == 1 {
		doc.Fields = nil
	}
	idp, e := parse("fields.id", f.ID)
	if e != nil {
		return doc, how, e
	}
	if raw, err := jsonptr.Get(ev, idp); err == nil {
		var n json.Number
		if json.Unmarshal(raw, &doc.ID) != nil && json.Unmarshal(raw, &n) == nil {
			doc.ID = n.String()
		}
	}
	tp, e := parse("fields.entity_types", f.EntityTypes)
	if e != nil {
		return doc, how, e
	}
	if raw, err := jsonptr.Get(ev, tp); err == nil && string(raw) != "null" {
		if json.Unmarshal(raw, &doc.Types) != nil {
			return doc, how, badRequest(record.ReasonInvalidTypes, "%sthe entity types at %s are not a list of strings", where, quoteShort(f.EntityTypes))
		}
	}
	switch r.Mode {
	case "", "annotation":
	case "enrich":
		how.enrich = true
		en := requestEnrich{Field: "/entities", TagsField: "/entity_tags"}
		if r.Enrich != nil {
			en.Tags = r.Enrich.Tags
			if r.Enrich.Field != "" {
				en.Field = r.Enrich.Field
			}
			if r.Enrich.TagsField != "" {
				en.TagsField = r.Enrich.TagsField
			}
		}
		if how.field, e = parse("enrich.field", en.Field); e != nil {
			return doc, how, e
		}
		if how.tags = en.Tags; how.tags {
			if how.tagsPath, e = parse("enrich.tags_field", en.TagsField); e != nil {
				return doc, how, e
			}
			if how.field.HasPrefix(how.tagsPath) || how.tagsPath.HasPrefix(how.field) {
				return doc, how, badRequest("invalid_field", "%senrich.tags_field must not be enrich.field or lie inside or around it", where)
			}
		}
		// Before the engine: an event where the field cannot be made
		// costs no generation.
		if _, e := how.enriched(where, r.Event, nil); e != nil {
			return doc, how, e
		}
	default:
		return doc, how, badRequest("invalid_mode", "%smode %s is not one of annotation, enrich", where, quoteShort(r.Mode))
	}
	return doc, how, nil
}

// enriched is the event with the entities (and tags) added at their
// pointers, every other byte as it came; a field that cannot be made there
// (its parent is a list or a string) is a 400.
func (how eventDoc) enriched(where string, event []byte, ents []record.Entity) (json.RawMessage, *apiError) {
	if ents == nil {
		ents = []record.Entity{}
	}
	set := func(ev []byte, p jsonptr.Pointer, v any) ([]byte, *apiError) {
		b, err := json.Marshal(v)
		if err == nil {
			ev, err = jsonptr.Set(ev, p, b)
		}
		if err != nil {
			return nil, badRequest("invalid_event", "%scannot add %s to the event: %v", where, quoteShort(p.String()), err)
		}
		return ev, nil
	}
	out, e := set(bytes.TrimSpace(event), how.field, ents)
	if e == nil && how.tags {
		out, e = set(out, how.tagsPath, record.Tags(ents))
	}
	return out, e
}

// quoteShort quotes s for a message: one line, at most about 50 bytes.
func quoteShort(s string) string {
	if len(s) > 48 {
		s = s[:48]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return strconv.Quote(s) + "…"
	}
	return strconv.Quote(s)
}

// fieldDocs is a document as the recognizer checks it: each of its texts.
func fieldDocs(d record.Document) []record.Document {
	if len(d.Fields) == 0 {
		return []record.Document{d}
	}
	out := make([]record.Document, len(d.Fields))
	for i, f := range d.Fields {
		out[i] = d
		out[i].Text, out[i].Fields = f.Text, nil
	}
	return out
}
