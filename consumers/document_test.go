package consumers

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, in string
		lim      Limits
		want     Document
		reason   string
	}{
		{"full", `{"id": "d1", "text": "Ada", "entity_types": ["person"], "metadata": {"k": [1]}}`, Limits{},
			Document{ID: "d1", Text: "Ada", EntityTypes: []string{"person"}, Metadata: []byte(`{"k": [1]}`)}, ""},
		{"text only", `{"text": "Ada"}`, Limits{}, Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"numeric id", `{"id": 7, "text": "Ada"}`, Limits{}, Document{ID: "7", Text: "Ada", Metadata: []byte("{}")}, ""},
		{"null fields", `{"id": null, "text": "Ada", "entity_types": null, "metadata": null}`, Limits{}, Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"unknown fields ignored", `{"text": "Ada", "extra": true}`, Limits{}, Document{Text: "Ada", Metadata: []byte("{}")}, ""},
		{"unicode", `{"text": "Zoë \u00e9 😀"}`, Limits{}, Document{Text: "Zoë é 😀", Metadata: []byte("{}")}, ""},
		{"not JSON", `hello`, Limits{}, Document{}, ReasonInvalidJSON},
		{"a list", `["text"]`, Limits{}, Document{}, ReasonInvalidJSON},
		{"broken", `{"text": "a"`, Limits{}, Document{}, ReasonInvalidJSON},
		{"empty value", ``, Limits{}, Document{}, ReasonInvalidJSON},
		{"no text", `{"id": "x"}`, Limits{}, Document{}, ReasonMissingText},
		{"text not a string", `{"text": 5}`, Limits{}, Document{}, ReasonInvalidJSON},
		{"empty text", `{"text": ""}`, Limits{}, Document{}, ReasonEmptyText},
		{"blank text", `{"text": " \n "}`, Limits{}, Document{}, ReasonEmptyText},
		{"invalid UTF-8", "{\"text\": \"caf\xe9\"}", Limits{}, Document{}, ReasonInvalidUTF8},
		{"types not strings", `{"text": "a", "entity_types": [1]}`, Limits{}, Document{}, ReasonInvalidTypes},
		{"types not a list", `{"text": "a", "entity_types": "person"}`, Limits{}, Document{}, ReasonInvalidTypes},
		{"empty types", `{"text": "a", "entity_types": []}`, Limits{}, Document{}, ReasonInvalidTypes},
		{"blank type", `{"text": "a", "entity_types": ["person", " "]}`, Limits{}, Document{}, ReasonInvalidTypes},
		{"too many types", `{"text": "a", "entity_types": ["a", "b", "c"]}`, Limits{MaxTypes: 2}, Document{}, ReasonTooManyTypes},
		{"too large", `{"text": "abcdef"}`, Limits{MaxBytes: 10}, Document{}, ReasonTooLarge},
		{"metadata not an object", `{"text": "a", "metadata": [1]}`, Limits{}, Document{}, ReasonInvalidJSON},
		{"id an object", `{"text": "a", "id": {}}`, Limits{}, Document{}, ReasonInvalidJSON},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(c.in), c.lim)
			if c.reason != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Reason != c.reason {
					t.Fatalf("err = %v, want reason %s", err, c.reason)
				}
				if strings.Contains(de.Error(), "\n") {
					t.Errorf("multi-line error %q", de.Error())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != c.want.ID || got.Text != c.want.Text || !slices.Equal(got.EntityTypes, c.want.EntityTypes) || string(got.Metadata) != string(c.want.Metadata) {
				t.Errorf("got %+v (metadata %s), want %+v", got, got.Metadata, c.want)
			}
		})
	}
}
