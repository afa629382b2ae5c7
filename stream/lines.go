package stream

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/producers"
	"github.com/nerstream/nerstream/record"
)

// LinesOptions configure [AnnotateLines]. Zero values take the defaults.
type LinesOptions struct {
	// Name names the input in the ids of documents that have none:
	// NAME:LINE. Default: "stdin".
	Name string
	// Model is what the annotations call the model.
	Model string
	// Batch is the documents of one model call. Default: 32.
	Batch int
	// Progress hears how many lines have been answered so far, after each
	// batch. Default: none.
	Progress func(lines int)
	// Fields selects the document's members of each line
	// (input.fields); nil reads DESIGN.md's schema.
	Fields *consumers.Selector
	// Enrich, when set, writes each line's event enriched
	// (output.mode enrich) rather than its annotation record.
	Enrich *producers.Enricher
}

// LineError is the record written for a line that gives no annotation: a
// line that is not a document, or a document that the model refuses.
type LineError struct {
	// Line is the line's number, from 1.
	Line int `json:"line"`
	// ID is the document's id, as its annotation would carry it: the
	// line's own id whenever it has a readable one, even when the line is
	// no document (no text, an empty one, invalid UTF-8); NAME:LINE for a
	// document without one; absent for a line that is not a document and
	// names no id.
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

// AnnotateLines annotates JSON lines documents (the input records of
// DESIGN.md, decoded as consumers.DecodeJSON does) and writes one JSON line
// per input line, in order: the annotation record (or, with opts.Enrich,
// the line's event with its entities added), or a [LineError]. Blank
// lines are skipped. A document with several texts (opts.Fields) is
// annotated text by text. It stops at the first failure of the model as a whole
// or of writing.
func AnnotateLines(ctx context.Context, rec pipeline.Recognizer, in io.Reader, out io.Writer, opts LinesOptions) error {
	opts.Name = cmp.Or(opts.Name, "stdin")
	opts.Batch = cmp.Or(opts.Batch, 32)
	if opts.Batch < 0 {
		return fmt.Errorf("stream: batch of %d documents", opts.Batch)
	}
	a := lineAnnotator{rec: model.WithFields(rec), opts: opts, out: bufio.NewWriter(out)}
	br := bufio.NewReaderSize(in, 1<<20)
	var pending []line
	n := 0
	for {
		text, rerr := br.ReadString('\n')
		if len(text) > 0 {
			n++
			if strings.TrimSpace(text) != "" {
				doc, err := consumers.DecodeFields([]byte(strings.TrimRight(text, "\r\n")), consumers.Limits{}, opts.Fields)
				if err == nil && doc.ID == "" {
					doc.ID = opts.Name + ":" + strconv.Itoa(n)
				}
				pending = append(pending, line{n: n, doc: doc, err: err})
			}
		}
		if len(pending) >= opts.Batch || (rerr != nil && len(pending) > 0) {
			if err := a.flush(ctx, pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
		if rerr == io.EOF {
			return a.out.Flush()
		}
		if rerr != nil {
			return fmt.Errorf("reading the input: %w", rerr)
		}
	}
}

// lineAnnotator writes the records of the lines.
type lineAnnotator struct {
	rec  model.Batch
	opts LinesOptions
	out  *bufio.Writer
	done int
}

// line is one input line waiting for its batch.
type line struct {
	n   int
	doc record.Document
	err error
}

func (a *lineAnnotator) flush(ctx context.Context, lines []line) error {
	var docs []record.Document
	for _, l := range lines {
		if l.err == nil {
			docs = append(docs, l.doc)
		}
	}
	anns, err := a.rec.Recognize(ctx, docs)
	if err != nil {
		return fmt.Errorf("annotating lines %d to %d: %w", lines[0].n, lines[len(lines)-1].n, err)
	}
	if len(anns) != len(docs) {
		return fmt.Errorf("annotating lines %d to %d: %d annotations for %d documents", lines[0].n, lines[len(lines)-1].n, len(anns), len(docs))
	}
	enc := json.NewEncoder(a.out)
	enc.SetEscapeHTML(false)
	k := 0
	for _, l := range lines {
		var v any
		switch {
		case l.err != nil:
			v = LineError{Line: l.n, ID: l.doc.ID, Error: l.err.Error()}
		case anns[k].Err != nil:
			v = LineError{Line: l.n, ID: l.doc.ID, Error: anns[k].Err.Error()}
			k++
		case a.opts.Enrich != nil:
			ev, err := a.opts.Enrich.Enrich(l.doc.Event, anns[k].Entities)
			if err != nil {
				v = LineError{Line: l.n, ID: l.doc.ID, Error: record.ReasonEncodeFailed + ": " + err.Error()}
			} else {
				// As it is: an encoder would compact the event.
				k++
				a.out.Write(ev)
				if err := a.out.WriteByte('\n'); err != nil {
					return fmt.Errorf("writing the output: %w", err)
				}
				continue
			}
			k++
		default:
			v = anns[k].Record(a.opts.Model, l.doc.Metadata)
			k++
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
	}
	a.done += len(lines)
	if a.opts.Progress != nil {
		a.opts.Progress(a.done)
	}
	return a.out.Flush()
}
