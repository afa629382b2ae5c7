package model_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

func TestWithFields(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{
		"person":       `["Jane Doe"]`,
		"organization": `["ACME Corp"]`,
	})}
	r := model.WithFields(newRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person", "organization"}}))
	docs := []record.Document{
		{ID: "plain", Text: "Jane Doe left"},
		{ID: "two", Text: "card declined for Jane Doe", Fields: []record.Field{
			{Pointer: "/message", Text: "card declined for Jane Doe"},
			{Pointer: "/error/detail", Text: "Zoë at ACME Corp, Jane Doe"},
		}},
		{ID: "bad", Text: "x", Types: []string{""}, Fields: []record.Field{{Pointer: "/a", Text: "x"}, {Pointer: "/b", Text: "Jane Doe"}}},
	}
	anns, err := r.Recognize(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(anns) != 3 {
		t.Fatalf("%d annotations, want 3", len(anns))
	}
	if want := []record.Entity{{Text: "Jane Doe", Type: "person", Start: 0, End: 8}}; !reflect.DeepEqual(anns[0].Entities, want) || anns[0].ID != "plain" {
		t.Errorf("plain: %+v", anns[0])
	}
	want := []record.Entity{
		{Text: "Jane Doe", Type: "person", Start: 18, End: 26, Field: "/message"},
		{Text: "ACME Corp", Type: "organization", Start: 7, End: 16, Field: "/error/detail"},
		{Text: "Jane Doe", Type: "person", Start: 18, End: 26, Field: "/error/detail"},
	}
	if a := anns[1]; a.ID != "two" || a.Err != nil || !reflect.DeepEqual(a.Entities, want) || !reflect.DeepEqual(a.Types, []string{"person", "organization"}) {
		t.Errorf("two fields:\n got %+v\nwant %+v", a, want)
	}
	// Spans are relative to each field's own text.
	for _, e := range anns[1].Entities {
		for _, f := range docs[1].Fields {
			if f.Pointer == e.Field {
				if got := string([]rune(f.Text)[e.Start:e.End]); got != e.Text {
					t.Errorf("%+v: %s[%d:%d] = %q", e, f.Pointer, e.Start, e.End, got)
				}
			}
		}
	}
	if a := anns[2]; a.ID != "bad" || a.Err == nil || len(a.Entities) != 0 {
		t.Errorf("a failing document: %+v", a)
	}
	// All texts of the batch went to the engine in one call.
	if n := len(eng.Calls()); n != 1 {
		t.Errorf("%d engine calls, want 1", n)
	}
}
