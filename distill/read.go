package distill

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/nerstream/nerstream/consumers"
)

// ErrInput is wrapped by the errors of ReadFile about its input: a line that
// is no document.
var ErrInput = errors.New("bad input")

// ReadFile reads documents from an input file: JSON lines when its
// first non-blank character is "{", else plain text, a document per block
// of lines between blank lines. A document's source is FILE:LINE.
func ReadFile(r io.Reader, name string) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		br := bufio.NewReaderSize(r, 1<<20)
		first, _ := br.Peek(512)
		jsonLines := strings.HasPrefix(strings.TrimLeft(string(first), " \t\r\n\ufeff"), "{")
		var block strings.Builder
		start, n := 0, 0
		flush := func() bool {
			if strings.TrimSpace(block.String()) == "" {
				block.Reset()
				return true
			}
			d := Document{Source: fmt.Sprintf("%s:%d", name, start), Text: block.String()}
			block.Reset()
			return yield(d, nil)
		}
		for {
			line, err := br.ReadString('\n')
			if len(line) > 0 {
				n++
				switch {
				case jsonLines && strings.TrimSpace(line) == "":
				case jsonLines:
					doc, derr := consumers.DecodeJSON([]byte(line), consumers.Limits{})
					if derr != nil {
						yield(Document{}, fmt.Errorf("%w: %s:%d: %w", ErrInput, name, n, derr))
						return
					}
					src := doc.ID
					if src == "" {
						src = fmt.Sprintf("%s:%d", name, n)
					}
					if !yield(Document{Source: src, Text: doc.Text}, nil) {
						return
					}
				case strings.TrimSpace(line) == "":
					if !flush() {
						return
					}
				default:
					if block.Len() == 0 {
						start = n
					}
					block.WriteString(line)
				}
			}
			if err == io.EOF {
				if !jsonLines {
					flush()
				}
				return
			}
			if err != nil {
				yield(Document{}, fmt.Errorf("reading %s: %w", name, err))
				return
			}
		}
	}
}

// ReadTopics reads the documents that topics hold now (see
// consumers.ReadSnapshot); records that are not valid
// documents are counted in skipped and left out, as they would be
// dead-lettered by run.
func ReadTopics(ctx context.Context, opts consumers.SnapshotOptions, skipped *int) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		stop := errors.New("stop")
		err := consumers.ReadSnapshot(ctx, opts, func(m consumers.Message) error {
			if m.Err != nil {
				*skipped++
				return nil
			}
			src := m.Doc.ID
			if src == "" {
				src = fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
			}
			if !yield(Document{Source: src, Text: m.Doc.Text}, nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(Document{}, err)
		}
	}
}
