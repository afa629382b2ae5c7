package producers

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/jsonptr"
	"github.com/nerstream/nerstream/record"
)

const logEvent = "{\"ts\": \"2026-12-03T10:00:00.123Z\",  \"level\":\"warn\", \"big\":12345678901234567890,\n" +
	"\t\"f\":1.10, \"e\":1E+2, \"esc\":\"tab\\t quote\\\" \\u00e9 \\/\", \"uni\":\"Zoë 😀\", \"unknown\":{\"z\":[null,true]},\n" +
	"\"message\":\"card declined for Jane Doe at ACME Corp\"}\n"

var ents = []record.Entity{
	{Text: "Jane Doe", Type: "person", Start: 18, End: 26},
	{Text: "ACME Corp", Type: "organization", Start: 30, End: 39},
	{Text: "Jane Doe", Type: "person", Start: 50, End: 58},
}

// outside returns out with the member at p removed back to what the input
// had there: the bytes before the splice and after it.
func sameOutside(t *testing.T, in, out []byte, replacedLen int) {
	t.Helper()
	n := min(len(in), len(out))
	pre := 0
	for pre < n && in[pre] == out[pre] {
		pre++
	}
	suf := 0
	for suf < n-pre && in[len(in)-1-suf] == out[len(out)-1-suf] {
		suf++
	}
	if pre+suf < len(in)-replacedLen {
		t.Errorf("bytes changed outside the splice:\n in %q\nout %q", in, out)
	}
}

func TestEnrich(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     EnrichConfig
		event   string
		want    string // the value at the field
		wantPtr string
		tags    string
	}{
		{"default field", EnrichConfig{}, logEvent,
			`[{"text":"Jane Doe","type":"person","start":18,"end":26},{"text":"ACME Corp","type":"organization","start":30,"end":39},{"text":"Jane Doe","type":"person","start":50,"end":58}]`, "/entities", ""},
		{"nested field made", EnrichConfig{Field: "/ner/entities"}, logEvent, "", "/ner/entities", ""},
		{"tags", EnrichConfig{Tags: true}, logEvent, "", "/entities", `{"organization":["ACME Corp"],"person":["Jane Doe"]}`},
		{"tags nested", EnrichConfig{Field: "/ner/entities", Tags: true, TagsField: "/ner/tags"}, `{"message":"x"}`, "", "/ner/entities", `{"organization":["ACME Corp"],"person":["Jane Doe"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tc.cfg.Enricher()
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.Enrich([]byte(tc.event), ents)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("not JSON: %s", out)
			}
			got, err := jsonptr.Get(out, jsonptr.MustParse(tc.wantPtr))
			if err != nil {
				t.Fatal(err)
			}
			var back []record.Entity
			if err := json.Unmarshal(got, &back); err != nil || len(back) != len(ents) || back[1] != ents[1] {
				t.Errorf("entities %s: %v", got, err)
			}
			if tc.want != "" && string(got) != tc.want {
				t.Errorf("entities\n got %s\nwant %s", got, tc.want)
			}
			if tc.tags != "" {
				tf := cmpOr(tc.cfg.TagsField, "/entity_tags")
				if tg, err := jsonptr.Get(out, jsonptr.MustParse(tf)); err != nil || string(tg) != tc.tags {
					t.Errorf("tags %s, %v; want %s", tg, err, tc.tags)
				}
			}
			if !tc.cfg.Tags {
				sameOutside(t, []byte(tc.event), out, 0)
			}
		})
	}
}

func TestEnrichTwiceReplaces(t *testing.T) {
	e, _ := EnrichConfig{}.Enricher()
	once, err := e.Enrich([]byte(logEvent), ents)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := e.Enrich(once, ents[:1])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(twice, []byte(`"entities"`)) != 1 {
		t.Errorf("enriched twice: %s", twice)
	}
	old, _ := jsonptr.Get(once, jsonptr.MustParse("/entities"))
	sameOutside(t, once, twice, len(old))
	got, _ := jsonptr.Get(twice, jsonptr.MustParse("/entities"))
	if string(got) != `[{"text":"Jane Doe","type":"person","start":18,"end":26}]` {
		t.Errorf("replaced entities: %s", got)
	}
	// No entities is [], not null.
	none, _ := e.Enrich([]byte(`{"message":"x"}`), nil)
	if string(none) != `{"message":"x","entities":[]}` {
		t.Errorf("no entities: %s", none)
	}
}

func TestEnrichHostile(t *testing.T) {
	e, _ := EnrichConfig{Field: "/ner/entities"}.Enricher()
	for _, ev := range []string{`{"ner":[1,2]}`, `{"ner":"s"}`, `{"ner":5}`} {
		if _, err := e.Enrich([]byte(ev), ents); !errors.Is(err, jsonptr.ErrCannotCreate) {
			t.Errorf("%s: %v, want ErrCannotCreate", ev, err)
		}
	}
	// An entity's text with characters that need escaping stays JSON.
	out, err := e.Enrich([]byte(`{}`), []record.Entity{{Text: "a\"<b>\u2028\n", Type: "x"}})
	if err != nil || !json.Valid(out) || !strings.Contains(string(out), `<b>`) {
		t.Errorf("escaping: %s, %v", out, err)
	}
}

func TestEnrichConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  EnrichConfig
		want []string
	}{
		{"default", DefaultEnrichConfig(), nil},
		{"no slash", EnrichConfig{Field: "entities", TagsField: "/t"}, []string{"field:"}},
		{"whole event", EnrichConfig{Field: "", TagsField: "/t"}, []string{"field:"}},
		{"bad escape", EnrichConfig{Field: "/a~2", Tags: true, TagsField: "/b~"}, []string{"field:", "tags_field:"}},
		{"tags inside field", EnrichConfig{Field: "/ner", Tags: true, TagsField: "/ner/tags"}, []string{"tags_field:"}},
		{"tags same as field", EnrichConfig{Field: "/e", Tags: true, TagsField: "/e"}, []string{"tags_field:"}},
	} {
		err := tc.cfg.Validate()
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
	o := DefaultOutputConfig()
	o.Mode = "mirror\n\x1b[31m" + strings.Repeat("x", 5000)
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "mode:") || len(err.Error()) > 200 || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("hostile mode: %q", err)
	}
}

func TestEnrichedMessage(t *testing.T) {
	e, _ := EnrichConfig{}.Enricher()
	hs := []record.Header{{Key: "trace", Value: []byte("1")}, {Key: "Content-Encoding", Value: []byte("snappy")}, {Key: "x", Value: []byte("2")}}
	m, err := EnrichedMessage("out", e, []byte("k1"), []byte(`{"message":"m"}`), hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "out" || string(m.Key) != "k1" || len(m.Headers) != 2 || m.Headers[0].Key != "trace" || m.Headers[1].Key != "x" {
		t.Errorf("message %+v", m)
	}
}

// TestReadmeLogEnrichment: the README's before and after events are what
// the enricher writes with the entities shown, and each span is exact
// against its field.
func TestReadmeLogEnrichment(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	i := strings.Index(sec, "\n## Log enrichment\n")
	if i < 0 {
		t.Fatal("README has no Log enrichment section")
	}
	sec = sec[i:]
	var blocks []string
	for _, part := range strings.Split(sec, "```json\n")[1:3] {
		blocks = append(blocks, strings.TrimSpace(part[:strings.Index(part, "```")]))
	}
	before, after := []byte(blocks[0]), []byte(blocks[1])
	rawEnts, err := jsonptr.Get(after, jsonptr.MustParse("/ner/entities"))
	if err != nil {
		t.Fatal(err)
	}
	var shown []record.Entity
	if err := json.Unmarshal(rawEnts, &shown); err != nil {
		t.Fatal(err)
	}
	e, err := EnrichConfig{Field: "/ner/entities", Tags: true, TagsField: "/ner/tags"}.Enricher()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Enrich(before, shown)
	if err != nil || !bytes.Equal(got, after) {
		t.Errorf("README's after is not the enricher's:\n got %s\nwant %s (%v)", got, after, err)
	}
	for _, en := range shown {
		raw, err := jsonptr.Get(before, jsonptr.MustParse(en.Field))
		var text string
		if err != nil || json.Unmarshal(raw, &text) != nil || string([]rune(text)[en.Start:en.End]) != en.Text {
			t.Errorf("README entity %+v: span not exact against %s", en, en.Field)
		}
	}
}
