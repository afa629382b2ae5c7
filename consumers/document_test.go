package consumers

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/record"
)

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, in string
		lim      Limits
		want     record.Document
		reason   string
	}{
		{"full", `{"id": "d1", "text": "Ada", "entity_types": ["person"], "metadata": {"k": [1]}}`, Limits{},
			record.Document{ID: "d1", Text: "Ada", Types: []string{"person"}, Metadata: []byte(`{"k": [1]}`)}, ""},
		{"text only", `{"text": "Ada"}`, Limits{}, record.Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"numeric id", `{"id": 7, "text": "Ada"}`, Limits{}, record.Document{ID: "7", Text: "Ada", Metadata: []byte("{}")}, ""},
		{"null fields", `{"id": null, "text": "Ada", "entity_types": null, "metadata": null}`, Limits{}, record.Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"unknown fields ignored", `{"text": "Ada", "extra": true}`, Limits{}, record.Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"unicode", `{"text": "Zoë \u00e9 😀"}`, Limits{}, record.Document{Text: "Zoë é 😀", Metadata: []byte("{}")}, ""},
		{"not JSON", `hello`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"a list", `["text"]`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"broken", `{"text": "a"`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"empty value", ``, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"no text", `{"id": "x"}`, Limits{}, record.Document{ID: "x"}, record.ReasonMissingText},
		{"text not a string", `{"text": 5}`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"empty text", `{"text": ""}`, Limits{}, record.Document{}, record.ReasonEmptyText},
		{"blank text", `{"text": " \n "}`, Limits{}, record.Document{}, record.ReasonEmptyText},
		{"invalid UTF-8", "{\"text\": \"caf\xe9\"}", Limits{}, record.Document{}, record.ReasonInvalidUTF8},
		{"types not strings", `{"text": "a", "entity_types": [1]}`, Limits{}, record.Document{}, record.ReasonInvalidTypes},
		{"types not a list", `{"text": "a", "entity_types": "person"}`, Limits{}, record.Document{}, record.ReasonInvalidTypes},
		{"empty types", `{"text": "a", "entity_types": []}`, Limits{}, record.Document{}, record.ReasonInvalidTypes},
		{"blank type", `{"text": "a", "entity_types": ["person", " "]}`, Limits{}, record.Document{}, record.ReasonInvalidTypes},
		{"too many types", `{"text": "a", "entity_types": ["a", "b", "c"]}`, Limits{MaxTypes: 2}, record.Document{}, record.ReasonTooManyTypes},
		{"too large", `{"text": "abcdef"}`, Limits{MaxBytes: 10}, record.Document{}, record.ReasonTooLarge},
		{"metadata not an object", `{"text": "a", "metadata": [1]}`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		{"id an object", `{"text": "a", "id": {}}`, Limits{}, record.Document{}, record.ReasonInvalidJSON},
		// Lone surrogates are not Unicode: refused as invalid UTF-8 is.
		{"escaped pair", `{"text": "\ud83d\ude00"}`, Limits{}, record.Document{Text: "😀", Metadata: []byte("{}")}, ""},
		{"lone surrogate", `{"id": "d", "text": "a\ud800"}`, Limits{}, record.Document{ID: "d"}, record.ReasonInvalidUTF8},
		{"lone low surrogate in a type", `{"text": "a", "entity_types": ["\udc00"]}`, Limits{}, record.Document{}, record.ReasonInvalidUTF8},
		{"lone surrogate in the id", `{"id": "\udc00", "text": "a"}`, Limits{}, record.Document{}, record.ReasonInvalidUTF8},
		{"invalid UTF-8 in the id", "{\"id\": \"\xff\", \"text\": \"a\"}", Limits{}, record.Document{}, record.ReasonInvalidUTF8},
		{"invalid UTF-8 and broken JSON", "{\"id\": \"d\", \"text\": \"caf\xe9", Limits{}, record.Document{}, record.ReasonInvalidUTF8},
		// An error keeps the id, for the reports that name the document.
		{"invalid UTF-8 with an id", "{\"id\": 5, \"text\": \"caf\xe9\"}", Limits{}, record.Document{ID: "5"}, record.ReasonInvalidUTF8},
		{"empty text with an id", `{"id": "e", "text": ""}`, Limits{}, record.Document{ID: "e"}, record.ReasonEmptyText},
		{"empty types with an id", `{"id": "f", "text": "a", "entity_types": []}`, Limits{}, record.Document{ID: "f"}, record.ReasonInvalidTypes},
		{"bad metadata with an id", `{"id": "g", "text": "a", "metadata": 1}`, Limits{}, record.Document{ID: "g"}, record.ReasonInvalidJSON},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(c.in), c.lim)
			if c.reason != "" {
				var de *record.InputError
				if !errors.As(err, &de) || de.Reason != c.reason {
					t.Fatalf("err = %v, want reason %s", err, c.reason)
				}
				if strings.Contains(de.Error(), "\n") {
					t.Errorf("multi-line error %q", de.Error())
				}
				if got.ID != c.want.ID || got.Text != "" || got.Types != nil || got.Metadata != nil {
					t.Errorf("with the error, got %+v, want the id %q alone", got, c.want.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != c.want.ID || got.Text != c.want.Text || !slices.Equal(got.Types, c.want.Types) || string(got.Metadata) != string(c.want.Metadata) {
				t.Errorf("got %+v (metadata %s), want %+v", got, got.Metadata, c.want)
			}
		})
	}
}
