package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/producers"
)

// TestAnnotateLinesEnrich: annotate's enrich mode writes each line's event
// as it came (white space, big integers, 1.10, escapes) with the entities
// added after its last member, and an error record for a line without its
// text field.
func TestAnnotateLinesEnrich(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Jane Doe"]`})}
	rec, err := model.NewRecognizer(eng, model.RecognizerOptions{Types: []string{"person"}})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := consumers.FieldsConfig{Text: []string{"/message"}}.Selector()
	if err != nil {
		t.Fatal(err)
	}
	enr, err := producers.EnrichConfig{}.Enricher()
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{ "n" : 12345678901234567890, "f": 1.10, "esc": "\u00e9\"\/", "message": "card declined for Jane Doe" }`,
		`{"message":"nobody here","entities":[{"old":1}]}`,
		`{"msg":"no message"}`,
	}
	var out strings.Builder
	if err := AnnotateLines(context.Background(), rec, strings.NewReader(strings.Join(lines, "\r\n")+"\n"), &out, LinesOptions{Fields: sel, Enrich: enr}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{ "n" : 12345678901234567890, "f": 1.10, "esc": "\u00e9\"\/", "message": "card declined for Jane Doe","entities":[{"text":"Jane Doe","type":"person","start":18,"end":26}] }`,
		`{"message":"nobody here","entities":[]}`,
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if len(got) != 3 {
		t.Fatalf("%d output lines, want 3:\n%s", len(got), out.String())
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got[i], w)
		}
	}
	var le LineError
	if err := json.Unmarshal([]byte(got[2]), &le); err != nil || le.Line != 3 || !strings.HasPrefix(le.Error, "missing_field: ") || !strings.Contains(le.Error, `"/message"`) {
		t.Errorf("line 3: %s, want a missing_field error naming /message", got[2])
	}
}
