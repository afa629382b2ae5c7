package consumers

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/record"
)

func TestDecodeFields(t *testing.T) {
	logFields := FieldsConfig{Text: []string{"/message"}, ID: "/trace_id", Key: "/service"}
	several := FieldsConfig{Text: []string{"/message", "/error/detail"}}
	const event = `{"ts":"t","trace_id":"tr-1","service":"billing","n":12345678901234567890,"message":"card declined for Zoë","error":{"detail":"at ACME \"Corp\""}}`
	cases := []struct {
		name   string
		fields FieldsConfig
		in     string
		want   record.Document
		reason string
	}{
		{"one field", logFields, event,
			record.Document{ID: "tr-1", Text: "card declined for Zoë", Key: "billing", Metadata: []byte("{}"), Event: []byte(event)}, ""},
		{"several fields", several, event,
			record.Document{Text: "card declined for Zoë", Metadata: []byte("{}"), Event: []byte(event), Fields: []record.Field{
				{Pointer: "/message", Text: "card declined for Zoë"}, {Pointer: "/error/detail", Text: `at ACME "Corp"`}}}, ""},
		{"several, one absent", several, `{"message":"m"}`,
			record.Document{Text: "m", Metadata: []byte("{}"), Event: []byte(`{"message":"m"}`), Fields: []record.Field{{Pointer: "/message", Text: "m"}}}, ""},
		{"several, none present", several, `{"msg":"m"}`, record.Document{}, record.ReasonMissingField},
		{"several, one not a string", several, `{"message":"m","error":{"detail":5}}`, record.Document{}, record.ReasonMissingField},
		{"missing field", logFields, `{"trace_id":"tr-2","msg":"x"}`, record.Document{ID: "tr-2"}, record.ReasonMissingField},
		{"field not a string", logFields, `{"message":{"text":"x"}}`, record.Document{}, record.ReasonMissingField},
		{"field null", logFields, `{"message":null}`, record.Document{}, record.ReasonMissingField},
		{"empty field", logFields, `{"message":"  "}`, record.Document{}, record.ReasonEmptyText},
		{"types at a pointer", FieldsConfig{Text: []string{"/m"}, EntityTypes: "/ner/types"}, `{"m":"x","ner":{"types":["person"]}}`,
			record.Document{Text: "x", Types: []string{"person"}, Metadata: []byte("{}"), Event: []byte(`{"m":"x","ner":{"types":["person"]}}`)}, ""},
		{"bad types", FieldsConfig{Text: []string{"/m"}}, `{"m":"x","entity_types":[1]}`, record.Document{}, record.ReasonInvalidTypes},
		{"metadata kept when an object", FieldsConfig{Text: []string{"/m"}}, `{"m":"x","metadata":{"a":1}}`,
			record.Document{Text: "x", Metadata: []byte(`{"a":1}`), Event: []byte(`{"m":"x","metadata":{"a":1}}`)}, ""},
		{"metadata ignored when not", FieldsConfig{Text: []string{"/m"}}, `{"m":"x","metadata":7}`,
			record.Document{Text: "x", Metadata: []byte(`{}`), Event: []byte(`{"m":"x","metadata":7}`)}, ""},
		{"escaped key", FieldsConfig{Text: []string{"/a~1b"}}, `{"a/b":"x"}`,
			record.Document{Text: "x", Metadata: []byte(`{}`), Event: []byte(`{"a/b":"x"}`)}, ""},
		{"array index", FieldsConfig{Text: []string{"/lines/1"}}, `{"lines":["a","b"]}`,
			record.Document{Text: "b", Metadata: []byte(`{}`), Event: []byte(`{"lines":["a","b"]}`)}, ""},
		{"not an object", logFields, `["message"]`, record.Document{}, record.ReasonInvalidJSON},
		{"broken", logFields, `{"message":"x"`, record.Document{}, record.ReasonInvalidJSON},
		{"lone surrogate", logFields, `{"message":"\ud800"}`, record.Document{}, record.ReasonInvalidUTF8},
		{"invalid UTF-8", logFields, "{\"message\":\"\xff\"}", record.Document{}, record.ReasonInvalidUTF8},
		{"id an object", logFields, `{"message":"x","trace_id":{}}`, record.Document{}, record.ReasonInvalidJSON},
		{"numeric key", logFields, `{"message":"x","service":12345678901234567890}`,
			record.Document{Text: "x", Key: "12345678901234567890", Metadata: []byte(`{}`), Event: []byte(`{"message":"x","service":12345678901234567890}`)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sel, err := c.fields.Selector()
			if err != nil || sel == nil {
				t.Fatalf("Selector: %v, %v", sel, err)
			}
			got, err := Decode([]byte(c.in), "", DecodeOptions{Fields: sel})
			if c.reason != "" {
				var ie *record.InputError
				if !errors.As(err, &ie) || ie.Reason != c.reason {
					t.Fatalf("error %v, want reason %s", err, c.reason)
				}
				if strings.Contains(ie.Detail, "Zoë") || strings.ContainsAny(ie.Detail, "\n") {
					t.Errorf("detail %q holds the text or a newline", ie.Detail)
				}
				if got.ID != c.want.ID {
					t.Errorf("id on error %q, want %q", got.ID, c.want.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDecodeFieldsDetailNamesPointer(t *testing.T) {
	sel, _ := FieldsConfig{Text: []string{"/error/detail"}}.Selector()
	_, err := Decode([]byte(`{"message":"x"}`), "", DecodeOptions{Fields: sel})
	var ie *record.InputError
	if !errors.As(err, &ie) || ie.Reason != record.ReasonMissingField || !strings.Contains(ie.Detail, `"/error/detail"`) {
		t.Errorf("missing field: %v, want missing_field naming /error/detail", err)
	}
}

func TestFieldsSelectorDefault(t *testing.T) {
	// The default fields read DESIGN.md's schema with DecodeJSON, as
	// before, and keep the event.
	for _, f := range []FieldsConfig{{}, DefaultFieldsConfig()} {
		sel, err := f.Selector()
		if sel != nil || err != nil {
			t.Errorf("%+v: Selector = %v, %v; want nil, nil", f, sel, err)
		}
	}
	d, err := Decode([]byte(`{"text":"a"}`), "", DecodeOptions{})
	if err != nil || string(d.Event) != `{"text":"a"}` {
		t.Errorf("default: %+v, %v", d, err)
	}
	if _, err := Decode([]byte(`{"id":"x"}`), "", DecodeOptions{}); err == nil || !strings.HasPrefix(err.Error(), record.ReasonMissingText) {
		t.Errorf("default schema without text: %v, want missing_text", err)
	}
}

func TestFieldsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    FieldsConfig
		want []string // the paths named
	}{
		{"default", DefaultFieldsConfig(), nil},
		{"log", FieldsConfig{Text: []string{"/message", "/error/detail"}, ID: "/trace_id", EntityTypes: "/t", Key: "/service"}, nil},
		{"no text", FieldsConfig{Text: []string{}, ID: "/id", EntityTypes: "/e"}, []string{"text:"}},
		{"whole value", FieldsConfig{Text: []string{""}, ID: "/id", EntityTypes: "/e"}, []string{"text[0]:"}},
		{"no slash", FieldsConfig{Text: []string{"message"}, ID: "id", EntityTypes: "/e", Key: "k"}, []string{"text[0]:", "id:", "key:"}},
		{"bad escape", FieldsConfig{Text: []string{"/a", "/b~2"}, ID: "/id", EntityTypes: "/e~"}, []string{"text[1]:", "entity_types:"}},
		{"too many", FieldsConfig{Text: strings.Split(strings.Repeat("/a,", maxTextFields+1), ",")[:maxTextFields+1], ID: "/id", EntityTypes: "/e"}, []string{"text:"}},
	} {
		err := tc.f.Validate()
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%s: %v, want problems at %v", tc.name, err, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not name %s", tc.name, err, w)
			}
		}
	}
	// A hostile pointer is named short, on one line.
	err := FieldsConfig{Text: []string{"x" + strings.Repeat("\x1b[31m\n", 1000)}, ID: "/id", EntityTypes: "/e"}.Validate()
	if err == nil || len(err.Error()) > 300 || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("hostile pointer: %q", err)
	}
}

// FuzzDecodeFields: any value decodes to a document whose texts are
// strings at their fields, or to an *record.InputError with a reason and
// a one-line detail; never a panic.
func FuzzDecodeFields(f *testing.F) {
	for _, s := range []string{`{"message":"x","error":{"detail":"y"}}`, `{"message":5}`, `[]`, `{"a/b":"\ud800"}`, `{"message":"x","entity_types":["a"],"service":1e400}`} {
		f.Add([]byte(s))
	}
	sel, err := FieldsConfig{Text: []string{"/message", "/error/detail"}, Key: "/service"}.Selector()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		d, err := DecodeFields(value, Limits{MaxBytes: 1 << 16, MaxTypes: 8}, sel)
		if err != nil {
			var ie *record.InputError
			if !errors.As(err, &ie) || ie.Reason == "" || strings.ContainsAny(ie.Detail, "\n\r") {
				t.Fatalf("error %#v", err)
			}
			return
		}
		if len(d.Fields) == 0 || d.Text != d.Fields[0].Text || strings.TrimSpace(d.Text) == "" {
			t.Fatalf("document %+v", d)
		}
	})
}
