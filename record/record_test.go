package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestAnnotationJSON(t *testing.T) {
	cases := []struct {
		name string
		in   Annotation
		want string
	}{
		{"empty lists and metadata",
			Annotation{ID: "d", Model: "m"},
			`{"id":"d","model":"m","entity_types":[],"entities":[],"metadata":{}}`},
		{"null metadata",
			Annotation{ID: "d", Model: "m", Metadata: json.RawMessage(" null ")},
			`{"id":"d","model":"m","entity_types":[],"entities":[],"metadata":{}}`},
		{"full",
			Annotation{ID: "d", Source: &Source{Topic: "t", Partition: 2, Offset: 9}, Model: "m", EntityTypes: []string{"person"},
				Entities:  []Entity{{Text: "Ada <Lovelace>", Type: "person", Start: 0, End: 14}, {Text: "ada", Type: "person", Start: 20, End: 23, Mention: "Ada"}},
				Unaligned: []Mention{{Type: "person", Text: "Grace & Hopper"}}, Metadata: json.RawMessage(`{"k": 1}`)},
			`{"id":"d","source":{"topic":"t","partition":2,"offset":9},"model":"m","entity_types":["person"],` +
				`"entities":[{"text":"Ada <Lovelace>","type":"person","start":0,"end":14},{"text":"ada","type":"person","start":20,"end":23,"mention":"Ada"}],` +
				`"unaligned":[{"type":"person","text":"Grace & Hopper"}],"metadata":{"k":1}}`},
		{"scores, a score of 0 written",
			Annotation{ID: "d", Model: "m", EntityTypes: []string{"person", "place"},
				Entities:    []Entity{{Text: "Ada", Type: "person", Start: 0, End: 3, Score: ptr(0.9876)}, {Text: "Bo", Type: "person", Start: 4, End: 6, Score: ptr(0)}},
				EmptyScores: map[string]float64{"place": 0.5}},
			`{"id":"d","model":"m","entity_types":["person","place"],` +
				`"entities":[{"text":"Ada","type":"person","start":0,"end":3,"score":0.9876},{"text":"Bo","type":"person","start":4,"end":6,"score":0}],` +
				`"empty_scores":{"place":0.5},"metadata":{}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// An encoder that escapes no HTML gets the text as it is.
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(c.in); err != nil {
				t.Fatal(err)
			}
			if got := string(bytes.TrimSpace(b.Bytes())); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			// json.Marshal escapes as it always does, and reads back.
			m, err := json.Marshal(c.in)
			if err != nil {
				t.Fatal(err)
			}
			var back Annotation
			if err := json.Unmarshal(m, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := json.Marshal(back)
			if !bytes.Equal(m, again) {
				t.Errorf("round trip: %s, then %s", m, again)
			}
		})
	}
	if _, err := json.Marshal(Annotation{Metadata: json.RawMessage(`{"broken`)}); err == nil {
		t.Error("invalid metadata encoded without an error")
	}
}

func TestInputError(t *testing.T) {
	var err error = &InputError{Reason: ReasonEmptyText, Detail: "text is empty"}
	if err.Error() != "empty_text: text is empty" {
		t.Errorf("Error() = %q", err.Error())
	}
	var ie *InputError
	if !errors.As(errors.Join(errors.New("x"), err), &ie) || ie.Reason != ReasonEmptyText {
		t.Errorf("errors.As: %v", ie)
	}
}

func ptr(f float64) *float64 { return &f }

func TestRoundScore(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0.123456, 0.1235}, {0.99996, 1}, {1.5, 1}, {-0.1, 0}, {math.NaN(), 0}, {0, 0}, {0.00004, 0}, {0.00005, 0.0001},
	} {
		if got := RoundScore(c.in); got != c.want {
			t.Errorf("RoundScore(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
