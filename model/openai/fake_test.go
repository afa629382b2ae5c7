package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model/openai/openaitest"
)

// The UniNER prompt's fixed text, as the fake parses it.
const (
	fakeHead = "A virtual assistant answers questions from a user based on the provided text. USER: Text: "
	fakeMid  = " ASSISTANT: I've read this text.</s>USER: What describes "
	fakeTail = " in the text? ASSISTANT:"
)

// fakeEntities are what the fake "recognises": per entity type, the
// mentions it names when the passage holds them.
var fakeEntities = map[string][]string{
	"person":       {"Ada Lovelace", "Charles Babbage"},
	"organization": {"Royal Society"},
}

// fakeRequest is a completions request as the fake received it.
type fakeRequest struct {
	Prompts []string
	Raw     map[string]any
	Auth    string
}

// fakeServer is a test double of an OpenAI-compatible server that serves
// UniNER: it answers each prompt deterministically with the
// [fakeEntities] that the prompt's passage holds, checks each request's
// body as a real server for nerstream should get it, and records the
// requests.
type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	model string
	// key, when set, is the API key the server wants.
	key string
	// listAnswer answers a list of prompts as llama-server does: a JSON
	// list of completions, one per prompt, each with its own usage.
	listAnswer bool
	// intercept, when set, may answer request number n (from 1) of any
	// kind itself, and then returns true. The engine's health probes (see
	// isProbe) are not numbered: intercept sees them with the number of
	// the request before, so that a server broken for request n is broken
	// for the probe that follows it, and one that fails a request for its
	// content answers the probe.
	intercept func(w http.ResponseWriter, r *http.Request, n int) bool
	// probes counts the health probes received.
	probes int

	mu        sync.Mutex
	n         int
	requests  []fakeRequest
	tokenizes []map[string]any
	paths     []string
}

func newFake(t *testing.T) *fakeServer {
	f := &fakeServer{t: t, model: "uniner"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// base is the base URL an OpenAI client takes.
func (f *fakeServer) base() string { return f.srv.URL + "/v1" }

// completions returns the completions requests answered so far.
func (f *fakeServer) completions() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// hits returns the number of requests of any kind it received.
func (f *fakeServer) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// isProbe says whether a completions body is the engine's health probe: a
// one-token answer to probePrompt.
func isProbe(body []byte) bool {
	var req struct {
		Prompt    any `json:"prompt"`
		MaxTokens int `json:"max_tokens"`
	}
	if json.Unmarshal(body, &req) != nil || req.MaxTokens != 1 {
		return false
	}
	switch p := req.Prompt.(type) {
	case string:
		return p == probePrompt
	case []any:
		return len(p) == 1 && p[0] == probePrompt
	}
	return false
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	probe := r.URL.Path == "/v1/completions" && isProbe(raw)
	f.mu.Lock()
	if probe {
		f.probes++
	} else {
		f.n++
		f.paths = append(f.paths, r.URL.Path)
	}
	n := f.n
	intercept := f.intercept
	f.mu.Unlock()
	if intercept != nil && intercept(w, r, n) {
		return
	}
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		// Echo what came, as a careless server might: the engine
		// must not repeat it.
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"message": "invalid key " + r.Header.Get("Authorization"), "type": "authentication_error"}})
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.t.Errorf("fake: %s: body is not JSON: %v", r.URL.Path, err)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "bad json"})
		return
	}
	switch r.URL.Path {
	case "/v1/completions":
		f.complete(w, r, body)
	case "/tokenize":
		f.mu.Lock()
		f.tokenizes = append(f.tokenizes, body)
		f.mu.Unlock()
		text, _ := body["prompt"].(string)
		if c, ok := body["content"].(string); ok {
			text = c
		}
		// One token per word, as ids.
		toks := make([]int, len(strings.Fields(text)))
		writeJSON(w, http.StatusOK, map[string]any{"tokens": toks})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) complete(w http.ResponseWriter, r *http.Request, body map[string]any) {
	t := f.t
	fail := func(format string, args ...any) {
		t.Errorf("fake: "+format, args...)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"message": fmt.Sprintf(format, args...)}})
	}
	if body["model"] != f.model {
		fail("model %v, want %q", body["model"], f.model)
		return
	}
	if temp, ok := body["temperature"].(float64); !ok || temp != 0 {
		fail("temperature %v, want 0", body["temperature"])
		return
	}
	if stop, ok := body["stop"].([]any); !ok || len(stop) != 1 || stop[0] != "</s>" {
		fail(`stop %v, want ["</s>"]`, body["stop"])
		return
	}
	if mt, ok := body["max_tokens"].(float64); !ok || mt < 1 || mt != float64(int(mt)) {
		fail("max_tokens %v", body["max_tokens"])
		return
	}
	list, ok := body["prompt"].([]any)
	if !ok || len(list) == 0 {
		fail("prompt %T, want a non-empty list of strings", body["prompt"])
		return
	}
	prompts := make([]string, len(list))
	answers := make([]string, len(list))
	for i, p := range list {
		s, ok := p.(string)
		if !ok {
			fail("prompt %d is %T", i, p)
			return
		}
		prompts[i] = s
		text, typ, ok := parsePrompt(s)
		if !ok {
			fail("prompt %d is not a UniNER prompt: %q", i, s)
			return
		}
		if strings.Contains(text, "TOO LONG") {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"message": "This model's maximum context length is 2048 tokens.", "type": "BadRequestError", "code": 400}})
			return
		}
		var names []string
		for _, name := range fakeEntities[typ] {
			if strings.Contains(text, name) {
				names = append(names, name)
			}
		}
		a, _ := json.Marshal(names)
		if names == nil {
			a = []byte("[]")
		}
		answers[i] = " " + string(a)
	}
	if len(prompts) != 1 || prompts[0] != probePrompt || body["max_tokens"] != 1.0 {
		f.mu.Lock()
		f.requests = append(f.requests, fakeRequest{Prompts: prompts, Raw: body, Auth: r.Header.Get("Authorization")})
		f.mu.Unlock()
	}

	// Tokens: as a llama.cpp server counts them (BOS, "</s>" one token); one
	// per answer byte.
	ptoks := func(i int) int { return openaitest.Tokens(prompts[i]) }
	if f.listAnswer {
		var out []any
		for i := range prompts {
			out = append(out, map[string]any{
				"object":  "text_completion",
				"choices": []any{map[string]any{"index": i, "text": answers[i], "finish_reason": "stop"}},
				"usage":   map[string]any{"prompt_tokens": ptoks(i), "completion_tokens": len(answers[i]) + 1},
			})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	// Choices in reverse order: the engine must go by index.
	var choices []any
	pt, ct := 0, 0
	for i := len(prompts) - 1; i >= 0; i-- {
		choices = append(choices, map[string]any{"index": i, "text": answers[i], "finish_reason": "stop", "logprobs": nil})
		pt += ptoks(i)
		ct += len(answers[i]) + 1
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "cmpl-1", "object": "text_completion", "model": f.model, "choices": choices,
		"usage": map[string]any{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
	})
}

// parsePrompt splits a UniNER type-variant prompt into its passage and
// entity type.
func parsePrompt(s string) (text, typ string, ok bool) {
	rest, ok := strings.CutPrefix(s, fakeHead)
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, fakeTail)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, fakeMid)
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len(fakeMid):], true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// hang answers nothing until the client gives up (or 30s pass). It reads
// the body first: only then does the server notice a closed connection.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}

// cut closes the connection without an answer.
func cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}
