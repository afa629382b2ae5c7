package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
)

// TestOpenAIScoresFromVLLMDouble: a test double of vLLM's /v1/completions
// that answers from the in-process tiny model and returns its token
// log-probabilities in OpenAI's completions form (tokens, token_logprobs,
// as vLLM does; serve sends the chat form, which the serve tests cover).
// The openai engine reads them into the same log-probabilities, so the
// same scores, as the in-process engine gives for the same answers.
//
// The engine runs without its resident prompt prefix: the double asks for
// the prompts in other batches than the in-process call, and the prefix's
// cells, computed in a batch of their own, move the log-probabilities by
// about 1e-4 (relative), which would hide a transport that rounds them.
func TestOpenAIScoresFromVLLMDouble(t *testing.T) {
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1, GPULayers: -1, NoResidentPrefix: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	local := m.Local
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req openaiapi.CompletionRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		prompts, _ := openaiapi.Strings(req.Prompt)
		g := model.PromptGroup{}
		for _, p := range prompts {
			g.Prompts = append(g.Prompts, model.ParsePrompt(p))
		}
		out, err := local.Generate(r.Context(), []model.PromptGroup{g}, model.GenerateOptions{MaxNewTokens: *req.MaxTokens})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp := openaiapi.CompletionResponse{Usage: &openaiapi.Usage{PromptTokens: openaiapi.Ptr(0), CompletionTokens: openaiapi.Ptr(0)}}
		for i, c := range out[0] {
			ch := openaiapi.Choice{Index: openaiapi.Ptr(i), Text: openaiapi.Ptr(c.Text)}
			if req.Logprobs != nil {
				ch.Logprobs = &openaiapi.Logprobs{Tokens: []string{}, TokenLogprobs: []*float64{}}
				off := 0
				for _, tok := range c.Tokens {
					ch.Logprobs.Tokens = append(ch.Logprobs.Tokens, c.Text[off:off+tok.Bytes])
					ch.Logprobs.TokenLogprobs = append(ch.Logprobs.TokenLogprobs, openaiapi.Ptr(tok.LogProb))
					off += tok.Bytes
				}
			}
			resp.Choices = append(resp.Choices, ch)
		}
		json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	remote, err := openai.New(openai.Options{Endpoints: []string{srv.URL + "/v1"}, Dialect: openai.DialectVLLM, Tokenize: openai.TokenizeEstimate})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	var g model.PromptGroup
	for _, text := range []string{"Ada Lovelace worked with Charles Babbage in London.", "Grace Hopper developed the first compiler."} {
		for _, typ := range []string{"person", "location", "organization", "date", "award", "event", "product", "language"} {
			g.Prompts = append(g.Prompts, tmpl.Prompt(text, typ))
		}
	}
	ctx := context.Background()
	opts := model.GenerateOptions{MaxNewTokens: 6}
	want, err := local.Generate(ctx, []model.PromptGroup{g}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Generate(ctx, []model.PromptGroup{g}, opts)
	if err != nil {
		t.Fatal(err)
	}
	scored := 0
	for p := range g.Prompts {
		if !piecesValid(want[0][p]) {
			// OpenAI's form carries each token as text: a token that
			// holds part of a UTF-8 sequence arrives as U+FFFD, its
			// bytes lost (the chat form's bytes keep them).
			continue
		}
		if got[0][p].Text != want[0][p].Text || want[0][p].Tokens == nil || !slices.Equal(got[0][p].Tokens, want[0][p].Tokens) {
			t.Errorf("prompt %d: %q %v through the double, in process %q %v", p, got[0][p].Text, got[0][p].Tokens, want[0][p].Text, want[0][p].Tokens)
		}
		scored++
	}
	t.Logf("%d of %d answers compared", scored, len(g.Prompts))
	if scored == 0 {
		t.Fatal("no answer had tokens that were UTF-8 each: the comparison shows nothing")
	}
}

// piecesValid reports whether every token of c is UTF-8 on its own.
func piecesValid(c model.Completion) bool {
	off := 0
	for _, tok := range c.Tokens {
		if !utf8.ValidString(c.Text[off : off+tok.Bytes]) {
			return false
		}
		off += tok.Bytes
	}
	return true
}
