package eval

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// conv builds one UniNER conversation record: the first human turn, the
// acknowledgement, then question/answer pairs (type, answer).
func conv(id, first string, qa ...string) string {
	type turn struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}
	turns := []turn{{"human", first}, {"gpt", "I've read this text."}}
	for i := 0; i+1 < len(qa); i += 2 {
		turns = append(turns, turn{"human", "What describes " + qa[i] + " in the text?"}, turn{"gpt", qa[i+1]})
	}
	b, err := json.Marshal(map[string]any{"id": id, "conversations": turns})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// withoutID drops the id of a record made by conv.
func withoutID(record string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(record), &m); err != nil {
		panic(err)
	}
	delete(m, "id")
	b, _ := json.Marshal(m)
	return string(b)
}

func TestReadUniNER(t *testing.T) {
	a := conv("a", "Text: Ada met Babbage.", "person", `["Ada", "Babbage", "Ada"]`)
	b := conv("b", "Text: In London.", "location", `["London"]`)
	multi := conv("m", "Text: Ada in London.", "person", `["Ada"]`, "location", `["London"]`, "event", `[]`)
	tests := []struct {
		name string
		in   string
		want []Query
	}{
		{
			name: "JSON list",
			in:   "[" + a + ",\n" + b + "]",
			want: []Query{
				{ID: "a", Text: "Ada met Babbage.", Type: "person", Gold: []string{"Ada", "Babbage", "Ada"}},
				{ID: "b", Text: "In London.", Type: "location", Gold: []string{"London"}},
			},
		},
		{
			name: "JSON lines, blank lines and CRLF",
			in:   a + "\r\n\r\n" + b + "\r\n",
			want: []Query{
				{ID: "a", Text: "Ada met Babbage.", Type: "person", Gold: []string{"Ada", "Babbage", "Ada"}},
				{ID: "b", Text: "In London.", Type: "location", Gold: []string{"London"}},
			},
		},
		{
			name: "multi-turn record: ids numbered",
			in:   "[" + multi + "]",
			want: []Query{
				{ID: "m/0", Text: "Ada in London.", Type: "person", Gold: []string{"Ada"}},
				{ID: "m/1", Text: "Ada in London.", Type: "location", Gold: []string{"London"}},
				{ID: "m/2", Text: "Ada in London.", Type: "event", Gold: nil},
			},
		},
		{
			name: "byte order mark before a list",
			in:   "\ufeff[" + a + "]",
			want: []Query{{ID: "a", Text: "Ada met Babbage.", Type: "person", Gold: []string{"Ada", "Babbage", "Ada"}}},
		},
		{
			name: "byte order mark before JSON lines",
			in:   "\ufeff" + a + "\n" + b,
			want: []Query{
				{ID: "a", Text: "Ada met Babbage.", Type: "person", Gold: []string{"Ada", "Babbage", "Ada"}},
				{ID: "b", Text: "In London.", Type: "location", Gold: []string{"London"}},
			},
		},
		{
			name: "supervised first turn names the dataset",
			in:   conv("s", "Dataset: CrossNER_AI\nText: Typical generative model approaches", "algorithm", `["generative model"]`),
			want: []Query{{ID: "s", Text: "Typical generative model approaches", Type: "algorithm", Gold: []string{"generative model"}}},
		},
		{
			name: "no id: the record's index",
			in:   "[" + a + ", " + withoutID(b) + "]",
			want: []Query{
				{ID: "a", Text: "Ada met Babbage.", Type: "person", Gold: []string{"Ada", "Babbage", "Ada"}},
				{ID: "1", Text: "In London.", Type: "location", Gold: []string{"London"}},
			},
		},
		{
			name: "gold read as the official parser reads it: chatter gives nothing, lone surrogates kept distinct",
			in: conv("x", "Text: t", "person", `Sure: ["Ada"]`) + "\n" +
				`{"id": "y", "conversations": [{"from": "human", "value": "Text: \u00e9t\u00e9"}, {"from": "gpt", "value": "ok"}, ` +
				`{"from": "human", "value": "What describes thing in the text?"}, {"from": "gpt", "value": "[\"\\ud800\", \"\\udc00\", \"\\ud83d\\ude00\"]"}]}`,
			want: []Query{
				{ID: "x", Text: "t", Type: "person", Gold: nil},
				{ID: "y", Text: "été", Type: "thing", Gold: []string{"\xed\xa0\x80", "\xed\xb0\x80", "😀"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ReadUniNER(strings.NewReader(tt.in), "set")
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "set" {
				t.Errorf("name %q", d.Name)
			}
			if len(d.Queries) != len(tt.want) {
				t.Fatalf("%d queries, want %d: %+v", len(d.Queries), len(tt.want), d.Queries)
			}
			for i, q := range d.Queries {
				w := tt.want[i]
				if q.ID != w.ID || q.Text != w.Text || q.Type != w.Type || !slices.Equal(q.Gold, w.Gold) || q.GoldSpans != nil {
					t.Errorf("query %d:\n got %#v\nwant %#v", i, q, w)
				}
			}
		})
	}
}

func TestReadUniNERErrors(t *testing.T) {
	good := conv("a", "Text: Ada.", "person", `["Ada"]`)
	tests := []struct {
		name, in, want string
	}{
		{"bad JSON list", "[" + good + ",]", "not UniNER conversation JSON"},
		{"a list of the wrong shape", `[{"id": "a", "conversations": "x"}]`, "not UniNER conversation JSON"},
		{"bad JSON line", good + "\n\n{\"id\": \"b\",\n", "line 3: not a UniNER conversation record"},
		{"two turns", conv("a", "Text: Ada."), `record 0 (id "a"): want the passage`},
		{"five turns", `[` + good + `, ` + strings.Replace(good, `"conversations":[`, `"conversations":[{"from":"human","value":"hi"},`, 1) + `]`, `record 1 (id "a"): want the passage, its acknowledgement, then question/answer pairs; got 5 turns`},
		{"no Text: in the first turn", conv("a", "Passage: Ada.", "person", `[]`), `does not start the passage with "Text: "`},
		{"not a type question", strings.Replace(good, "What describes person in the text?", "Which persons are in the text?", 1), `turn 2 is not "What describes X in the text?"`},
		{"second question wrong", strings.Replace(conv("a", "Text: Ada.", "person", `[]`, "place", `[]`), "What describes place in the text?", "What describes place?", 1), "turn 4 is not"},
		{"a null string", `[{"id": null, "conversations": []}]`, "not UniNER conversation JSON"},
		{"empty list", "[]", "no queries"},
		{"nothing", " \n", "no queries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadUniNER(strings.NewReader(tt.in), "set")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
