package distill

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// askerFunc is a test double of a teacher.
type askerFunc func(ctx context.Context, passage string) (Answer, error)

func (f askerFunc) Ask(ctx context.Context, passage string) (Answer, error) { return f(ctx, passage) }

func docsOf(texts ...string) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		for i, t := range texts {
			if !yield(Document{Source: fmt.Sprintf("doc%d", i), Text: t}, nil) {
				return
			}
		}
	}
}

func openTestCheckpoint(t *testing.T) *Checkpoint {
	t.Helper()
	cp, err := OpenCheckpoint(filepath.Join(t.TempDir(), "cp.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	return cp
}

// TestRunTeacherFailures: a passage the teacher refuses is left out and
// the run goes on; a refused API key stops the run at once; failures past
// the retries make the run incomplete, with no records.
func TestRunTeacherFailures(t *testing.T) {
	texts := []string{"Ada met Babbage.", "Poison text here.", "Grace wrote COBOL.", "Alan was at Bletchley."}
	answer := func(p string) (Answer, error) {
		first := strings.Fields(p)[0]
		return Answer{Text: fmt.Sprintf("[(%q, %q)]", first, "person")}, nil
	}
	tests := []struct {
		name        string
		fail        error // the teacher's error for the poison passage
		wantErr     error
		wantRecords int
		wantRefused int
	}{
		{"refused", &TeacherError{StatusCode: 400, Message: "content filter (test double)"}, nil, 3, 1},
		{"api key", &TeacherError{StatusCode: 401, Message: "bad key (test double)"}, nil, 0, 0},
		{"retries spent", &TeacherError{StatusCode: 503, Message: "down (test double)", Attempts: 4}, ErrIncomplete, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			asked := 0
			teacher := askerFunc(func(ctx context.Context, p string) (Answer, error) {
				mu.Lock()
				asked++
				mu.Unlock()
				if strings.HasPrefix(p, "Poison") {
					return Answer{}, tt.fail
				}
				return answer(p)
			})
			cp := openTestCheckpoint(t)
			records, rep, err := Run(context.Background(), docsOf(texts...), teacher, cp, Options{Concurrency: 1, Negatives: NegativePolicy{Count: 1}})
			switch {
			case tt.name == "api key":
				var te *TeacherError
				if !errors.As(err, &te) || te.StatusCode != 401 {
					t.Fatalf("err = %v, want the 401", err)
				}
				if asked != 2 {
					t.Errorf("%d passages asked; the run should stop at the refused key (the second)", asked)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || records != nil || rep.Failed != 1 || cp.Len() != 3 {
					t.Fatalf("err = %v, %d records, report %+v, %d in the checkpoint", err, len(records), rep, cp.Len())
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(records) != tt.wantRecords || rep.Refused != tt.wantRefused || rep.Asked != 3 {
					t.Errorf("%d records, report %+v", len(records), rep)
				}
				for _, r := range records {
					if strings.Contains(r.Conversations[0].Value, "Poison") {
						t.Error("the refused passage is in the output")
					}
				}
			}
		})
	}
}

// TestRunInterrupted: when ctx ends, Run returns its error and the answers
// so far stay in the checkpoint.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	teacher := askerFunc(func(ctx context.Context, p string) (Answer, error) {
		n++
		if n == 3 {
			cancel()
			return Answer{}, ctx.Err()
		}
		return Answer{Text: "[]"}, nil
	})
	cp := openTestCheckpoint(t)
	_, _, err := Run(ctx, docsOf("one.", "two.", "three.", "four."), teacher, cp, Options{Concurrency: 1})
	if !errors.Is(err, context.Canceled) || cp.Len() != 2 {
		t.Fatalf("err = %v, %d in the checkpoint; want context.Canceled and 2", err, cp.Len())
	}
}
