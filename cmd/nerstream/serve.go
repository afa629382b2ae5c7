package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// nerstream serve: the in-process engine behind HTTP, so that a GPU host
// can serve the model to nerstream run instances elsewhere (model/openai)
// or to any client of the OpenAI completions API.
//
// Routes, all on --listen:
//
//	POST /v1/completions  the OpenAI completions subset that UniNER needs
//	POST /v1/annotate     documents in, annotation records out
//	GET  /v1/models       the loaded model
//	POST /tokenize        token counts (llama-server's and vLLM's shapes)
//	GET  /healthz /readyz /metrics, as in nerstream run
//
// Decisions:
//   - Every request calls the one engine concurrently: the llama engine's
//     scheduler puts the prompts of all callers into one continuous batch,
//     so there is no lock here. A list prompt goes to the engine as one
//     PromptGroup, so that a shared prefix (one passage, several types) is
//     computed once.
//   - A completions prompt is the whole UniNER prompt as text. Each "</s>"
//     in it becomes the EOS special token and the rest is literal text: the
//     engine tokenizes it exactly as it tokenizes model.Template's prompt,
//     and no other special token can be written in. The engine adds BOS.
//   - Decoding is the engine's: greedy, and answers held to a JSON array of
//     strings by its grammar. temperature must be 0 (or absent); stop may
//     only be "</s>" (the engine stops there anyway).
//   - "model" in a request is not checked: the server has one model, and
//     answers with its name.
//   - The bearer token (--token-file) guards the /v1/ routes and
//     /tokenize; the probes and /metrics stay open, as in nerstream run.
//   - finish_reason is "length" when the answer used all of max_tokens and
//     is not a complete JSON value, else "stop".
//   - At most --max-in-flight API requests are answered at once; the next
//     gets 429 with Retry-After: 1, which the openai engine honours by
//     trying another worker. The engine's own queue is unbounded, so this
//     is what bounds a worker's memory and queueing delay.
//   - Each API request is a server span that continues the caller's trace
//     (traceparent), exported as OTEL_* variables say.
//   - On SIGTERM, readiness turns false and requests in flight have
//     --drain-timeout to finish before their connections close.

// serveOptions are the limits and settings of the API handlers.
type serveOptions struct {
	maxNewTokens  int   // the cap on max_tokens
	maxBodyBytes  int64 // request body
	maxTextBytes  int   // one document's text, or one prompt
	maxTypes      int   // entity types of one document
	maxPrompts    int   // prompts of one completions request
	maxDocs       int   // documents of one annotate request
	token         []byte
	timeout       time.Duration // one request's generation
	maxInFlight   int64         // API requests at once; more get 429
	defaultTypes  []string
	recognizerOpt model.RecognizerOptions
}

func runServe(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	modelPath := fset.String("model", "", "GGUF model file, synth:PRESET, or a model reference (hf://…, https://…) (required)")
	listen := fset.String("listen", "127.0.0.1:8081", "address to serve on, host:port (port 0 picks a free one)")
	maxNew := fset.Int("max-new-tokens", model.DefaultMaxNewTokens, "most tokens per answer: the cap on max_tokens")
	threads := fset.Int("threads", 0, "CPU threads (default: all)")
	gpuLayers := fset.Int("gpu-layers", -1, "layers to offload to a GPU: -1 all, 0 none")
	tokenFile := fset.String("token-file", "", "file holding the bearer token that API requests must carry (default: none needed)")
	maxBody := fset.Int64("max-body-bytes", 1<<20, "largest request body")
	maxText := fset.Int("max-text-bytes", 1<<20, "largest document text or prompt")
	maxTypes := fset.Int("max-types", 64, "most entity types per document")
	maxPrompts := fset.Int("max-prompts", 64, "most prompts per completions request")
	maxDocs := fset.Int("max-docs", 64, "most documents per annotate request")
	types := fset.String("types", "person,organization,location", "entity types for documents that name none, comma-separated")
	timeout := fset.Duration("request-timeout", 5*time.Minute, "longest a request may take to generate")
	maxInFlight := fset.Int("max-in-flight", 256, "most API requests at once; more get 429 with Retry-After, so that clients go to another worker")
	drain := fset.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight have to finish")
	pprof := fset.Bool("pprof", false, "serve net/http/pprof under /debug/pprof/")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("--model is required")
	}
	if *maxNew <= 0 || *maxBody <= 0 || *maxText <= 0 || *maxTypes <= 0 || *maxPrompts <= 0 || *maxDocs <= 0 || *timeout <= 0 || *maxInFlight <= 0 || *drain <= 0 {
		return usagef("--max-new-tokens, --max-body-bytes, --max-text-bytes, --max-types, --max-prompts, --max-docs, --max-in-flight, --request-timeout and --drain-timeout must be > 0")
	}
	opts := serveOptions{
		maxNewTokens: *maxNew, maxBodyBytes: *maxBody, maxTextBytes: *maxText, maxTypes: *maxTypes,
		maxPrompts: *maxPrompts, maxDocs: *maxDocs, timeout: *timeout, defaultTypes: splitList(*types),
		maxInFlight: int64(*maxInFlight),
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return usagef("--token-file: %v", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return usagef("--token-file: %s is empty", *tokenFile)
		}
		opts.token = []byte(tok)
	}
	opts.recognizerOpt = model.RecognizerOptions{
		Types:        opts.defaultTypes,
		MaxNewTokens: opts.maxNewTokens,
		MaxTypes:     opts.maxTypes,
		MaxTextBytes: opts.maxTextBytes,
	}

	log, err := newLogger(s, config.Log{Level: "info", Format: "json"})
	if err != nil {
		return err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: export failed", "err", err)
	}))
	tel, err := telemetry.Setup(ctx, telemetry.Options{})
	if err != nil {
		return usagef("telemetry: %v", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry: flushing at exit failed", "err", err)
		}
	}()
	metrics, err := telemetry.NewMetrics(tel.Meter())
	if err != nil {
		return err
	}
	health := telemetry.NewHealth(telemetry.CheckModel)
	api := &serveAPI{opts: opts, log: log, metrics: metrics}
	routes := api.routes()
	for p, h := range routes {
		// A server span per request, continuing the caller's trace
		// (the openai engine's client span).
		routes[p] = tel.HTTPHandler(h)
	}
	srv, err := telemetry.NewServer(telemetry.ServerOptions{
		Address: *listen, Health: health, Metrics: tel.MetricsHandler(), Pprof: *pprof, Logger: log,
		Routes:          routes,
		WriteTimeout:    opts.timeout + 30*time.Second,
		ShutdownTimeout: *drain,
	})
	if err != nil {
		return usageError{err}
	}
	// The server starts before the model loads: /healthz answers, /readyz
	// says why not ready, and the API answers 503.
	sctx, stopServer := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	log.Info("serve: listening", "address", srv.Addr(), "auth", opts.token != nil)
	stop := func() error {
		stopServer()
		return <-served
	}

	eng, name, err := pullAndLoad(ctx, s, log, health, "--model", *modelPath, *threads, *gpuLayers)
	if err != nil {
		_ = stop()
		return err
	}
	defer eng.Close()
	rec, err := model.NewRecognizer(eng, opts.recognizerOpt)
	if err != nil {
		_ = stop()
		return usageError{err}
	}
	metrics.ObserveEngineQueue(eng.QueueDepth)
	api.backend.Store(&serveBackend{eng: eng, rec: rec, name: name})
	health.Set(telemetry.CheckModel, nil)
	log.Info("serve: ready", "model", name, "context_tokens", eng.ContextTokens(), "max_new_tokens", opts.maxNewTokens)

	select {
	case <-ctx.Done():
	case err := <-served:
		if err == nil {
			err = errors.New("the server stopped")
		}
		return err
	}
	health.Set("shutdown", errors.New("stopping"))
	log.Info("serve: stopping", "in_flight", api.inFlight.Load(), "drain_timeout", *drain)
	err = stop()
	if err != nil {
		log.Warn("serve: stopping the server", "err", err)
	}
	log.Info("serve: stopped")
	return nil
}

// serveBackend is the loaded model.
type serveBackend struct {
	eng  *llama.Engine
	rec  *model.Recognizer
	name string
}

// serveAPI answers the API routes.
type serveAPI struct {
	opts     serveOptions
	log      *slog.Logger
	metrics  *telemetry.Metrics
	backend  atomic.Pointer[serveBackend] // nil while the model loads
	inFlight atomic.Int64                 // API requests being answered
}

func (a *serveAPI) routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/v1/completions": a.handle(http.MethodPost, a.completions),
		"/v1/annotate":    a.handle(http.MethodPost, a.annotate),
		"/v1/models":      a.handle(http.MethodGet, a.models),
		"/tokenize":       a.handle(http.MethodPost, a.tokenize),
		// Anything else under /v1/ gets a JSON 404, as an OpenAI
		// client expects.
		"/v1/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeAPIError(w, &apiError{http.StatusNotFound, "not_found_error", "", "no route " + r.URL.Path})
		}),
	}
}

// apiError is an error answer, in the OpenAI shape:
// {"error": {"message", "type", "code"}}.
type apiError struct {
	status  int
	kind    string // "invalid_request_error", …
	code    string // a machine-readable reason, or ""
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_request_error", code, fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	type body struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code,omitempty"`
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nerstream"`)
	}
	writeJSON(w, e.status, struct {
		Error body `json:"error"`
	}{body{e.message, e.kind, e.code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"encoding the answer failed","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// handle wraps an API handler with the method check, the bearer token,
// the model's readiness, the body limit and the request timeout.
func (a *serveAPI) handle(method string, f func(ctx context.Context, b *serveBackend, body []byte) (any, *apiError)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeAPIError(w, &apiError{http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
				fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, method)})
			return
		}
		if !a.authorized(r) {
			writeAPIError(w, &apiError{http.StatusUnauthorized, "authentication_error", "invalid_api_key",
				"missing or wrong bearer token (Authorization: Bearer TOKEN)"})
			return
		}
		// The cap holds memory and queueing delay bounded; a client
		// that is told 429 tries another worker, or comes back.
		if n := a.inFlight.Add(1); n > a.opts.maxInFlight {
			a.inFlight.Add(-1)
			w.Header().Set("Retry-After", "1")
			writeAPIError(w, &apiError{http.StatusTooManyRequests, "rate_limit_error", "server_busy",
				fmt.Sprintf("%d requests in flight, the most this worker takes (--max-in-flight); retry later or elsewhere", a.opts.maxInFlight)})
			return
		}
		defer a.inFlight.Add(-1)
		b := a.backend.Load()
		if b == nil {
			w.Header().Set("Retry-After", "5")
			writeAPIError(w, &apiError{http.StatusServiceUnavailable, "server_error", "model_loading", "the model is loading"})
			return
		}
		var body []byte
		if method == http.MethodPost {
			var aerr *apiError
			if body, aerr = a.readBody(w, r); aerr != nil {
				writeAPIError(w, aerr)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.timeout)
		defer cancel()
		out, aerr := f(ctx, b, body)
		if aerr != nil {
			if aerr.status >= 500 {
				a.log.Warn("serve: request failed", "path", r.URL.Path, "status", aerr.status, "err", aerr.message)
			}
			writeAPIError(w, aerr)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// authorized checks the bearer token, in constant time. Without a token
// every request is.
func (a *serveAPI) authorized(r *http.Request) bool {
	if a.opts.token == nil {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	// Hash both sides so that the compare takes the same time whatever
	// the lengths.
	want := sha256.Sum256(a.opts.token)
	have := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

func (a *serveAPI) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	tooLarge := &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large",
		fmt.Sprintf("request body is over the limit of %d bytes", a.opts.maxBodyBytes)}
	if r.ContentLength > a.opts.maxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("body_unreadable", "reading the request body: %v", err)
	}
	return body, nil
}

// decodeJSON reads one JSON value into v, and nothing after it.
func decodeJSON(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid_json", "malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid_json", "malformed JSON body: more than one value")
	}
	return nil
}

// requestID returns a random id with the prefix.
func requestID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// completionRequest is the body of POST /v1/completions: the subset of
// OpenAI's that UniNER needs. Other fields are ignored.
type completionRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt"`
	MaxTokens   *int            `json:"max_tokens"`
	Temperature *float64        `json:"temperature"`
	Stop        json.RawMessage `json:"stop"`
	N           *int            `json:"n"`
	Stream      bool            `json:"stream"`
	Echo        bool            `json:"echo"`
}

type completionChoice struct {
	Index        int    `json:"index"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	// Logprobs is always null: the field is there for clients that
	// expect it.
	Logprobs *struct{} `json:"logprobs"`
}

type completionUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   completionUsage    `json:"usage"`
}

// stringOrList reads a JSON string or list of strings. null is nil.
func stringOrList(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
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

// textPrompt turns a prompt written out as text into a model.Prompt: each
// "</s>" is the EOS special token, everything else literal text.
func textPrompt(s string) model.Prompt {
	pieces := strings.Split(s, model.EOS)
	parts := make([]model.Part, 0, 2*len(pieces)-1)
	for i, p := range pieces {
		if i > 0 {
			parts = append(parts, model.Part{Kind: model.PartFixed, Text: model.EOS})
		}
		if p != "" {
			parts = append(parts, model.Part{Kind: model.PartText, Text: p})
		}
	}
	return model.Prompt{Parts: parts}
}

func (a *serveAPI) completions(ctx context.Context, b *serveBackend, body []byte) (any, *apiError) {
	var req completionRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	prompts, ok := stringOrList(req.Prompt)
	switch {
	case !ok:
		return nil, badRequest("invalid_prompt", "prompt must be a string or a list of strings")
	case len(prompts) == 0:
		return nil, badRequest("invalid_prompt", "prompt is required")
	case len(prompts) > a.opts.maxPrompts:
		return nil, badRequest("too_many_prompts", "%d prompts is over the limit of %d per request", len(prompts), a.opts.maxPrompts)
	}
	for i, p := range prompts {
		if len(p) > a.opts.maxTextBytes {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_long",
				fmt.Sprintf("prompt %d of %d bytes is over the limit of %d", i, len(p), a.opts.maxTextBytes)}
		}
		if strings.TrimSpace(p) == "" {
			return nil, badRequest("invalid_prompt", "prompt %d is empty", i)
		}
	}
	if req.Temperature != nil && *req.Temperature != 0 {
		return nil, badRequest("unsupported_temperature", "only greedy decoding (temperature 0) is supported, not temperature %v", *req.Temperature)
	}
	stops, ok := stringOrList(req.Stop)
	if !ok {
		return nil, badRequest("invalid_stop", "stop must be a string or a list of strings")
	}
	for _, s := range stops {
		if s != model.EOS {
			return nil, badRequest("unsupported_stop", "stop %q is not supported: decoding stops at %q only", s, model.EOS)
		}
	}
	if req.Stream {
		return nil, badRequest("unsupported_stream", "streaming is not supported")
	}
	if req.Echo {
		return nil, badRequest("unsupported_echo", "echo is not supported")
	}
	if req.N != nil && *req.N != 1 {
		return nil, badRequest("unsupported_n", "n must be 1: greedy decoding gives one answer per prompt")
	}
	maxTokens := model.DefaultMaxNewTokens
	if req.MaxTokens != nil {
		if *req.MaxTokens < 1 {
			return nil, badRequest("invalid_max_tokens", "max_tokens must be at least 1")
		}
		maxTokens = *req.MaxTokens
	}
	maxTokens = min(maxTokens, a.opts.maxNewTokens)

	group := model.PromptGroup{Prompts: make([]model.Prompt, len(prompts))}
	for i, p := range prompts {
		group.Prompts[i] = textPrompt(p)
	}
	start := time.Now()
	out, err := b.eng.Generate(ctx, []model.PromptGroup{group}, model.GenerateOptions{MaxNewTokens: maxTokens})
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	if len(out) != 1 || len(out[0]) != len(prompts) {
		return nil, &apiError{http.StatusInternalServerError, "server_error", "", "the engine answered the wrong number of prompts"}
	}
	resp := completionResponse{
		ID: requestID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: b.name,
		Choices: make([]completionChoice, len(prompts)),
	}
	for i, c := range out[0] {
		if c.Err != nil {
			return nil, badRequest("prompt_refused", "prompt %d: %v", i, c.Err)
		}
		finish := "stop"
		if c.GeneratedTokens >= maxTokens && !json.Valid([]byte(c.Text)) {
			finish = "length"
		}
		resp.Choices[i] = completionChoice{Index: i, Text: c.Text, FinishReason: finish}
		resp.Usage.PromptTokens += c.PromptTokens
		resp.Usage.CompletionTokens += c.GeneratedTokens
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	a.metrics.ModelBatch(ctx, len(prompts), time.Since(start), resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	return resp, nil
}

// engineFailure is the answer to a failure of a whole Generate call.
func engineFailure(ctx context.Context, err error) *apiError {
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		return &apiError{http.StatusGatewayTimeout, "server_error", "timeout", "generation did not finish within the request timeout"}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, llama.ErrClosed) {
		return &apiError{http.StatusServiceUnavailable, "server_error", "unavailable", "the server is stopping"}
	}
	return &apiError{http.StatusInternalServerError, "server_error", "", "the engine failed: " + err.Error()}
}

// annotateRequest is one document of POST /v1/annotate.
type annotateRequest struct {
	ID          string          `json:"id"`
	Text        *string         `json:"text"`
	EntityTypes []string        `json:"entity_types"`
	Metadata    json.RawMessage `json:"metadata"`
}

func (a *serveAPI) annotate(ctx context.Context, b *serveBackend, body []byte) (any, *apiError) {
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	list := strings.HasPrefix(trimmed, "[")
	var reqs []annotateRequest
	if list {
		if e := decodeJSON(body, &reqs); e != nil {
			return nil, e
		}
		if len(reqs) == 0 {
			return nil, badRequest("no_documents", "the list of documents is empty")
		}
	} else {
		var one annotateRequest
		if e := decodeJSON(body, &one); e != nil {
			return nil, e
		}
		reqs = []annotateRequest{one}
	}
	if len(reqs) > a.opts.maxDocs {
		return nil, badRequest("too_many_documents", "%d documents is over the limit of %d per request", len(reqs), a.opts.maxDocs)
	}
	where := func(i int) string {
		if list {
			return fmt.Sprintf("document %d: ", i)
		}
		return ""
	}
	base := requestID("ann-")
	docs := make([]record.Document, len(reqs))
	for i, r := range reqs {
		// The cheap limits first, before any work.
		switch {
		case r.Text == nil:
			return nil, badRequest(record.ReasonEmptyText, "%stext is required", where(i))
		case len(*r.Text) > a.opts.maxTextBytes:
			return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", record.ReasonTextTooLong,
				fmt.Sprintf("%stext of %d bytes is over the limit of %d", where(i), len(*r.Text), a.opts.maxTextBytes)}
		case len(r.EntityTypes) > a.opts.maxTypes:
			return nil, badRequest(record.ReasonTooManyTypes, "%s%d entity types is over the limit of %d", where(i), len(r.EntityTypes), a.opts.maxTypes)
		}
		if len(r.Metadata) > 0 && string(r.Metadata) != "null" && !strings.HasPrefix(strings.TrimSpace(string(r.Metadata)), "{") {
			return nil, badRequest("invalid_metadata", "%smetadata must be a JSON object", where(i))
		}
		id := r.ID
		if id == "" {
			id = fmt.Sprintf("%s/%d", base, i)
		}
		docs[i] = record.Document{ID: id, Text: *r.Text, Types: r.EntityTypes}
	}
	start := time.Now()
	anns, err := b.rec.Recognize(ctx, docs)
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	records := make([]record.Annotation, len(anns))
	var in, out int
	for i := range anns {
		if e := anns[i].Err; e != nil {
			var ie *record.InputError
			switch {
			case errors.As(e, &ie) && ie.Reason == record.ReasonTextTooLong:
				return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", ie.Reason, where(i) + ie.Error()}
			case errors.As(e, &ie):
				return nil, badRequest(ie.Reason, "%s%s", where(i), ie.Error())
			case errors.Is(e, llama.ErrPromptTooLong):
				return nil, badRequest(record.ReasonContextTooBig, "%s%v", where(i), e)
			}
			return nil, &apiError{http.StatusInternalServerError, "server_error", "", where(i) + e.Error()}
		}
		meta := []byte("{}") // as the stream's records
		if m := reqs[i].Metadata; len(m) > 0 && string(m) != "null" {
			meta = m
		}
		records[i] = anns[i].Record(b.name, meta)
		in += anns[i].PromptTokens
		out += anns[i].GeneratedTokens
	}
	a.metrics.ModelBatch(ctx, len(docs), time.Since(start), in, out)
	if list {
		return records, nil
	}
	return records[0], nil
}

func (a *serveAPI) models(_ context.Context, b *serveBackend, _ []byte) (any, *apiError) {
	type entry struct {
		ID            string `json:"id"`
		Object        string `json:"object"`
		OwnedBy       string `json:"owned_by"`
		ContextTokens int    `json:"max_model_len"`
	}
	return struct {
		Object string  `json:"object"`
		Data   []entry `json:"data"`
	}{"list", []entry{{b.name, "model", "nerstream", b.eng.ContextTokens()}}}, nil
}

// tokenize answers POST /tokenize in the shapes of llama-server
// ({"content", "add_special"}) and vLLM ({"prompt", "add_special_tokens"}):
// the text's tokens as literal text (special tokens never parsed), with
// BOS first when asked. It gives "tokens", "count" and "max_model_len".
func (a *serveAPI) tokenize(ctx context.Context, b *serveBackend, body []byte) (any, *apiError) {
	var req struct {
		Content          *string `json:"content"`
		Prompt           *string `json:"prompt"`
		AddSpecial       *bool   `json:"add_special"`
		AddSpecialTokens *bool   `json:"add_special_tokens"`
	}
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	text := req.Content
	if text == nil {
		text = req.Prompt
	}
	if text == nil {
		return nil, badRequest("invalid_prompt", "content (or prompt) is required")
	}
	if len(*text) > a.opts.maxTextBytes {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_long",
			fmt.Sprintf("text of %d bytes is over the limit of %d", len(*text), a.opts.maxTextBytes)}
	}
	n, err := b.eng.TokenCount(ctx, *text)
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	toks, err := b.eng.Tokenize(model.Prompt{Parts: []model.Part{{Kind: model.PartText, Text: *text}}})
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	// Tokenize adds BOS when the vocabulary asks for it: keep it only
	// when the client asks for special tokens too.
	special := (req.AddSpecial != nil && *req.AddSpecial) || (req.AddSpecialTokens != nil && *req.AddSpecialTokens)
	if !special && len(toks) > n {
		toks = toks[len(toks)-n:]
	}
	return struct {
		Tokens      []int32 `json:"tokens"`
		Count       int     `json:"count"`
		MaxModelLen int     `json:"max_model_len"`
	}{toks, len(toks), b.eng.ContextTokens()}, nil
}
