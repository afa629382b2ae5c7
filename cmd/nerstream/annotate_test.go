package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/stream"
)

// mixedInput is a JSON-lines file of every kind of line annotate meets.
func mixedInput() (string, int) {
	long := strings.Repeat("The Royal Society met in London, and Ada Lovelace spoke. ", 400)
	lines := []string{
		`{"id": "plain", "text": "Ada Lovelace met Charles Babbage in London.", "entity_types": ["person", "location"]}`,
		`{"id": "unicode", "text": "Zoë Ōkubo moved to Zürich 🇨🇭 with 李小龍.", "metadata": {"lang": "mixed"}}`,
		`{"id": "empty", "text": ""}`,
		`{"id": "long", "text": "` + long + `"}`,
		`{"id": "broken", "text": "no closing brace"`,
		`not json at all`,
		``,
		`{"text": "An id-less line about IBM in New York."}`,
		`{"id": 42, "text": "Numeric ids are kept as text: Grace Hopper.", "entity_types": ["person"]}`,
		`{"id": "types", "text": "Types must be strings.", "entity_types": [1, 2]}`,
		`{"id": "no types", "text": "An empty list of types is refused.", "entity_types": []}`,
		`{"id": "lone", "text": "A lone surrogate \ud800 is no character."}`,
		"{\"id\": \"bytes\", \"text\": \"Invalid UTF-8: caf\xe9.\"}",
	}
	return strings.Join(lines, "\n") + "\n", len(lines) - 1 // one blank line
}

// annotateRecord is either an annotation or an error line.
type annotateRecord struct {
	ID          string   `json:"id"`
	Line        int      `json:"line"`
	Error       string   `json:"error"`
	Model       string   `json:"model"`
	EntityTypes []string `json:"entity_types"`
	Entities    []struct {
		Text       string `json:"text"`
		Type       string `json:"type"`
		Start, End int
	} `json:"entities"`
	Metadata json.RawMessage `json:"metadata"`
}

// checkAnnotateOutput checks that every input line gave one valid record,
// in order, and that every entity satisfies DESIGN.md's invariant.
func checkAnnotateOutput(t *testing.T, input, output string, want int) []annotateRecord {
	t.Helper()
	texts := map[string]string{}
	for _, l := range strings.Split(input, "\n") {
		var d struct {
			ID   any    `json:"id"`
			Text string `json:"text"`
		}
		if json.Unmarshal([]byte(l), &d) == nil && d.ID != nil {
			texts[fmt.Sprint(d.ID)] = d.Text
		}
	}
	var recs []annotateRecord
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r annotateRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line is not JSON: %v: %s", err, sc.Text())
		}
		recs = append(recs, r)
	}
	if len(recs) != want {
		t.Fatalf("%d records for %d input lines:\n%s", len(recs), want, output)
	}
	for _, r := range recs {
		if r.Error != "" {
			if r.Line == 0 {
				t.Errorf("error record without its line number: %+v", r)
			}
			continue
		}
		text, ok := texts[r.ID]
		if !ok && !strings.HasPrefix(r.ID, "in.jsonl:") && !strings.HasPrefix(r.ID, "stdin:") {
			t.Errorf("record for unknown id %q", r.ID)
		}
		runes := []rune(text)
		for _, e := range r.Entities {
			if ok && (e.Start < 0 || e.End > len(runes) || string(runes[e.Start:e.End]) != e.Text) {
				t.Errorf("%s: entity %+v breaks text[start:end] == text", r.ID, e)
			}
		}
		if len(r.Metadata) == 0 || len(r.EntityTypes) == 0 {
			t.Errorf("%s: record lacks metadata or entity types: %+v", r.ID, r)
		}
	}
	return recs
}

// TestAnnotateTinyModel runs the real command on the synthetic tiny model.
func TestAnnotateTinyModel(t *testing.T) {
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "tiny.gguf")
	if code, _, errs := runCLI(t, "", "model", "synth", "--preset", "tiny", "--out", modelPath); code != 0 {
		t.Fatalf("synth: %s", errs)
	}
	input, n := mixedInput()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(input), 0o644)
	code, out, errs := runCLI(t, "", "annotate", "--model", modelPath, "--threads", "1", "--max-new-tokens", "24", "--batch", "3", in)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	recs := checkAnnotateOutput(t, input, out, n)
	wantErr := map[int]string{3: "empty_text", 5: "invalid_json", 6: "invalid_json", 10: "invalid_entity_types", 11: "invalid_entity_types",
		12: "invalid_utf8", 13: "invalid_utf8"}
	// An error record carries the line's id whenever the line has a
	// readable one, as the README says.
	wantID := map[int]string{3: "empty", 10: "types", 11: "no types", 12: "lone", 13: "bytes"}
	errors := 0
	for _, r := range recs {
		if r.Error == "" {
			continue
		}
		errors++
		if !strings.HasPrefix(r.Error, wantErr[r.Line]+": ") {
			t.Errorf("line %d: error %q, want %s", r.Line, r.Error, wantErr[r.Line])
		}
		if r.ID != wantID[r.Line] {
			t.Errorf("line %d: error record with id %q, want %q", r.Line, r.ID, wantID[r.Line])
		}
	}
	if errors != len(wantErr) {
		t.Errorf("%d error records, want %d", errors, len(wantErr))
	}
	if recs[0].ID != "plain" || recs[3].ID != "long" || recs[3].Model != "tiny.gguf" || recs[6].ID != "in.jsonl:8" || recs[7].ID != "42" {
		t.Errorf("order or ids: %+v", recs)
	}
}

// TestAnnotateAlignsEntities runs annotate's loop (stream.AnnotateLines) over a scripted engine
// that names real mentions, so that the invariant is checked on many
// entities, the long text's windows included.
func TestAnnotateAlignsEntities(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Context: 300, Answer: func(text, q string) string {
		var found []string
		for _, m := range []string{"Ada Lovelace", "London", "zürich", "李小龍", "Royal  Society", "IBM", "Grace Hopper"} {
			if strings.Contains(strings.ToLower(strings.Join(strings.Fields(text), "")), strings.ToLower(strings.ReplaceAll(m, " ", ""))) {
				found = append(found, fmt.Sprintf("%q", m))
			}
		}
		return " [" + strings.Join(found, ", ") + "]"
	}}
	rec, err := model.NewRecognizer(eng, model.RecognizerOptions{Types: []string{"person"}, MaxNewTokens: 32})
	if err != nil {
		t.Fatal(err)
	}
	input, n := mixedInput()
	var out bytes.Buffer
	if err := stream.AnnotateLines(context.Background(), rec, strings.NewReader(input), &out, stream.LinesOptions{Name: "in.jsonl", Model: "scripted", Batch: 4}); err != nil {
		t.Fatal(err)
	}
	recs := checkAnnotateOutput(t, input, out.String(), n)
	entities := 0
	for _, r := range recs {
		entities += len(r.Entities)
	}
	if entities < 400 {
		t.Errorf("only %d entities: the scripted answers should align hundreds", entities)
	}
}

func TestAnnotateUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notModel := filepath.Join(dir, "x.gguf")
	os.WriteFile(notModel, []byte("plain text"), 0o644)
	for _, c := range []struct {
		args     []string
		contains string
	}{
		{[]string{"annotate"}, "--model is required"},
		{[]string{"annotate", "--model", filepath.Join(dir, "none.gguf")}, "no such file"},
		{[]string{"annotate", "--model", notModel}, "not a GGUF file"},
		{[]string{"annotate", "--model", notModel, "a", "b"}, "one input file"},
		{[]string{"annotate", "--model", "synth:tiny", "--types", ","}, "--types names no entity type"},
		{[]string{"annotate", "--model", "synth:tiny", "--types", " , ,"}, "--types names no entity type"},
		{[]string{"annotate", "--model", "synth:huge"}, "unknown preset"},
		{[]string{"annotate", "--model", "openai:ftp://user:s3cret@gpu/v1"}, "not an http"},
		{[]string{"annotate", "--model", "hf://owner"}, "bad model reference"},
		{[]string{"annotate", "--model", "https://user:s3cret@example.com/m.gguf"}, "credentials"},
		{[]string{"annotate", "--engine", "openai"}, "at least one --endpoint"},
		{[]string{"annotate", "--model", "m.gguf", "--endpoint", "http://gpu/v1"}, "--endpoint needs --engine openai"},
		{[]string{"model", "synth", "--preset", "huge", "--out", filepath.Join(dir, "m.gguf")}, "unknown preset"},
		{[]string{"model", "synth", "--type", "q4", "--out", filepath.Join(dir, "m.gguf")}, "--type"},
		{[]string{"model", "info", notModel}, "GGUF"},
		{[]string{"model", "frob"}, "unknown sub-command"},
	} {
		code, _, errs := runCLI(t, "", c.args...)
		checkOneLineError(t, code, 2, errs, c.contains)
		if strings.Contains(errs, "s3cret") {
			t.Errorf("%q: the error shows the password: %s", c.args, errs)
		}
	}
}

func TestModelInfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	if code, _, errs := runCLI(t, "", "model", "synth", "--preset", "tiny", "--type", "q8_0", "--out", p); code != 0 {
		t.Fatal(errs)
	}
	code, out, _ := runCLI(t, "", "model", "info", p)
	if code != 0 || !strings.Contains(out, "architecture:  llama") || !strings.Contains(out, "Q8_0") || !strings.Contains(out, "context:       2048") {
		t.Errorf("info:\n%s", out)
	}
	code, out, _ = runCLI(t, "", "model", "info", "--json", p)
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["layers"] != float64(2) {
		t.Errorf("info --json: %s", out)
	}
}

// TestAnnotateCache runs annotate on the tiny model file with the result
// cache (keyed by the file's SHA-256) and without: a file that repeats its
// texts gives the same output either way, byte for byte. A half cache
// setting exits 2 with one line.
func TestAnnotateCache(t *testing.T) {
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "tiny.gguf")
	if code, _, errs := runCLI(t, "", "model", "synth", "--preset", "tiny", "--out", modelPath); code != 0 {
		t.Fatalf("synth: %s", errs)
	}
	var lines []string
	for i, text := range []string{"Jane Doe paid ACME Corp.", "Bob met Ada in Paris.", "Jane Doe paid ACME Corp.", "Jane Doe paid ACME Corp.", "Bob met Ada in Paris."} {
		lines = append(lines, fmt.Sprintf(`{"id":"d%d","text":%q}`, i, text))
	}
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	args := []string{"annotate", "--model", modelPath, "--threads", "1", "--max-new-tokens", "12", "--batch", "2", "--types", "person,organization"}
	code, plain, errs := runCLI(t, "", append(args, in)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, cached, errs := runCLI(t, "", append(args, "--cache-entries", "100", "--cache-bytes", "1048576", in)...)
	if code != 0 {
		t.Fatalf("with the cache: exit %d: %s", code, errs)
	}
	if cached != plain || strings.Count(plain, "\n") != len(lines) {
		t.Errorf("with the cache:\n%s\nwithout:\n%s", cached, plain)
	}
	// Two distinct texts, two types: 4 prompts computed, 6 answered
	// from the cache.
	if !strings.Contains(errs, "result cache: 6 hits, 4 misses") {
		t.Errorf("stderr %q, want 6 hits and 4 misses", errs)
	}
	code, _, errs = runCLI(t, "", append(args, "--cache-entries", "100", in)...)
	if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "--cache-bytes") {
		t.Errorf("half cache flags: exit %d, stderr %q", code, errs)
	}
}
