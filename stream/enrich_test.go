package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/jsonptr"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

// logEvents are log events as a pipeline sends them: nested fields,
// unicode, big integers, floats with trailing zeros, escapes, white space,
// unknown fields, and one already enriched.
var logEvents = []string{
	`{"ts":"2026-12-03T10:00:00.123Z","level":"warn","service":"billing","message":"card declined for Jane Doe at ACME Corp","trace_id":"t-0"}`,
	"{ \"ts\" : \"2026-12-03T10:00:01Z\",\n  \"amount\": 12345678901234567890, \"ratio\": 1.10, \"exp\": 1E+2,\n  \"message\": \"refund for Zoë Ångström \\u2192 ACME Corp \\\"EU\\\" \\/ tab\\there 😀\",\n  \"unknown\": {\"deep\": [null, true, {\"x\": -0.0}]}\n}\n",
	`{"message":"disk full","error":{"code":28,"detail":"write failed for Jane Doe's upload at ACME Corp"},"n":[1.10,2.20]}`,
	`{"message":"retry for ACME Corp","ner":{"entities":[{"old":"stale"}],"keep":1.10}}`,
	`{"error":{"detail":"Jane Doe"}}`, // no message: the detail alone
}

// badEvents are dead letters with missing_field.
var badEvents = []string{
	`{"ts":"2026-12-03T10:00:02Z","msg":"no message field here, Jane Doe","big":12345678901234567890}`,
	`{"message":42,"error":{"detail":"Jane Doe"}}`,
}

func enrichConfig(brokers []string) config.Config {
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Input.Fields.Text = []string{"/message", "/error/detail"}
	cfg.Input.Fields.ID = "/trace_id"
	cfg.Output.Mode = "enrich"
	cfg.Output.Enrich.Field = "/ner/entities"
	cfg.Output.Enrich.Tags = true
	cfg.Output.Enrich.TagsField = "/ner/tags"
	cfg.Model.Types = []string{"person", "organization"}
	return cfg
}

// produceEvents writes the events keyed "k-i" with a header "h: v-i"; the
// second is snappy-compressed.
func produceEvents(t *testing.T, brokers []string, events []string, from int) {
	t.Helper()
	var msgs []kafka.Message
	for i, ev := range events {
		m := kafka.Message{Key: fmt.Appendf(nil, "k-%d", from+i), Value: []byte(ev), Headers: []kafka.Header{{Key: "h", Value: fmt.Appendf(nil, "v-%d", from+i)}}}
		if from+i == 1 {
			m.Value = snappy.Encode(nil, m.Value)
			m.Headers = append(m.Headers, kafka.Header{Key: "content-encoding", Value: []byte("snappy")})
		}
		msgs = append(msgs, m)
	}
	kafkatest.ProduceRaw(t, brokers, msgs...)
}

// checkEnriched checks one enriched record against its input event: the
// value is the event with exactly the entities and tags it holds spliced
// in at their fields (so every other byte is the input's), each entity's
// span is exact against its field's text, and it returns the entities.
func checkEnriched(t *testing.T, in string, out []byte, several bool) []record.Entity {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not JSON: %s", out)
	}
	rawEnts, err := jsonptr.Get(out, jsonptr.MustParse("/ner/entities"))
	if err != nil {
		t.Fatalf("no /ner/entities in %s", out)
	}
	rawTags, err := jsonptr.Get(out, jsonptr.MustParse("/ner/tags"))
	if err != nil {
		t.Fatalf("no /ner/tags in %s", out)
	}
	// What the output must be, built without the code under test: the
	// input with the new member after its last one, or, for the event
	// enriched before, its old entities replaced and the tags added.
	var want string
	if strings.Contains(in, `"ner"`) {
		want = strings.Replace(in, `[{"old":"stale"}]`, string(rawEnts), 1)
		want = strings.Replace(want, `"keep":1.10`, `"keep":1.10,"tags":`+string(rawTags), 1)
	} else {
		k := strings.LastIndex(in, "}")
		for k > 0 && strings.ContainsRune(" \t\r\n", rune(in[k-1])) {
			k--
		}
		want = in[:k] + `,"ner":{"entities":` + string(rawEnts) + `,"tags":` + string(rawTags) + `}` + in[k:]
	}
	if string(out) != want {
		t.Fatalf("output is not the input with its entities spliced in:\n got %s\nwant %s", out, want)
	}
	var ents []record.Entity
	if err := json.Unmarshal(rawEnts, &ents); err != nil {
		t.Fatal(err)
	}
	tags := map[string][]string{}
	for _, e := range ents {
		field := e.Field
		if !several {
			field = "/message"
		}
		if several && field == "" {
			t.Errorf("entity %+v names no field", e)
		}
		raw, err := jsonptr.Get([]byte(in), jsonptr.MustParse(field))
		if err != nil {
			t.Fatalf("entity %+v: field %s: %v", e, field, err)
		}
		var text string
		json.Unmarshal(raw, &text)
		runes := []rune(text)
		if e.Start < 0 || e.End > len(runes) || e.Start >= e.End || string(runes[e.Start:e.End]) != e.Text {
			t.Errorf("entity %+v: span not exact against %s = %q", e, field, text)
		}
		if !strings.Contains(fmt.Sprint(tags[e.Type]), e.Text) {
			tags[e.Type] = append(tags[e.Type], e.Text)
		}
	}
	var gotTags map[string][]string
	if err := json.Unmarshal(rawTags, &gotTags); err != nil || fmt.Sprint(gotTags) != fmt.Sprint(tags) {
		t.Errorf("tags %s, want %v", rawTags, tags)
	}
	return ents
}

// TestStreamEnrichLogEvents is issue 18's Kafka test: log events through
// the embedded broker come out enriched, every untouched byte equal to the
// input's, key and headers kept, spans exact against their field, and the
// events without a message string dead-lettered with missing_field. The
// model is the real recognizer (prompts, parsing, alignment) over a
// scripted engine, a test double that names known mentions.
func TestStreamEnrichLogEvents(t *testing.T) {
	c := kafkatest.StartBroker(t, 1)
	brokers := c.ListenAddrs()
	produceEvents(t, brokers, append(append([]string{}, logEvents...), badEvents...), 0)
	cfg := enrichConfig(brokers)
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{
		"person":       `["Jane Doe", "Zoë Ångström"]`,
		"organization": `["ACME Corp"]`,
	})}
	runEngineMember(t, cfg, eng)
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 30*time.Second)

	out := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
	if len(out) != len(logEvents) {
		t.Fatalf("%d enriched events, want %d", len(out), len(logEvents))
	}
	wantTexts := []string{"Jane Doe ACME Corp", "Zoë Ångström ACME Corp", "Jane Doe ACME Corp", "ACME Corp", "Jane Doe"}
	seen := map[int]bool{}
	for _, r := range out {
		var i int
		if _, err := fmt.Sscanf(r.Key, "k-%d", &i); err != nil || i >= len(logEvents) || seen[i] {
			t.Fatalf("output key %q is not an input's", r.Key)
		}
		seen[i] = true
		if len(r.HeaderList) != 1 || r.Headers["h"] != fmt.Sprintf("v-%d", i) {
			t.Errorf("event %d: headers %v, want the input's h: v-%d alone (content-encoding dropped)", i, r.HeaderList, i)
		}
		ents := checkEnriched(t, logEvents[i], r.Value, true)
		var texts []string
		for _, e := range ents {
			texts = append(texts, e.Text)
		}
		if got := strings.Join(texts, " "); got != wantTexts[i] {
			t.Errorf("event %d: entities %q, want %q", i, got, wantTexts[i])
		}
	}
	// The event enriched before has its entities replaced, not nested,
	// and its other "ner" members kept.
	for _, r := range out {
		if r.Key == "k-3" && (bytes.Contains(r.Value, []byte("stale")) || bytes.Count(r.Value, []byte(`"entities"`)) != 1 || !bytes.Contains(r.Value, []byte(`"keep":1.10`))) {
			t.Errorf("re-enriched event: %s", r.Value)
		}
	}
	dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3)
	if len(dlq) != len(badEvents) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(badEvents))
	}
	for _, r := range dlq {
		var i int
		fmt.Sscanf(r.Key, "k-%d", &i)
		i -= len(logEvents)
		if i < 0 || i >= len(badEvents) || string(r.Value) != badEvents[i] || r.Headers["nerstream-error"] != record.ReasonMissingField {
			t.Errorf("dead letter %s %q: %v, want missing_field with the original", r.Key, r.Value, r.Headers)
		}
	}
}

// TestStreamEnrichTinyModel runs the same path through a real model, the
// synthetic tiny GGUF in llama.cpp: whatever it answers, the events come
// out enriched with every untouched byte equal and exact spans.
func TestStreamEnrichTinyModel(t *testing.T) {
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := kafkatest.StartBroker(t, 1)
	brokers := c.ListenAddrs()
	produceEvents(t, brokers, logEvents[:3], 0)
	cfg := enrichConfig(brokers)
	cfg.Model.MaxNewTokens = 8
	runEngineMember(t, cfg, m.Engine)
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 120*time.Second)
	out := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
	if len(out) != 3 {
		t.Fatalf("%d enriched events, want 3", len(out))
	}
	for _, r := range out {
		var i int
		fmt.Sscanf(r.Key, "k-%d", &i)
		checkEnriched(t, logEvents[i], r.Value, true)
	}
}

// runEngineMember runs a member over a real recognizer on eng until the
// test ends.
func runEngineMember(t *testing.T, cfg config.Config, eng model.Engine) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: "member"}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, eng, WithModelName("test"), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("member: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("member did not stop")
			}
		})
	})
}
