// Package openaitest holds test doubles of the OpenAI-compatible servers
// that the openai engine (model/openai) talks to: vLLM, llama.cpp's
// llama-server, Ollama, and a plain OpenAI server that takes one string
// prompt per request. They are doubles, for tests only: each accepts only
// its server's request shape, refuses the rest as that server does (its
// status and its error body), and answers in its server's reply shape.
//
// The shapes follow the servers' sources:
//
//   - Ollama v0.24.0 (in the Go module cache, as nerstream builds ggml from
//     it): openai/openai.go's CompletionRequest, which takes "prompt" as a
//     string only and is decoded by encoding/json, so unknown fields are
//     ignored and a list prompt is a 400 ("cannot unmarshal array into Go
//     struct field CompletionRequest.prompt of type string");
//     FromCompleteRequest's mapping to Ollama's options (temperature
//     absent means 1.0, top_p 0 means 1.0); its Completion reply (one
//     choice, index 0, usage always there); errors as
//     {"error": {"message", "type", "param", "code"}}; a missing model is a
//     404 "model 'x' not found"; no /tokenize route; and a prompt longer
//     than num_ctx is cut silently (HTTP 200, usage.prompt_tokens =
//     num_ctx), as its llama runner does.
//   - vLLM: a string or a list of prompts, one reply object whose choices
//     carry the prompt's index and whose usage is the request's total;
//     /tokenize {"model", "prompt", "add_special_tokens"} →
//     {"count", "max_model_len", "tokens"}; unknown fields ignored; another
//     model's name is a 404 "The model `x` does not exist."; a prompt past
//     the context is a 400.
//   - llama-server: a string (one reply object) or a list of prompts (a
//     JSON list of reply objects, one per prompt, each with its own
//     usage); /tokenize {"content", "add_special", "parse_special"} →
//     {"tokens"}; the model's name is not checked; a prompt past a slot's
//     context is a 400 ("the request exceeds the available context size"),
//     or, with [Options.Truncate], cut silently as versions with context
//     shift on did.
//   - openai: the plain OpenAI completions API held to one string prompt
//     per request, refusing unknown fields as OpenAI's own API does
//     ("Unrecognized request argument supplied: x"); no /tokenize.
//
// Every double answers UniNER prompts (the type variant) deterministically:
// the mentions of [Options.Entities] that the passage holds, as a JSON list
// after a space, as the model would. Token counts come from
// [Options.Tokens].
package openaitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nerstream/nerstream/model"
)

// The servers the doubles stand for.
const (
	VLLM        = "vllm"
	LlamaServer = "llama-server"
	Ollama      = "ollama"
	OpenAI      = "openai"
)

// Kinds are the servers there are doubles of.
var Kinds = []string{VLLM, LlamaServer, OpenAI, Ollama}

// DefaultEntities are what the doubles "recognise" by default.
var DefaultEntities = map[string][]string{
	"person":       {"Ada Lovelace", "Charles Babbage"},
	"organization": {"Royal Society"},
	"location":     {"London"},
}

// Options configure a double. Zero values take the defaults.
type Options struct {
	// Model is the served model's name. vLLM, Ollama and OpenAI answer
	// 404 to another (or none); llama-server takes any. Default: "uniner".
	Model string
	// Entities are, per entity type, the mentions answered when the
	// passage holds them. Default: [DefaultEntities].
	Entities map[string][]string
	// ContextTokens is the server's context. A prompt of more tokens is
	// refused with a 400, except by Ollama, which cuts it to ContextTokens
	// and answers 200, and llama-server with Truncate. Default: 2048.
	ContextTokens int
	// Truncate makes llama-server cut an over-long prompt silently.
	Truncate bool
	// Tokens counts a whole prompt's tokens as the server does: BOS
	// included, "</s>" parsed as one special token. Default: [Tokens].
	Tokens func(prompt string) int
	// TextTokens counts literal text on /tokenize, without BOS. Default:
	// [TextTokens].
	TextTokens func(text string) int
	// Template is Ollama's TEMPLATE, applied to the prompt before it is
	// counted. Default: none, as "TEMPLATE {{ .Prompt }}" is.
	Template func(prompt string) string
	// WaitFor holds each completions request until that many are in
	// flight at once (or a second has passed), so that a test can see
	// requests run in parallel. Default: 0, no wait.
	WaitFor int
	// Hold holds each completions request this long (after WaitFor), so
	// that requests a client sends at once overlap. Default: 0.
	Hold time.Duration
}

// Tokens is the doubles' default count of a prompt: BOS, one token per
// white-space-separated word of the text between the "</s>", and one per
// "</s>".
func Tokens(prompt string) int {
	parts := strings.Split(prompt, model.EOS)
	n := 1 + len(parts) - 1
	for _, p := range parts {
		n += TextTokens(p)
	}
	return n
}

// TextTokens is the doubles' default count of literal text: one token per
// white-space-separated word.
func TextTokens(text string) int { return len(strings.Fields(text)) }

// Request is a request as a double received it.
type Request struct {
	// Path is the URL's path.
	Path string
	// Body is the JSON body, decoded generically.
	Body map[string]any
	// Prompts are the prompts of a completions request.
	Prompts []string
	// Options are Ollama's options as its OpenAI layer mapped the
	// request's fields (temperature, top_p, frequency_penalty,
	// presence_penalty, stop, num_predict, seed); nil for the others.
	Options map[string]any
}

// Server is a running double.
type Server struct {
	// URL is the server's root, like httptest.Server's.
	URL string

	kind string
	opts Options
	srv  *httptest.Server

	mu          sync.Mutex
	reqs        []Request
	inFlight    int
	maxInFlight int
	changed     chan struct{} // closed and replaced when inFlight changes
}

// NewServer starts a double of the kind of server (one of [Kinds]). Close
// it when done.
func NewServer(kind string, opts Options) *Server {
	if !slices.Contains(Kinds, kind) {
		panic("openaitest: no double of " + kind)
	}
	if opts.Model == "" {
		opts.Model = "uniner"
	}
	if opts.Entities == nil {
		opts.Entities = DefaultEntities
	}
	if opts.ContextTokens == 0 {
		opts.ContextTokens = 2048
	}
	if opts.Tokens == nil {
		opts.Tokens = Tokens
	}
	if opts.TextTokens == nil {
		opts.TextTokens = TextTokens
	}
	s := &Server{kind: kind, opts: opts, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Base is the base URL that an OpenAI client takes: URL + "/v1".
func (s *Server) Base() string { return s.URL + "/v1" }

// Close shuts the double down.
func (s *Server) Close() { s.srv.Close() }

// Requests returns the requests received so far, of every route.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Completions returns the completions requests received so far.
func (s *Server) Completions() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Path == "/v1/completions" {
			out = append(out, r)
		}
	}
	return out
}

// MaxInFlight is the most completions requests that were in flight at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

// enter counts a completions request in flight, and holds it for WaitFor.
func (s *Server) enter() (leave func()) {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	deadline := time.After(time.Second)
wait:
	for {
		s.mu.Lock()
		done := s.opts.WaitFor <= 0 || s.maxInFlight >= s.opts.WaitFor
		ch := s.changed
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			break wait
		}
	}
	time.Sleep(s.opts.Hold)
	return func() {
		s.mu.Lock()
		s.inFlight--
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		return
	}
	var generic map[string]any
	_ = json.Unmarshal(body.Bytes(), &generic)
	req := Request{Path: r.URL.Path, Body: generic}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/completions":
		leave := s.enter()
		defer leave()
		switch s.kind {
		case Ollama:
			s.ollama(w, body.Bytes(), req)
		case VLLM:
			s.vllm(w, body.Bytes(), req)
		case LlamaServer:
			s.llamaServer(w, body.Bytes(), req)
		case OpenAI:
			s.openAI(w, body.Bytes(), req)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/tokenize" && s.kind == VLLM:
		s.record(req)
		var t struct {
			Model            string `json:"model"`
			Prompt           string `json:"prompt"`
			AddSpecialTokens *bool  `json:"add_special_tokens"`
		}
		if err := json.Unmarshal(body.Bytes(), &t); err != nil {
			vllmError(w, http.StatusBadRequest, "BadRequestError", err.Error())
			return
		}
		if t.Model != s.opts.Model {
			vllmError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", t.Model))
			return
		}
		n := s.opts.TextTokens(t.Prompt)
		if t.AddSpecialTokens == nil || *t.AddSpecialTokens {
			n++ // vLLM adds BOS unless told not to
		}
		writeJSON(w, http.StatusOK, map[string]any{"count": n, "max_model_len": s.opts.ContextTokens, "tokens": make([]int, n)})
	case r.Method == http.MethodPost && r.URL.Path == "/tokenize" && s.kind == LlamaServer:
		s.record(req)
		var t struct {
			Content    *string `json:"content"`
			AddSpecial bool    `json:"add_special"`
		}
		if err := json.Unmarshal(body.Bytes(), &t); err != nil || t.Content == nil {
			llamaError(w, http.StatusBadRequest, "invalid_request_error", "\"content\" must be provided")
			return
		}
		n := s.opts.TextTokens(*t.Content)
		if t.AddSpecial {
			n++
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": make([]int, n)})
	default:
		s.record(req)
		// Ollama's gin, and the Go servers here: a plain-text 404.
		http.NotFound(w, r)
	}
}

// ollama answers as Ollama v0.24.0's /v1/completions does.
func (s *Server) ollama(w http.ResponseWriter, body []byte, req Request) {
	// Ollama's openai.CompletionRequest, named as it is so that the
	// decoding error reads as Ollama's.
	type CompletionRequest struct {
		Model            string   `json:"model"`
		Prompt           string   `json:"prompt"`
		FrequencyPenalty float32  `json:"frequency_penalty"`
		MaxTokens        *int     `json:"max_tokens"`
		PresencePenalty  float32  `json:"presence_penalty"`
		Seed             *int     `json:"seed"`
		Stop             any      `json:"stop"`
		Stream           bool     `json:"stream"`
		Temperature      *float32 `json:"temperature"`
		TopP             float32  `json:"top_p"`
		Suffix           string   `json:"suffix"`
		Logprobs         *int     `json:"logprobs"`
	}
	var r CompletionRequest
	if err := json.Unmarshal(body, &r); err != nil {
		s.record(req)
		ollamaError(w, http.StatusBadRequest, err.Error())
		return
	}
	// FromCompleteRequest.
	opts := map[string]any{}
	switch stop := r.Stop.(type) {
	case string:
		opts["stop"] = []string{stop}
	case []any:
		var stops []string
		for _, x := range stop {
			str, ok := x.(string)
			if !ok {
				s.record(req)
				ollamaError(w, http.StatusBadRequest, fmt.Sprintf("invalid type for 'stop' field: %T", x))
				return
			}
			stops = append(stops, str)
		}
		opts["stop"] = stops
	}
	if r.MaxTokens != nil {
		opts["num_predict"] = *r.MaxTokens
	}
	opts["temperature"] = float32(1.0)
	if r.Temperature != nil {
		opts["temperature"] = *r.Temperature
	}
	if r.Seed != nil {
		opts["seed"] = *r.Seed
	}
	opts["frequency_penalty"] = r.FrequencyPenalty
	opts["presence_penalty"] = r.PresencePenalty
	opts["top_p"] = float32(1.0)
	if r.TopP != 0 {
		opts["top_p"] = r.TopP
	}
	req.Prompts, req.Options = []string{r.Prompt}, opts
	s.record(req)
	if r.Model != s.opts.Model {
		ollamaError(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found", r.Model))
		return
	}
	prompt := r.Prompt
	if s.opts.Template != nil {
		prompt = s.opts.Template(prompt)
	}
	n := s.opts.Tokens(prompt)
	if n > s.opts.ContextTokens {
		n = s.opts.ContextTokens // "truncating input prompt", and on
	}
	answer := s.answer(r.Prompt)
	gen := TextTokens(answer) + 1
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "cmpl-1", "object": "text_completion", "created": time.Now().Unix(), "model": r.Model,
		"system_fingerprint": "fp_ollama",
		"choices":            []any{map[string]any{"text": answer, "index": 0, "finish_reason": "stop"}},
		"usage":              map[string]any{"prompt_tokens": n, "completion_tokens": gen, "total_tokens": n + gen},
	})
}

// vllm answers as vLLM's /v1/completions does.
func (s *Server) vllm(w http.ResponseWriter, body []byte, req Request) {
	var r struct {
		Model  string          `json:"model"`
		Prompt json.RawMessage `json:"prompt"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		s.record(req)
		vllmError(w, http.StatusBadRequest, "BadRequestError", err.Error())
		return
	}
	prompts, ok := stringOrList(r.Prompt)
	req.Prompts = prompts
	s.record(req)
	if !ok || len(prompts) == 0 {
		vllmError(w, http.StatusBadRequest, "BadRequestError", "prompt must be a string, a list of strings or of token ids")
		return
	}
	if r.Model != s.opts.Model {
		vllmError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", r.Model))
		return
	}
	var choices []any
	pt, ct := 0, 0
	for i, p := range prompts {
		n := s.opts.Tokens(p)
		if n > s.opts.ContextTokens {
			vllmError(w, http.StatusBadRequest, "BadRequestError",
				fmt.Sprintf("This model's maximum context length is %d tokens. However, your request has %d input tokens.", s.opts.ContextTokens, n))
			return
		}
		a := s.answer(p)
		choices = append(choices, map[string]any{"index": i, "text": a, "logprobs": nil, "finish_reason": "stop", "stop_reason": nil, "prompt_logprobs": nil})
		pt += n
		ct += TextTokens(a) + 1
	}
	slices.Reverse(choices) // a client must go by index
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "cmpl-1", "object": "text_completion", "created": time.Now().Unix(), "model": r.Model, "choices": choices,
		"usage": map[string]any{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct, "prompt_tokens_details": nil},
	})
}

// llamaServer answers as llama.cpp's llama-server's /v1/completions does.
func (s *Server) llamaServer(w http.ResponseWriter, body []byte, req Request) {
	var r struct {
		Model  string          `json:"model"`
		Prompt json.RawMessage `json:"prompt"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		s.record(req)
		llamaError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	prompts, ok := stringOrList(r.Prompt)
	req.Prompts = prompts
	s.record(req)
	if !ok || len(prompts) == 0 {
		llamaError(w, http.StatusBadRequest, "invalid_request_error", "\"prompt\" must be a string, a list of tokens, a list of mixed strings & tokens, or a list of prompts")
		return
	}
	var out []any
	for i, p := range prompts {
		n := s.opts.Tokens(p)
		if n > s.opts.ContextTokens {
			if !s.opts.Truncate {
				llamaError(w, http.StatusBadRequest, "exceed_context_size_error", "the request exceeds the available context size, try increasing it")
				return
			}
			n = s.opts.ContextTokens
		}
		a := s.answer(p)
		gen := TextTokens(a) + 1
		out = append(out, map[string]any{
			"id": "chatcmpl-1", "object": "text_completion", "created": time.Now().Unix(), "model": "gpt-3.5-turbo",
			"system_fingerprint": "b0000",
			"choices":            []any{map[string]any{"text": a, "index": i, "logprobs": nil, "finish_reason": "stop"}},
			"usage":              map[string]any{"completion_tokens": gen, "prompt_tokens": n, "total_tokens": n + gen},
		})
	}
	if len(prompts) == 1 && r.Prompt[0] == '"' {
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// openAIFields are the fields of OpenAI's completions request.
var openAIFields = []string{"model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
	"max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix", "temperature", "top_p", "user"}

// openAI answers as OpenAI's API does, held to string prompts.
func (s *Server) openAI(w http.ResponseWriter, body []byte, req Request) {
	s.record(req)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		openAIError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.")
		return
	}
	for k := range fields {
		if !slices.Contains(openAIFields, k) {
			openAIError(w, http.StatusBadRequest, "Unrecognized request argument supplied: "+k)
			return
		}
	}
	var r struct {
		Model  string `json:"model"`
		Prompt any    `json:"prompt"`
	}
	_ = json.Unmarshal(body, &r)
	p, ok := r.Prompt.(string)
	if !ok {
		openAIError(w, http.StatusBadRequest, "this server takes one prompt per request, as a string")
		return
	}
	s.mu.Lock()
	s.reqs[len(s.reqs)-1].Prompts = []string{p}
	s.mu.Unlock()
	if r.Model != s.opts.Model {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", r.Model),
			"type":    "invalid_request_error", "param": nil, "code": "model_not_found"}})
		return
	}
	n := s.opts.Tokens(p)
	if n > s.opts.ContextTokens {
		openAIError(w, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens.", s.opts.ContextTokens, n))
		return
	}
	a := s.answer(p)
	gen := TextTokens(a) + 1
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "cmpl-1", "object": "text_completion", "created": time.Now().Unix(), "model": r.Model,
		"choices": []any{map[string]any{"text": a, "index": 0, "logprobs": nil, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": n, "completion_tokens": gen, "total_tokens": n + gen},
	})
}

// The UniNER prompt's fixed text, as the doubles parse it.
const (
	promptHead = "A virtual assistant answers questions from a user based on the provided text. USER: Text: "
	promptMid  = " ASSISTANT: I've read this text." + model.EOS + "USER: What describes "
	promptTail = " in the text? ASSISTANT:"
)

// ParsePrompt splits a UniNER prompt (the type variant) into its passage
// and entity type.
func ParsePrompt(s string) (text, typ string, ok bool) {
	rest, ok := strings.CutPrefix(s, promptHead)
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, promptTail)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, promptMid)
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len(promptMid):], true
}

// Answer is a double's answer to a prompt with its default entities: a
// space, then the JSON list of the type's mentions that the passage holds
// (" []" for a prompt it cannot parse).
func Answer(prompt string) string { return answer(DefaultEntities, prompt) }

func (s *Server) answer(prompt string) string { return answer(s.opts.Entities, prompt) }

func answer(entities map[string][]string, prompt string) string {
	text, typ, ok := ParsePrompt(prompt)
	names := []string{}
	if ok {
		for _, name := range entities[typ] {
			if strings.Contains(text, name) {
				names = append(names, name)
			}
		}
	}
	b, _ := json.Marshal(names)
	return " " + string(b)
}

// stringOrList reads a prompt: a string, or a list of strings.
func stringOrList(raw json.RawMessage) ([]string, bool) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, true
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, true
	}
	return nil, false
}

func ollamaError(w http.ResponseWriter, code int, msg string) {
	typ := "api_error"
	switch code {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func vllmError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func llamaError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "type": typ}})
}

func openAIError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
