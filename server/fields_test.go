package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

// TestAnnotateEvent: /v1/annotate takes any JSON event with "fields", and
// with "mode": "enrich" answers with the event itself, its entities added.
func TestAnnotateEvent(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{
		"person":       `["Jane Doe"]`,
		"organization": `["ACME Corp"]`,
	})}
	srv, _ := serveAPI(t, newAPI(t, Options{Types: []string{"person", "organization"}}, eng), nil)
	const ev = `{"trace_id":"t-1","big":12345678901234567890,"f":1.10,"message":"card declined for Jane Doe","error":{"detail":"at ACME Corp"}}`

	code, body := postAnnotate(t, srv.URL, `{"event":`+ev+`,"fields":{"text":["/message","/error/detail"],"id":"/trace_id"},"mode":"enrich","enrich":{"field":"/ner/entities","tags":true,"tags_field":"/ner/tags"}}`)
	want := strings.TrimSuffix(ev, "}") + `,"ner":{"entities":[{"text":"Jane Doe","type":"person","start":18,"end":26,"field":"/message"},` +
		`{"text":"ACME Corp","type":"organization","start":3,"end":12,"field":"/error/detail"}],"tags":{"organization":["ACME Corp"],"person":["Jane Doe"]}}}`
	if code != 200 || strings.TrimSpace(string(body)) != want {
		t.Errorf("enrich: %d\n got %s\nwant %s", code, body, want)
	}

	// The annotation mode: the record, with the id read from the event.
	code, body = postAnnotate(t, srv.URL, `{"event":`+ev+`,"fields":{"text":["/message"],"id":"/trace_id"}}`)
	var rec record.Annotation
	if code != 200 || json.Unmarshal(body, &rec) != nil || rec.ID != "t-1" || len(rec.Entities) != 1 || rec.Entities[0].Text != "Jane Doe" {
		t.Errorf("annotation: %d %s", code, body)
	}
}

// TestAnnotateEventHostile: bad pointers, events that are no object, a
// missing field, a field that cannot be made, deep JSON: each a 400 with
// its reason, naming no text of the event.
func TestAnnotateEventHostile(t *testing.T) {
	eng := &modeltest.ScriptedEngine{}
	srv, _ := serveAPI(t, newAPI(t, Options{Types: []string{"person"}}, eng), nil)
	deep := strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000)
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"not an object", `{"event":["message"]}`, "invalid_event"},
		{"a string", `{"event":"secret text"}`, "invalid_event"},
		{"bad pointer", `{"event":{"message":"x"},"fields":{"text":["message"]}}`, "invalid_field"},
		{"bad escape", `{"event":{"message":"x"},"fields":{"text":["/m~2"]}}`, "invalid_field"},
		{"whole event", `{"event":{"message":"x"},"fields":{"text":[""]}}`, "invalid_field"},
		{"hostile pointer", `{"event":{"message":"x"},"fields":{"text":["/\u001b[31m~` + strings.Repeat("x", 3000) + `"]}}`, "invalid_field"},
		{"too many fields", `{"event":{"m":"x"},"fields":{"text":[` + strings.Repeat(`"/m",`, 20) + `"/m"]}}`, "invalid_field"},
		{"missing field", `{"event":{"msg":"secret text"},"fields":{"text":["/message"]}}`, record.ReasonMissingField},
		{"not a string", `{"event":{"message":{"secret":"text"}},"fields":{"text":["/message"]}}`, record.ReasonMissingField},
		{"bad mode", `{"event":{"text":"x"},"mode":"mirror"}`, "invalid_mode"},
		{"cannot make the field", `{"event":{"text":"x","ner":[1]},"mode":"enrich","enrich":{"field":"/ner/entities"}}`, "invalid_event"},
		{"tags inside the field", `{"event":{"text":"x"},"mode":"enrich","enrich":{"field":"/ner","tags":true,"tags_field":"/ner/t"}}`, "invalid_field"},
		{"text and event", `{"text":"x","event":{"text":"x"}}`, "invalid_request"},
		{"mode without event", `{"text":"x","mode":"enrich"}`, "invalid_request"},
		{"bad types", `{"event":{"text":"x","entity_types":"person"}}`, record.ReasonInvalidTypes},
		{"deep", `{"event":` + deep + `}`, "invalid_json"},
	} {
		code, body := postAnnotate(t, srv.URL, tc.body)
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if code != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != tc.reason {
			t.Errorf("%s: %d %.300s, want 400 %s", tc.name, code, body, tc.reason)
			continue
		}
		if strings.Contains(e.Error.Message, "secret") || strings.ContainsAny(e.Error.Message, "\n\x1b") || len(e.Error.Message) > 300 {
			t.Errorf("%s: message %q holds the event's text, an escape or too much", tc.name, e.Error.Message)
		}
	}
	if n := len(eng.Calls()); n != 0 {
		t.Errorf("the engine was called %d times for bad requests", n)
	}
}
