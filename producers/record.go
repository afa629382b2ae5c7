package producers

import "encoding/json"

// Source is where an input record came from.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Entity is one entity of an annotation. It mirrors model.Entity on
// purpose: DESIGN.md's import rules keep producers from importing model,
// and the pipeline converts one to the other. Start and End are Unicode
// code-point offsets into the text, end exclusive, and
// text[Start:End] == Text always.
type Entity struct {
	Text  string `json:"text"`
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
	// Mention is the model's spelling, when it differs from Text.
	Mention string `json:"mention,omitempty"`
}

// Mention is something the model named that the text does not hold.
type Mention struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Annotation is the value of an annotation record, keyed by ID.
type Annotation struct {
	ID          string          `json:"id"`
	Source      *Source         `json:"source,omitempty"`
	Model       string          `json:"model"`
	EntityTypes []string        `json:"entity_types"`
	Entities    []Entity        `json:"entities"`
	Unaligned   []Mention       `json:"unaligned,omitempty"`
	Metadata    json.RawMessage `json:"metadata"`
}
