package model

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nerstream/nerstream/internal/problems"
)

// Variant selects which of the released UniNER models the prompt is for.
type Variant string

const (
	// VariantType asks about the entity type by name. It is the prompt of
	// UniNER-7B-type (the default model) and of UniNER-7B-all.
	VariantType Variant = "type"
	// VariantDefinition puts a short sentence that defines the type where
	// the type's name stands (UniNER-7B-definition).
	VariantDefinition Variant = "definition"
	// VariantSupervised puts the dataset's name before the text
	// (UniNER-7B-type-sup), in the form given by
	// [PromptOptions.SupervisedFormat].
	VariantSupervised Variant = "supervised"
)

// EOS is the end-of-sequence special token of LLaMA's vocabulary, as it is
// written in the prompt template.
const EOS = "</s>"

// DefaultSupervisedFormat is how the supervised variant writes the user's
// first turn. The paper's figure shows "Dataset: D \n Text: X" but the exact
// white space of the released training data was never published; we read the
// figure's "\n" as one newline with no spaces around it, the form a Python
// f-string "Dataset: {d}\nText: {t}" gives. [PromptOptions.SupervisedFormat]
// (config: model.prompt.supervised_format) overrides it.
const DefaultSupervisedFormat = "Dataset: {dataset}\nText: {text}"

// The fixed text of the official "ie_as_qa" conversation template: the
// system line, then USER/ASSISTANT turns joined by " " after a user turn and
// by "</s>" after an assistant turn.
const (
	promptHead     = "A virtual assistant answers questions from a user based on the provided text. USER: "
	promptTextHead = "Text: "
	promptMiddle   = " ASSISTANT: I've read this text." + EOS + "USER: What describes "
	promptTail     = " in the text? ASSISTANT:"
)

// PartKind tells an engine how to tokenize a [Part].
type PartKind uint8

const (
	// PartFixed is template text. An engine parses special tokens in it:
	// the "</s>" it holds is the EOS token.
	PartFixed PartKind = iota
	// PartText is the document's text. It is user content: an engine must
	// never parse special tokens in it, so that a document that contains
	// "</s>USER:" stays text and cannot break out of its slot.
	PartText
	// PartQuery is the entity type, or its definition. User content.
	PartQuery
	// PartDataset is the dataset's name in the supervised variant. User
	// content.
	PartDataset
)

// String returns the kind's name.
func (k PartKind) String() string {
	switch k {
	case PartFixed:
		return "fixed"
	case PartText:
		return "text"
	case PartQuery:
		return "query"
	case PartDataset:
		return "dataset"
	}
	return fmt.Sprintf("PartKind(%d)", uint8(k))
}

// Part is one piece of a prompt.
type Part struct {
	Kind PartKind
	Text string
}

// Prompt is a rendered UniNER prompt. Its [Prompt.String] is the exact prompt
// of the official code; its parts say which bytes are the template's and which
// are the user's. An engine starts the sequence with BOS.
type Prompt struct {
	Parts []Part
}

// String returns the prompt as one string, exactly as the official code
// renders it.
func (p Prompt) String() string {
	n := 0
	for _, part := range p.Parts {
		n += len(part.Text)
	}
	var b strings.Builder
	b.Grow(n)
	for _, part := range p.Parts {
		b.WriteString(part.Text)
	}
	return b.String()
}

// ParsePrompt reads a prompt written out as text, as a client of the
// completions API sends a [Prompt.String], back into parts, so that it
// tokenizes as the prompt that [Template] renders: the "</s>" that the
// template writes after the assistant's first turn (the one in
// " ASSISTANT: I've read this text.</s>USER: What describes ") is a
// [PartFixed] EOS, and everything else is user text ([PartText]), where
// "</s>" is four characters. A text that quotes that run too is taken
// literally, since the template's run is the last one (only the entity
// type and " in the text? ASSISTANT:" follow it). A string without the
// run is not a UniNER prompt: all of it is text, with no special token.
func ParsePrompt(s string) Prompt {
	i := strings.LastIndex(s, promptMiddle)
	if i < 0 {
		return Prompt{Parts: []Part{{PartText, s}}}
	}
	eos := i + strings.Index(promptMiddle, EOS)
	return Prompt{Parts: []Part{{PartText, s[:eos]}, {PartFixed, EOS}, {PartText, s[eos+len(EOS):]}}}
}

// Segment is a run of a prompt that an engine tokenizes in one piece:
// either literal text (special tokens NOT parsed) or one special token.
type Segment struct {
	Text    string
	Special bool
}

// Segments splits the prompt into literal text and special tokens. Special
// tokens ("</s>") are recognised in [PartFixed] parts only; user parts are
// always literal, and adjacent literal text is merged so that tokenizing the
// segments gives the same tokens as tokenizing the whole prompt would, except
// that nothing the user wrote can become a special token.
func (p Prompt) Segments() []Segment {
	var segs []Segment
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			segs = append(segs, Segment{Text: lit.String()})
			lit.Reset()
		}
	}
	for _, part := range p.Parts {
		if part.Kind != PartFixed {
			lit.WriteString(part.Text)
			continue
		}
		rest := part.Text
		for {
			i := strings.Index(rest, EOS)
			if i < 0 {
				lit.WriteString(rest)
				break
			}
			lit.WriteString(rest[:i])
			flush()
			segs = append(segs, Segment{Text: EOS, Special: true})
			rest = rest[i+len(EOS):]
		}
	}
	flush()
	return segs
}

// PromptOptions configure a [Template]. The zero value is the default:
// the type variant.
type PromptOptions struct {
	// Variant is "type" (default; UniNER-7B-type and -all), "definition"
	// (UniNER-7B-definition) or "supervised" (UniNER-7B-type-sup).
	Variant Variant `yaml:"variant"`
	// Dataset is the dataset name that the supervised variant puts before
	// the text. Required for that variant.
	Dataset string `yaml:"dataset"`
	// SupervisedFormat is the supervised variant's first user turn, with
	// {dataset} (at most once) and {text} (exactly once). Default:
	// "Dataset: {dataset}\nText: {text}" (the paper never published the
	// exact white space).
	SupervisedFormat string `yaml:"supervised_format"`
	// Definitions maps an entity type to the sentence that defines it,
	// for the definition variant. A type without a definition is asked
	// about by its name, as in the type variant.
	Definitions map[string]string `yaml:"definitions"`
}

// Validate reports every problem of the options, at their YAML keys.
func (o PromptOptions) Validate() error {
	var p problems.List
	switch o.Variant {
	case "", VariantType, VariantDefinition:
	case VariantSupervised:
		if strings.TrimSpace(o.Dataset) == "" {
			p.Addf("dataset", "required by the supervised variant")
		}
	default:
		p.Addf("variant", "%q is not one of type, definition, supervised", o.Variant)
	}
	if o.SupervisedFormat != "" {
		if _, _, err := splitSupervisedFormat(o.SupervisedFormat); err != nil {
			p.Addf("supervised_format", "%v", err)
		}
	}
	return p.Err()
}

// Template renders UniNER prompts. It is safe for concurrent use.
type Template struct {
	variant     Variant
	definitions map[string]string
	// head is everything before the document's text, with the dataset
	// name in place for the supervised variant.
	head []Part
	// afterText is the fixed text between the document's text and
	// promptMiddle (non-empty only for a custom supervised format).
	afterText string
}

// NewTemplate checks the options and returns a template.
func NewTemplate(opts PromptOptions) (*Template, error) {
	t := &Template{variant: opts.Variant, definitions: opts.Definitions}
	if t.variant == "" {
		t.variant = VariantType
	}
	switch t.variant {
	case VariantType, VariantDefinition:
		t.head = []Part{{PartFixed, promptHead + promptTextHead}}
	case VariantSupervised:
		if strings.TrimSpace(opts.Dataset) == "" {
			return nil, errors.New("the supervised prompt variant needs a dataset name")
		}
		format := opts.SupervisedFormat
		if format == "" {
			format = DefaultSupervisedFormat
		}
		before, after, err := splitSupervisedFormat(format)
		if err != nil {
			return nil, err
		}
		t.head = append([]Part{{PartFixed, promptHead}}, substituteDataset(before, opts.Dataset)...)
		t.afterText = after
	default:
		return nil, fmt.Errorf("unknown prompt variant %q (want type, definition or supervised)", opts.Variant)
	}
	return t, nil
}

// Variant returns the template's variant.
func (t *Template) Variant() Variant { return t.variant }

// splitSupervisedFormat splits a supervised format at its {text}
// placeholder, and checks its placeholders.
func splitSupervisedFormat(format string) (before, after string, err error) {
	if n := strings.Count(format, "{text}"); n != 1 {
		return "", "", fmt.Errorf("supervised format %q must hold {text} exactly once, not %d times", format, n)
	}
	if n := strings.Count(format, "{dataset}"); n > 1 {
		return "", "", fmt.Errorf("supervised format %q holds {dataset} %d times (at most once)", format, n)
	}
	rest := strings.ReplaceAll(strings.ReplaceAll(format, "{text}", ""), "{dataset}", "")
	if i := strings.IndexByte(rest, '{'); i >= 0 {
		if j := strings.IndexByte(rest[i:], '}'); j > 0 {
			return "", "", fmt.Errorf("supervised format %q has an unknown placeholder %s (known: {dataset}, {text})", format, rest[i:i+j+1])
		}
	}
	before, after, _ = strings.Cut(format, "{text}")
	if strings.Contains(after, "{dataset}") {
		return "", "", fmt.Errorf("supervised format %q must put {dataset} before {text}", format)
	}
	return before, after, nil
}

func substituteDataset(before, dataset string) []Part {
	pre, post, found := strings.Cut(before, "{dataset}")
	if !found {
		return []Part{{PartFixed, before}}
	}
	parts := make([]Part, 0, 3)
	if pre != "" {
		parts = append(parts, Part{PartFixed, pre})
	}
	parts = append(parts, Part{PartDataset, dataset})
	if post != "" {
		parts = append(parts, Part{PartFixed, post})
	}
	return parts
}

// Query returns the text that stands in the question's slot for an entity
// type: the type itself, or its definition in the definition variant.
func (t *Template) Query(entityType string) string {
	if t.variant == VariantDefinition {
		if d, ok := t.definitions[entityType]; ok && d != "" {
			return d
		}
	}
	return entityType
}

// Prompt renders the question about one entity type in one text.
func (t *Template) Prompt(text, entityType string) Prompt {
	parts := make([]Part, 0, len(t.head)+4)
	parts = append(parts, t.head...)
	parts = append(parts, Part{PartText, text})
	parts = append(parts,
		Part{PartFixed, t.afterText + promptMiddle},
		Part{PartQuery, t.Query(entityType)},
		Part{PartFixed, promptTail},
	)
	return Prompt{Parts: parts}
}
