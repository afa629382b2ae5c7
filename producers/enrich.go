package producers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nerstream/nerstream/internal/jsonptr"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/record"
)

// The output modes of [OutputConfig.Mode].
const (
	// ModeAnnotation writes DESIGN.md's annotation record.
	ModeAnnotation = "annotation"
	// ModeEnrich writes the input event itself with the entities added.
	ModeEnrich = "enrich"
)

// EnrichConfig is output.enrich: where an enriched event holds its
// entities.
type EnrichConfig struct {
	// Field is the JSON Pointer of the member that receives the entities
	// (text, type, start, end, and field when the input names several text
	// fields). A member already there is replaced, so an event enriched
	// before is not enriched twice; objects on the way are made when
	// missing ("/ner/entities"). Default: "/entities".
	Field string `yaml:"field"`
	// Tags adds a map of entity type to its unique mentions, in the order
	// they come ({"person":["Jane Doe"]}), the form that tagging and search
	// indexes take. Default: false.
	Tags bool `yaml:"tags"`
	// TagsField is the JSON Pointer of the member that receives the tags.
	// Default: "/entity_tags".
	TagsField string `yaml:"tags_field"`
}

// DefaultEnrichConfig returns the settings that zero values stand for.
func DefaultEnrichConfig() EnrichConfig {
	return EnrichConfig{Field: "/entities", TagsField: "/entity_tags"}
}

// Validate reports every problem of the settings, at their YAML keys.
func (c EnrichConfig) Validate() error {
	var p problems.List
	field, ferr := parseMember(&p, "field", c.Field)
	if !c.Tags {
		return p.Err()
	}
	tags, terr := parseMember(&p, "tags_field", c.TagsField)
	if ferr == nil && terr == nil && (field.HasPrefix(tags) || tags.HasPrefix(field)) {
		p.Addf("tags_field", "must not be field or lie inside or around it")
	}
	return p.Err()
}

func parseMember(p *problems.List, key, s string) (jsonptr.Pointer, error) {
	ptr, err := jsonptr.Parse(s)
	switch {
	case err != nil:
		p.Addf(key, "%s: %v", quote(s), err)
	case ptr.IsRoot():
		err = fmt.Errorf("the whole event")
		p.Addf(key, "must name a member, not the whole event")
	}
	return ptr, err
}

// quote quotes s for a problem: one line of at most about 50 bytes.
func quote(s string) string {
	if len(s) > 48 {
		s = strings.ToValidUTF8(s[:48], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Enricher adds entities to JSON events; make one with
// [EnrichConfig.Enricher].
type Enricher struct {
	field, tags jsonptr.Pointer
	withTags    bool
}

// Enricher parses the settings' pointers.
func (c EnrichConfig) Enricher() (*Enricher, error) {
	c.Field = cmpOr(c.Field, DefaultEnrichConfig().Field)
	c.TagsField = cmpOr(c.TagsField, DefaultEnrichConfig().TagsField)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("producers: output.enrich: %w", err)
	}
	e := &Enricher{field: jsonptr.MustParse(c.Field), withTags: c.Tags}
	if c.Tags {
		e.tags = jsonptr.MustParse(c.TagsField)
	}
	return e, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Enrich returns event, a JSON object, with the entities (and the tags,
// when asked) spliced in: every byte outside the new or replaced members is
// the event's own, so numbers keep their digits, strings their escapes and
// members their order. An event in which the field cannot be made (its
// parent is a list or a string) is an error wrapping
// jsonptr.ErrCannotCreate.
func (e *Enricher) Enrich(event []byte, ents []record.Entity) ([]byte, error) {
	if ents == nil {
		ents = []record.Entity{}
	}
	v, err := marshal(ents)
	if err != nil {
		return nil, err
	}
	out, err := jsonptr.Set(event, e.field, v)
	if err != nil {
		return nil, fmt.Errorf("producers: enrich at %s: %w", e.field, err)
	}
	if !e.withTags {
		return out, nil
	}
	if v, err = marshal(record.Tags(ents)); err != nil {
		return nil, err
	}
	if out, err = jsonptr.Set(out, e.tags, v); err != nil {
		return nil, fmt.Errorf("producers: enrich at %s: %w", e.tags, err)
	}
	return out, nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("producers: enrich: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// EnrichedMessage returns the enriched record of an input event: a Message
// to topic with the input's key and headers and the event enriched as
// [Enricher.Enrich] does. A content-encoding header is dropped, since the
// value written is not compressed; the writer replaces the trace context
// headers with the record's own.
func EnrichedMessage(topic string, e *Enricher, key, event []byte, headers []record.Header, ents []record.Entity) (Message, error) {
	value, err := e.Enrich(event, ents)
	if err != nil {
		return Message{}, err
	}
	var out []record.Header
	for _, h := range headers {
		if strings.EqualFold(h.Key, "content-encoding") {
			continue
		}
		out = append(out, h)
	}
	return Message{Topic: topic, Key: key, Value: value, Headers: out}, nil
}
