package model

import (
	"context"

	"github.com/nerstream/nerstream/record"
)

// Batch annotates documents: a [*Recognizer], or anything over one.
type Batch interface {
	Recognize(ctx context.Context, docs []record.Document) ([]Annotation, error)
}

// WithFields returns a Batch over r that annotates a document with several
// texts (record.Document.Fields, from input.fields.text) text by text, in
// the same call to r as the other documents: each text is a document of its
// own to r, and the document's annotation gathers their entities, in the
// order of the fields, each with its field's pointer and spans relative to
// that field's text. A document whose Fields are empty goes to r as it is.
// When one of a document's texts fails, the document fails with its error.
func WithFields(r Batch) Batch { return fieldsBatch{r} }

type fieldsBatch struct{ r Batch }

func (f fieldsBatch) Recognize(ctx context.Context, docs []record.Document) ([]Annotation, error) {
	several := false
	for _, d := range docs {
		several = several || len(d.Fields) > 0
	}
	if !several {
		return f.r.Recognize(ctx, docs)
	}
	var flat []record.Document
	owner := make([]int, 0, len(docs)) // flat[k] belongs to docs[owner[k]]
	for i, d := range docs {
		if len(d.Fields) == 0 {
			flat, owner = append(flat, d), append(owner, i)
			continue
		}
		for _, fl := range d.Fields {
			sub := d
			sub.Text, sub.Fields = fl.Text, nil
			flat, owner = append(flat, sub), append(owner, i)
		}
	}
	got, err := f.r.Recognize(ctx, flat)
	if err != nil {
		return nil, err
	}
	anns := make([]Annotation, len(docs))
	seen := make([]int, len(docs)) // how many of each document's texts are in
	for k, a := range got {
		i := owner[k]
		d := docs[i]
		if len(d.Fields) == 0 {
			anns[i] = a
			continue
		}
		ptr := d.Fields[seen[i]].Pointer
		seen[i]++
		out := &anns[i]
		if seen[i] == 1 {
			out.ID, out.Types = a.ID, a.Types
		}
		if out.Err == nil && a.Err != nil {
			out.Err = a.Err
		}
		for _, e := range a.Entities {
			e.Field = ptr
			out.Entities = append(out.Entities, e)
		}
		out.Unaligned = append(out.Unaligned, a.Unaligned...)
		out.Answers = append(out.Answers, a.Answers...)
		out.Windows += a.Windows
		out.PromptTokens += a.PromptTokens
		out.GeneratedTokens += a.GeneratedTokens
	}
	for i := range anns {
		if anns[i].Err != nil {
			anns[i].Entities, anns[i].Unaligned, anns[i].Answers = nil, nil, nil
		}
	}
	return anns, nil
}
