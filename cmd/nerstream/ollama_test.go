package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai/openaitest"
)

const ollamaDocs = `{"id":"a","text":"Ada Lovelace met Charles Babbage in London.","entity_types":["person","location"]}
{"id":"b","text":"The Royal Society.","entity_types":["organization"]}
`

// TestAnnotateOllama: nerstream annotate --engine openai --dialect ollama
// against the Ollama test double (openaitest), which takes only what Ollama
// v0.24.0 takes: one string prompt per request, for the model it serves.
func TestAnnotateOllama(t *testing.T) {
	srv := openaitest.NewServer(openaitest.Ollama, openaitest.Options{Model: "uniner"})
	defer srv.Close()
	code, out, errs := runCLI(t, ollamaDocs, "annotate", "--engine", "openai", "--dialect", "ollama", "--endpoint", srv.Base(), "--served-model", "uniner")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec annotateRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if rec.Error != "" {
			t.Errorf("%s: %s", rec.ID, rec.Error)
		}
		for _, e := range rec.Entities {
			got = append(got, fmt.Sprintf("%s %s %s %d-%d", rec.ID, e.Type, e.Text, e.Start, e.End))
		}
	}
	want := []string{"a person Ada Lovelace 0-12", "a person Charles Babbage 17-32", "a location London 36-42", "b organization Royal Society 4-17"}
	if !slices.Equal(got, want) {
		t.Errorf("entities %q, want %q", got, want)
	}
	// The start-up probe asks for one token; the prompts, for more.
	var reqs []openaitest.Request
	probes := 0
	for _, r := range srv.Completions() {
		if r.Body["max_tokens"] == 1.0 {
			probes++
			continue
		}
		reqs = append(reqs, r)
	}
	if len(reqs) != 3 || probes != 1 {
		t.Errorf("%d requests and %d probes, want one per prompt (3) and the start-up probe", len(reqs), probes)
	}
	for _, r := range reqs {
		if _, ok := r.Body["prompt"].(string); !ok || r.Body["model"] != "uniner" || r.Options["temperature"] != float32(0) {
			t.Errorf("request %v", r.Body)
		}
	}

	// Without the served model's name Ollama answers 404, which fails
	// the run: it would fail every document.
	code, _, errs = runCLI(t, ollamaDocs, "annotate", "--engine", "openai", "--dialect", "ollama", "--endpoint", srv.Base())
	checkOneLineError(t, code, 1, errs, "model '' not found")
}

// TestAnnotateOllamaTokenizer: with --tokenizer, token counts are the GGUF
// vocabulary's, and a prompt that Ollama cut short (past its num_ctx,
// answered 200) is that document's error line; the others are annotated.
func TestAnnotateOllamaTokenizer(t *testing.T) {
	path := writeServeModel(t)
	tok, err := llama.Load(path, llama.Options{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	// The double counts as llama.cpp does: the prompt's text, "</s>"
	// parsed as a special token, BOS first.
	count := func(prompt string) int {
		toks, err := tok.Tokenize(model.Prompt{Parts: []model.Part{{Kind: model.PartFixed, Text: prompt}}})
		if err != nil {
			t.Error(err)
		}
		return len(toks)
	}
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	short := count(tmpl.Prompt("The Royal Society.", "organization").String())
	srv := openaitest.NewServer(openaitest.Ollama, openaitest.Options{Model: "uniner", Tokens: count, ContextTokens: short})
	defer srv.Close()
	long := `{"id":"long","text":"Ada Lovelace met Charles Babbage in London, and they wrote at length.","entity_types":["person"]}` + "\n"
	code, out, errs := runCLI(t, ollamaDocs+long, "annotate", "--engine", "openai", "--dialect", "ollama", "--endpoint", srv.Base(),
		"--served-model", "uniner", "--tokenizer", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	var recs []annotateRecord
	for _, line := range lines {
		var rec annotateRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	if recs[1].Error != "" || len(recs[1].Entities) != 1 || recs[1].Entities[0].Text != "Royal Society" {
		t.Errorf("the document that fits: %+v", recs[1])
	}
	for _, r := range []annotateRecord{recs[0], recs[2]} {
		if !strings.Contains(r.Error, "cut the prompt short") {
			t.Errorf("document %s, longer than the server's context: error %q, want the prompt cut short", r.ID, r.Error)
		}
	}
}

// TestBenchEngineOllama: bench engine --engine openai sends the served
// model's name (--served-model), one request per prompt to Ollama, each
// client with one document's prompts in flight.
func TestBenchEngineOllama(t *testing.T) {
	srv := openaitest.NewServer(openaitest.Ollama, openaitest.Options{Model: "uniner"})
	defer srv.Close()
	args := []string{"bench", "engine", "--engine", "openai", "--dialect", "ollama", "--endpoint", srv.Base(),
		"--clients", "2", "--docs", "4", "--types", "3", "--doc-tokens", "20", "--max-new-tokens", "4"}
	code, out, errs := runCLI(t, "", append(args, "--served-model", "uniner")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Docs     int   `json:"docs"`
		Requests int64 `json:"requests"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Docs != 4 || res.Requests != 4*3 {
		t.Errorf("figures %+v, want 4 documents in 12 requests", res)
	}
	for _, r := range srv.Completions() {
		if r.Body["model"] != "uniner" {
			t.Errorf("model %v", r.Body["model"])
		}
	}
	code, _, errs = runCLI(t, "", args...)
	checkOneLineError(t, code, 1, errs, "not found")
}
