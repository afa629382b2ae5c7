package distill

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/eval"
	"github.com/nerstream/nerstream/model"
)

// testData is testLabelled plus a passage with text that JSON encoders
// like to escape.
func testData() []Labelled {
	return append(testLabelled(), Labelled{
		Passage: Passage{Text: "<b>García</b> & \"O'Brien\" met at 東京 😀\twith a\nline break."},
		ID:      "html&unicode",
		Tuples:  []Tuple{{"García", "person"}, {"\"O'Brien\"", "person"}, {"東京", "location"}, {"😀", "emoji"}, {"García", "person"}},
	})
}

// testRecords builds records with negatives from testData.
func testRecords(t *testing.T) []Record {
	t.Helper()
	ls := testData()
	records, skipped := Build(ls, BuildOptions{Seed: 2, Negatives: NegativePolicy{Count: 2}})
	if skipped != 0 || len(records) != len(ls) {
		t.Fatalf("Build: %d records, %d skipped", len(records), skipped)
	}
	return records
}

// wantQueries are the queries eval.ReadUniNER should make of records: one
// per question/answer pair, the gold being the answer as the official
// parser reads it.
func wantQueries(records []Record) []eval.Query {
	var qs []eval.Query
	for _, r := range records {
		text := strings.TrimPrefix(r.Conversations[0].Value, "Text: ")
		n := len(r.Conversations)/2 - 1
		for k := range n {
			q := strings.TrimSuffix(strings.TrimPrefix(r.Conversations[2+2*k].Value, "What describes "), " in the text?")
			id := r.ID
			if n > 1 {
				id = fmt.Sprintf("%s/%d", r.ID, k)
			}
			qs = append(qs, eval.Query{ID: id, Text: text, Type: q, Gold: model.ParseOfficial(r.Conversations[3+2*k].Value)})
		}
	}
	return qs
}

func TestWriteReadsBackInEval(t *testing.T) {
	records := testRecords(t)
	want := wantQueries(records)
	if len(want) < 15 {
		t.Fatalf("only %d queries", len(want))
	}
	for _, jsonList := range []bool{true, false} {
		var buf bytes.Buffer
		if err := Write(&buf, records, jsonList); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if jsonList != strings.HasPrefix(out, "[\n") {
			t.Errorf("jsonList %v: output starts %.10q", jsonList, out)
		}
		// One record per line either way, plus the brackets' lines.
		wantLines := len(records)
		if jsonList {
			wantLines += 2
		}
		if lines := strings.Count(out, "\n"); lines != wantLines {
			t.Errorf("jsonList %v: %d lines for %d records", jsonList, lines, len(records))
		}
		for _, raw := range []string{"<b>García</b> &", "東京 😀", `\"O'Brien\"`} {
			if !strings.Contains(out, raw) {
				t.Errorf("jsonList %v: output does not hold %q as written", jsonList, raw)
			}
		}
		d, err := eval.ReadUniNER(strings.NewReader(out), "pile")
		if err != nil {
			t.Fatalf("jsonList %v: ReadUniNER: %v", jsonList, err)
		}
		if !reflect.DeepEqual(d.Queries, want) {
			t.Errorf("jsonList %v: ReadUniNER gives\n%+v\nwant\n%+v", jsonList, d.Queries, want)
		}
		got, err := Read(strings.NewReader(out))
		if err != nil || !reflect.DeepEqual(got, records) {
			t.Errorf("jsonList %v: Read = %+v, %v", jsonList, got, err)
		}
	}

	// The queries are the pairs of the Labelled passages: a positive type
	// has its distinct mentions as gold, a negative type none.
	ls := testData()
	freq := TypeFrequencies(ls)
	positives := 0
	for _, q := range want {
		var l Labelled
		for _, c := range ls {
			if c.Passage.Text == q.Text {
				l = c
			}
		}
		var gold []string
		for _, tp := range l.Tuples {
			if tp.Type == q.Type && !slices.Contains(gold, tp.Mention) {
				gold = append(gold, tp.Mention)
			}
		}
		if gold != nil {
			positives++
		}
		if !slices.Equal(q.Gold, gold) || freq[q.Type] == 0 {
			t.Errorf("query %s (%s): gold %q; want %q", q.ID, q.Type, q.Gold, gold)
		}
	}
	if wantPos := 2 + 3 + 5 + 3; positives != wantPos {
		t.Errorf("%d positive queries; want %d", positives, wantPos)
	}
}

func TestRead(t *testing.T) {
	rec := `{"id": "x", "conversations": [{"from": "human", "value": "Text: a"}]}`
	tests := []struct {
		name  string
		in    string
		n     int
		fails bool
	}{
		{"empty", "", 0, false},
		{"empty list", " [ ] ", 0, false},
		{"list", "[" + rec + ",\n" + rec + "]", 2, false},
		{"lines with blanks", rec + "\n\n" + rec + "\n", 2, false},
		{"byte-order mark", "\ufeff" + rec, 1, false},
		{"byte-order mark and list", "\ufeff\n[" + rec + "]", 1, false},
		{"broken line", rec + "\n{\"id\": ", 0, true},
		{"text after list", "[" + rec + "] x", 0, true},
		{"not records", `[1, 2]`, 0, true},
	}
	for _, tt := range tests {
		got, err := Read(strings.NewReader(tt.in))
		if (err != nil) != tt.fails || len(got) != tt.n {
			t.Errorf("%s: Read = %d records, %v", tt.name, len(got), err)
		}
		if len(got) > 0 && got[0].ID != "x" {
			t.Errorf("%s: record %+v", tt.name, got[0])
		}
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteFile(t *testing.T) {
	records := testRecords(t)
	dir := t.TempDir()
	for _, name := range []string{"out.json", "out.JSON", "out.jsonl", "out.txt"} {
		path := filepath.Join(dir, name)
		// Twice: the second replaces the first.
		for range 2 {
			if err := WriteFile(path, records); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		list := strings.EqualFold(filepath.Ext(name), ".json")
		if list != bytes.HasPrefix(data, []byte("[")) {
			t.Errorf("%s starts %.10q", name, data)
		}
		var want bytes.Buffer
		Write(&want, records, list)
		if !bytes.Equal(data, want.Bytes()) {
			t.Errorf("%s differs from what Write writes", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %q; want just the four outputs", names)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "out.json"), records); err == nil {
		t.Error("WriteFile into a missing folder: no error")
	}
	if err := Write(failingWriter{}, records, true); !errors.Is(err, errWrite) {
		t.Errorf("Write to a failing writer: %v", err)
	}
}
