// Package server is nerstream's HTTP worker: any [model.Engine] behind the
// OpenAI completions API and an annotation API, so that a GPU host can serve
// the model to nerstream run instances elsewhere (model/openai) or to any
// client of the OpenAI completions API. `nerstream serve` runs it with the
// in-process engine; an embedding program can serve any engine.
//
//	srv, err := server.New(server.Options{Types: []string{"person"}})
//	srv.SetModel(engine, "UniNER-7B-type.Q4_K_M.gguf")
//	http.Handle("/", …srv.Routes()…)
//
// Routes (see [Server.Routes]):
//
//	POST /v1/completions  the OpenAI completions subset that UniNER needs
//	POST /v1/annotate     documents in, annotation records out
//	GET  /v1/models       the served model
//	POST /tokenize        token counts (llama-server's and vLLM's shapes)
//	GET  /                a page to try the model on a text (page.go)
//
// Decisions:
//   - Every request calls the one engine concurrently: the llama engine's
//     scheduler puts the prompts of all callers into one continuous batch,
//     so there is no lock here. A list prompt goes to the engine as one
//     PromptGroup, so that a shared prefix (one passage, several types) is
//     computed once.
//   - A completions prompt is the whole UniNER prompt as text, read back
//     into parts by model.ParsePrompt: the "</s>" that the template writes
//     after "ASSISTANT: I've read this text." becomes the EOS special token,
//     and everything else is literal text, a "</s>" in the document's text
//     included. So the engine tokenizes it exactly as it tokenizes
//     model.Template's prompt (usage.prompt_tokens counts those tokens), and
//     no other special token can be written in. The engine adds BOS.
//     llama-server and vLLM parse every "</s>" of a prompt as EOS instead;
//     for a text without one, all three give the same tokens.
//   - Decoding is the engine's: greedy (the llama engine also holds answers
//     to a JSON array of strings by its grammar). temperature must be 0 (or
//     absent); stop may only be "</s>" (the engine stops there anyway).
//   - "model" in a request is not checked: the server has one model, and
//     answers with its name.
//   - The bearer token guards every route here; the probes and /metrics of
//     the process stay open. The scheme is matched in any case ("bearer",
//     "BEARER"), as RFC 7235 says, and the token in constant time.
//   - finish_reason is "length" when the answer used all of max_tokens and
//     is not a complete JSON value, else "stop".
//   - At most Options.MaxInFlight requests are answered at once; the next
//     gets 429 with Retry-After: 1, which the openai engine honours by
//     trying another worker. The engine's own queue is unbounded, so this
//     is what bounds a worker's memory and queueing delay.
//   - The body is read before a request takes its in-flight slot, under a
//     read deadline of its own (Options.BodyTimeout; 408 past it), so the
//     slots count generation only. A client that sends its body slowly
//     holds its own connection, and no slot: 16 connections sending a
//     byte a second once kept a server of 16 slots answering 429 to
//     everyone. Bodies in transit are then bounded per connection
//     (MaxBodyBytes) rather than by the slots; only a request with the
//     right token (when there is one) gets its body read at all.
//   - A request is validated whole before the engine is called: a list of
//     documents with one bad document costs no generation.
//   - A client that goes away before its answer (its request's context
//     is cancelled) is logged as such, at info level, and answered 499
//     (nginx's "client closed request"), so that the http.server.*
//     metrics do not count it as a server error; 503 is for an engine
//     that is closing.
//   - /tokenize gives token ids when the engine is a [Tokenizer] (the
//     llama engine is), and the count alone otherwise.
//   - A document of /v1/annotate with "explain": true gets, beside its
//     record, what the record was read from: the model's raw answer to
//     each question (per window and entity type), the token counts, and
//     the time the request's generation took. The record itself stays the
//     one that run writes to Kafka, byte for byte; a document without
//     "explain" gets nothing more. The page at / asks for it.
package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// Options configure a [Server]. Zero values take the defaults.
type Options struct {
	// MaxNewTokens caps max_tokens, and is the annotations' cap. Default:
	// 256, the official decoding's.
	MaxNewTokens int
	// MaxBodyBytes bounds a request body. Default: 1 MiB.
	MaxBodyBytes int64
	// MaxTextBytes bounds one document's text or one prompt. Default:
	// 1 MiB.
	MaxTextBytes int
	// MaxTypes bounds the entity types of one document. Default: 64.
	MaxTypes int
	// MaxPrompts bounds the prompts of one completions request. Default:
	// 64.
	MaxPrompts int
	// MaxDocs bounds the documents of one annotate request. Default: 64.
	MaxDocs int
	// MaxInFlight bounds the requests answered at once; more get 429.
	// Default: 256.
	MaxInFlight int
	// Timeout bounds one request's generation. Default: 5 minutes.
	Timeout time.Duration
	// BodyTimeout bounds the reading of one request body, which happens
	// before the request takes an in-flight slot. Default: 10 seconds.
	BodyTimeout time.Duration
	// Types are asked about when a document names none. Default: none,
	// and such a document is refused.
	Types []string
	// Cache keeps the model's answers for texts seen before (as
	// model.cache does for run). Default: off. Each SetModel starts an
	// empty cache; its key names the model by Cache.Model, or else by the
	// name given to SetModel.
	Cache model.CacheOptions
	// MinScore drops the entities of /v1/annotate whose score is lower
	// (model.min_score of run), counted by
	// nerstream_entities_below_min_score_total. Default: 0, keep all.
	// The raw model routes (/v1/completions, /v1/chat/completions) are
	// untouched.
	MinScore float64
	// Calibration is a file that `nerstream eval --calibrate` wrote
	// (model.calibration of run): /v1/annotate's entity scores go through
	// it, before MinScore. Default: none, raw scores. New reads it, so
	// that a bad file is refused before anything is served.
	Calibration string
	// Token is the bearer token that requests must carry. Default: none
	// needed.
	Token []byte
	// Logger receives failed requests. Default: none.
	Logger *slog.Logger
	// Metrics records the model calls. Default: none.
	Metrics *telemetry.Metrics
}

// DefaultOptions returns the options that zero values stand for.
func DefaultOptions() Options {
	return Options{
		MaxNewTokens: model.DefaultMaxNewTokens,
		MaxBodyBytes: 1 << 20,
		MaxTextBytes: 1 << 20,
		MaxTypes:     64,
		MaxPrompts:   64,
		MaxDocs:      64,
		MaxInFlight:  256,
		Timeout:      5 * time.Minute,
		BodyTimeout:  10 * time.Second,
	}
}

// Validate reports every problem of the options, by field name.
func (o Options) Validate() error {
	var p problems.List
	p.Add("Cache", o.Cache.Validate())
	problems.Positive(&p, "MaxNewTokens", o.MaxNewTokens)
	problems.Positive(&p, "MaxBodyBytes", o.MaxBodyBytes)
	problems.Positive(&p, "MaxTextBytes", o.MaxTextBytes)
	problems.Positive(&p, "MaxTypes", o.MaxTypes)
	problems.Positive(&p, "MaxPrompts", o.MaxPrompts)
	problems.Positive(&p, "MaxDocs", o.MaxDocs)
	problems.Positive(&p, "MaxInFlight", o.MaxInFlight)
	problems.Positive(&p, "Timeout", o.Timeout)
	problems.Positive(&p, "BodyTimeout", o.BodyTimeout)
	if !(o.MinScore >= 0 && o.MinScore <= 1) { // NaN too
		p.Addf("MinScore", "must be between 0 and 1")
	}
	return p.Err()
}

// Tokenizer is what an engine may offer beyond token counts: the ids of a
// prompt as it decodes it, BOS first when the vocabulary asks for it.
type Tokenizer interface {
	Tokenize(model.Prompt) ([]int32, error)
}

// Server answers the API routes with one engine. It is safe for concurrent
// use.
type Server struct {
	opts     Options
	log      *slog.Logger
	page     *page
	backend  atomic.Pointer[backend] // nil until SetModel
	inFlight atomic.Int64            // API requests being answered
}

// backend is the served model.
type backend struct {
	eng  model.Engine
	rec  *model.Recognizer
	name string
}

// New checks the options and returns a server with no model: its routes
// answer 503 until [Server.SetModel].
func New(opts Options) (*Server, error) {
	opts = defaults.Fill(opts, DefaultOptions())
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Calibration != "" {
		if _, err := model.ReadCalibration(opts.Calibration); err != nil {
			return nil, fmt.Errorf("server: calibration: %w", err)
		}
	}
	pg, err := newPage()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &Server{opts: opts, log: log, page: pg}, nil
}

// SetModel serves eng under name from now on. It fails when the server's
// limits do not fit the engine (MaxNewTokens against its context).
func (s *Server) SetModel(eng model.Engine, name string) error {
	rec, err := model.NewRecognizer(eng, model.RecognizerOptions{
		Types:        s.opts.Types,
		MaxNewTokens: s.opts.MaxNewTokens,
		MaxTypes:     s.opts.MaxTypes,
		MaxTextBytes: s.opts.MaxTextBytes,
		MinScore:     s.opts.MinScore,
		Calibration:  s.opts.Calibration,
		Cache:        cacheFor(s.opts.Cache, name),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.backend.Store(&backend{eng: eng, rec: rec, name: name})
	return nil
}

// cacheFor is the cache's options for the model named name.
func cacheFor(c model.CacheOptions, name string) model.CacheOptions {
	if c.Enabled() && c.Model == "" {
		c.Model = "name:" + name
	}
	return c
}

// Cache returns the result cache of the model being served, nil when there
// is none (no model yet, or Options.Cache off).
func (s *Server) Cache() *model.Cache {
	if b := s.backend.Load(); b != nil {
		return b.rec.Cache()
	}
	return nil
}

// InFlight is the number of API requests being answered.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Routes returns the API's handlers, keyed by their http.ServeMux pattern.
func (s *Server) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/v1/completions": s.handle(http.MethodPost, s.completions),
		"/v1/annotate":    s.handle(http.MethodPost, s.annotate),
		"/v1/models":      s.handle(http.MethodGet, s.models),
		"/tokenize":       s.handle(http.MethodPost, s.tokenize),
		// The page: "/" exactly, so that every other path stays a 404.
		"GET /{$}": s.page,
		// Anything else under /v1/ gets a JSON 404, as an OpenAI
		// client expects.
		"/v1/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &apiError{http.StatusNotFound, "not_found_error", "", "no route " + r.URL.Path})
		}),
	}
}

// apiError is an error answer.
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

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nerstream"`)
	}
	writeJSON(w, e.status, openaiapi.ErrorResponse{Error: openaiapi.ErrorBody{Message: e.message, Type: e.kind, Code: e.code}})
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

// statusClientClosed answers a request whose client went away before its
// answer (nginx's 499 "client closed request"): nobody reads it, but the
// server span and the http.server.* metrics record it as the client's
// doing, not as a server error.
const statusClientClosed = 499

// handle wraps an API handler with the method check, the bearer token, the
// model's readiness, the body (its limit and its read deadline), the
// in-flight cap and the request timeout, in this order: a request takes an
// in-flight slot only once its body is in.
func (s *Server) handle(method string, f func(ctx context.Context, b *backend, body []byte) (any, *apiError)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, &apiError{http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
				fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, method)})
			return
		}
		if !s.authorized(r) {
			writeError(w, &apiError{http.StatusUnauthorized, "authentication_error", "invalid_api_key",
				"missing or wrong bearer token (Authorization: Bearer TOKEN)"})
			return
		}
		b := s.backend.Load()
		if b == nil {
			w.Header().Set("Retry-After", "5")
			writeError(w, &apiError{http.StatusServiceUnavailable, "server_error", "model_loading", "the model is loading"})
			return
		}
		// The body before the slot: a slow body holds its own
		// connection, never a slot that others wait for.
		var body []byte
		if method == http.MethodPost {
			var aerr *apiError
			if body, aerr = s.readBody(w, r); aerr != nil {
				writeError(w, aerr)
				return
			}
		}
		// The cap holds memory and queueing delay bounded; a client
		// that is told 429 tries another worker, or comes back.
		if n := s.inFlight.Add(1); n > int64(s.opts.MaxInFlight) {
			s.inFlight.Add(-1)
			w.Header().Set("Retry-After", "1")
			writeError(w, &apiError{http.StatusTooManyRequests, "rate_limit_error", "server_busy",
				fmt.Sprintf("%d requests in flight, the most this worker takes (--max-in-flight); retry later or elsewhere", s.opts.MaxInFlight)})
			return
		}
		defer s.inFlight.Add(-1)
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
		defer cancel()
		out, aerr := f(ctx, b, body)
		if aerr != nil {
			switch {
			case aerr.status == statusClientClosed:
				s.log.InfoContext(ctx, "serve: the client closed the request before its answer", "path", r.URL.Path, "after", time.Since(start).Round(time.Millisecond))
			case aerr.status >= 500:
				s.log.WarnContext(ctx, "serve: request failed", "path", r.URL.Path, "status", aerr.status, "err", aerr.message)
			}
			writeError(w, aerr)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// authorized checks the bearer token, in constant time. Without a token
// every request is. The scheme is case-insensitive (RFC 7235 2.1), and one
// or more spaces separate it from the token.
func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == nil {
		return true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hash both sides so that the compare takes the same time whatever
	// the lengths.
	want := sha256.Sum256(s.opts.Token)
	have := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

// readBody reads the request body, up to Options.MaxBodyBytes, within
// Options.BodyTimeout: a read deadline on the connection, of its own,
// whatever the http.Server's timeouts are (a program that embeds the
// server may have none).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	tooLarge := &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large",
		fmt.Sprintf("request body is over the limit of %d bytes", s.opts.MaxBodyBytes)}
	if r.ContentLength > s.opts.MaxBodyBytes {
		return nil, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		// Nothing to wait for. A deadline here would stay on the
		// connection's background read, which net/http starts at once
		// for a request without a body, and cancel the request's
		// context when it passed.
		return nil, nil
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.opts.BodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, badRequest("body_unreadable", "reading the request body: %v", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		// The deadline stays: net/http then closes the connection
		// rather than wait for the rest of the body.
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			return nil, &apiError{http.StatusRequestTimeout, "invalid_request_error", "body_timeout",
				fmt.Sprintf("the request body did not arrive within %v", s.opts.BodyTimeout)}
		}
		return nil, badRequest("body_unreadable", "reading the request body: %v", err)
	}
	// The body is in; generation may take minutes, and the connection
	// must not time out under it. (net/http clears the deadline itself
	// when the body reaches its end; this covers the rest.)
	_ = rc.SetReadDeadline(time.Time{})
	return body, nil
}

// decodeJSON reads one JSON value into v, and nothing after it. A body
// that is not Unicode text (invalid UTF-8, or a lone surrogate escape
// such as "\ud800", which encoding/json would turn into U+FFFD) is refused
// with the reason that dead-letters it on the stream, invalid_utf8
// (record.CheckUnicode): nothing would annotate another text than the
// one sent.
func decodeJSON(body []byte, v any) *apiError {
	if err := record.CheckUnicode("the request body", body); err != nil {
		if ie, ok := errors.AsType[*record.InputError](err); ok {
			return badRequest(ie.Reason, "%s", ie.Detail)
		}
		return badRequest(record.ReasonInvalidUTF8, "%v", err)
	}
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

func (s *Server) completions(ctx context.Context, b *backend, body []byte) (any, *apiError) {
	var req openaiapi.CompletionRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	prompts, ok := openaiapi.Strings(req.Prompt)
	switch {
	case !ok:
		return nil, badRequest("invalid_prompt", "prompt must be a string or a list of strings")
	case len(prompts) == 0:
		return nil, badRequest("invalid_prompt", "prompt is required")
	case len(prompts) > s.opts.MaxPrompts:
		return nil, badRequest("too_many_prompts", "%d prompts is over the limit of %d per request", len(prompts), s.opts.MaxPrompts)
	}
	for i, p := range prompts {
		if len(p) > s.opts.MaxTextBytes {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_long",
				fmt.Sprintf("prompt %d of %d bytes is over the limit of %d", i, len(p), s.opts.MaxTextBytes)}
		}
		if strings.TrimSpace(p) == "" {
			return nil, badRequest("invalid_prompt", "prompt %d is empty", i)
		}
	}
	if req.Temperature != nil && *req.Temperature != 0 {
		return nil, badRequest("unsupported_temperature", "only greedy decoding (temperature 0) is supported, not temperature %v", *req.Temperature)
	}
	stops, ok := openaiapi.Strings(req.Stop)
	if !ok {
		return nil, badRequest("invalid_stop", "stop must be a string or a list of strings")
	}
	for _, st := range stops {
		if st != model.EOS {
			return nil, badRequest("unsupported_stop", "stop %q is not supported: decoding stops at %q only", st, model.EOS)
		}
	}
	if req.Stream {
		return nil, badRequest("unsupported_stream", "streaming is not supported")
	}
	if req.Echo {
		return nil, badRequest("unsupported_echo", "echo is not supported")
	}
	if req.Logprobs != nil && (*req.Logprobs < 0 || *req.Logprobs > 5) {
		return nil, badRequest("invalid_logprobs", "logprobs must be between 0 and 5")
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
	maxTokens = min(maxTokens, s.opts.MaxNewTokens)

	group := model.PromptGroup{Prompts: make([]model.Prompt, len(prompts))}
	for i, p := range prompts {
		group.Prompts[i] = model.ParsePrompt(p)
	}
	start := time.Now()
	out, err := b.eng.Generate(ctx, []model.PromptGroup{group}, model.GenerateOptions{MaxNewTokens: maxTokens})
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	if len(out) != 1 || len(out[0]) != len(prompts) {
		return nil, &apiError{http.StatusInternalServerError, "server_error", "", "the engine answered the wrong number of prompts"}
	}
	resp := openaiapi.CompletionResponse{
		ID: requestID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: b.name,
		Choices: make([]openaiapi.Choice, len(prompts)),
	}
	var in, gen int
	for i, c := range out[0] {
		if c.Err != nil {
			return nil, badRequest("prompt_refused", "prompt %d: %v", i, c.Err)
		}
		finish := "stop"
		if c.GeneratedTokens >= maxTokens && !json.Valid([]byte(c.Text)) {
			finish = "length"
		}
		resp.Choices[i] = openaiapi.Choice{Index: openaiapi.Ptr(i), Text: openaiapi.Ptr(c.Text), FinishReason: finish}
		if req.Logprobs != nil {
			resp.Choices[i].Logprobs = choiceLogprobs(c)
		}
		in += c.PromptTokens
		gen += c.GeneratedTokens
	}
	resp.Usage = &openaiapi.Usage{PromptTokens: &in, CompletionTokens: &gen, TotalTokens: openaiapi.Ptr(in + gen)}
	s.opts.Metrics.ModelBatch(ctx, len(prompts), time.Since(start), in, gen)
	return resp, nil
}

// choiceLogprobs writes a completion's token log-probabilities in both
// forms that clients read on /v1/completions: OpenAI's (tokens,
// token_logprobs, text_offset in bytes) and the chat form that
// llama-server and Ollama send (content, with each token's bytes, exact
// where a token holds part of a UTF-8 sequence and its text cannot). Only
// the chosen tokens are given, not alternatives (top_logprobs): the
// engine computes no others. Null where the engine gave none.
func choiceLogprobs(c model.Completion) *openaiapi.Logprobs {
	if c.Tokens == nil {
		return nil
	}
	lp := &openaiapi.Logprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TextOffset: []int{}, Content: []openaiapi.TokenLogprob{}}
	off := 0
	for _, t := range c.Tokens {
		if t.Bytes < 0 || off+t.Bytes > len(c.Text) {
			return nil
		}
		piece := c.Text[off : off+t.Bytes]
		bytes := make([]int, len(piece))
		for i := range len(piece) {
			bytes[i] = int(piece[i])
		}
		// JSON has no -Inf: an impossible token gets the least float.
		p := max(t.LogProb, -math.MaxFloat64)
		if math.IsNaN(p) {
			return nil
		}
		lp.Tokens = append(lp.Tokens, piece)
		lp.TokenLogprobs = append(lp.TokenLogprobs, &p)
		lp.TextOffset = append(lp.TextOffset, off)
		lp.Content = append(lp.Content, openaiapi.TokenLogprob{Token: piece, Logprob: &p, Bytes: bytes})
		off += t.Bytes
	}
	return lp
}

// engineFailure is the answer to a failure of a whole engine call, made
// with ctx, the request's context under the request timeout.
func engineFailure(ctx context.Context, err error) *apiError {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded):
		return &apiError{http.StatusGatewayTimeout, "server_error", "timeout", "generation did not finish within the request timeout"}
	case errors.Is(ctx.Err(), context.Canceled):
		// net/http cancels a request's context when its client goes
		// away (or its connection is closed under it).
		return &apiError{statusClientClosed, "invalid_request_error", "client_closed_request", "the client closed the request before its answer"}
	case errors.Is(err, context.Canceled) || errors.Is(err, model.ErrClosed):
		return &apiError{http.StatusServiceUnavailable, "server_error", "unavailable", "the server is stopping"}
	}
	return &apiError{http.StatusInternalServerError, "server_error", "", "the engine failed: " + err.Error()}
}

// inputFailure is the answer to a document that the recognizer refuses;
// where says which document of a list ("" for a single one).
func inputFailure(where string, ie *record.InputError) *apiError {
	if ie.Reason == record.ReasonTextTooLong {
		return &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", ie.Reason, where + ie.Error()}
	}
	return badRequest(ie.Reason, "%s%s", where, ie.Error())
}

// annotateRequest is one document of POST /v1/annotate.
type annotateRequest struct {
	ID          string          `json:"id"`
	Text        *string         `json:"text"`
	EntityTypes []string        `json:"entity_types"`
	Metadata    json.RawMessage `json:"metadata"`
	// Explain asks for the explanation beside the record.
	Explain bool `json:"explain"`
	// Event, instead of text, is any JSON object whose members "fields"
	// name; "mode": "enrich" answers with the event itself, the entities
	// added as "enrich" says.
	Event  json.RawMessage `json:"event"`
	Fields *requestFields  `json:"fields"`
	Mode   string          `json:"mode"`
	Enrich *requestEnrich  `json:"enrich"`
}

// annotateResult is the answer for one document: its record, and, when
// the document asked, the explanation under "explain", after the record's
// own fields.
type annotateResult struct {
	record  record.Annotation
	explain *explanation
	// event, when set, is the answer instead of the record: the request's
	// event enriched.
	event json.RawMessage
}

// explanation is what a record was read from.
type explanation struct {
	// Answers are the model's raw answers, one per window and entity
	// type, window by window.
	Answers []explainedAnswer `json:"answers"`
	// Windows is the number of windows the text was split into.
	Windows int `json:"windows"`
	// PromptTokens and GeneratedTokens add up over the document's
	// prompts.
	PromptTokens    int `json:"prompt_tokens"`
	GeneratedTokens int `json:"generated_tokens"`
	// ElapsedMS is the time the request's generation took, in
	// milliseconds: the documents of one request are generated together,
	// so each of them shows the whole request's time.
	ElapsedMS float64 `json:"elapsed_ms"`
}

// explainedAnswer is the model's answer to one question.
type explainedAnswer struct {
	Type   string `json:"type"`
	Window int    `json:"window"`
	Text   string `json:"text"`
}

// MarshalJSON writes the record as it is, with "explain" added last when
// there is an explanation.
func (r annotateResult) MarshalJSON() ([]byte, error) {
	if r.event != nil {
		return r.event, nil
	}
	b, err := r.record.MarshalJSON()
	if err != nil || r.explain == nil {
		return b, err
	}
	e, err := json.Marshal(r.explain)
	if err != nil {
		return nil, err
	}
	// b is one JSON object: "explain" goes before its closing brace.
	b = bytes.TrimRight(b, " \t\r\n")
	out := make([]byte, 0, len(b)+len(e)+12)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"explain":`...)
	out = append(out, e...)
	return append(out, '}'), nil
}

// explain returns the explanation of an annotation, whose request's
// generation took elapsed.
func explain(a *model.Annotation, elapsed time.Duration) *explanation {
	e := &explanation{
		Answers: make([]explainedAnswer, len(a.Answers)),
		Windows: a.Windows, PromptTokens: a.PromptTokens, GeneratedTokens: a.GeneratedTokens,
		// To a tenth of a millisecond.
		ElapsedMS: float64(elapsed.Round(100*time.Microsecond)) / float64(time.Millisecond),
	}
	for i, ans := range a.Answers {
		e.Answers[i] = explainedAnswer{Type: ans.Type, Window: ans.Window, Text: ans.Text}
	}
	return e
}

func (s *Server) annotate(ctx context.Context, b *backend, body []byte) (any, *apiError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	list := bytes.HasPrefix(trimmed, []byte("["))
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
	if len(reqs) > s.opts.MaxDocs {
		return nil, badRequest("too_many_documents", "%d documents is over the limit of %d per request", len(reqs), s.opts.MaxDocs)
	}
	where := func(i int) string {
		if list {
			return fmt.Sprintf("document %d: ", i)
		}
		return ""
	}
	base := requestID("ann-")
	docs := make([]record.Document, len(reqs))
	hows := make([]eventDoc, len(reqs))
	// Every document is checked before the engine is called: the request
	// is answered whole or refused, so one bad document must not cost
	// the others' generation first (a two-document request with an empty
	// text was once refused after 26 s of generating).
	for i, r := range reqs {
		// The cheapest limits first: the number of types before the
		// recognizer looks at each.
		if r.Event != nil {
			if r.Text != nil {
				return nil, badRequest("invalid_request", "%sgive text or event, not both", where(i))
			}
			d, how, e := r.fromEvent(where(i))
			if e != nil {
				return nil, e
			}
			r.Text, r.EntityTypes, hows[i] = &d.Text, d.Types, how
			if r.ID == "" {
				r.ID = d.ID
			}
			docs[i].Fields = d.Fields
		} else if r.Fields != nil || r.Mode != "" || r.Enrich != nil {
			return nil, badRequest("invalid_request", "%sfields, mode and enrich go with an event", where(i))
		}
		switch {
		case r.Text == nil:
			return nil, badRequest(record.ReasonEmptyText, "%stext is required", where(i))
		case len(r.EntityTypes) > s.opts.MaxTypes:
			return nil, badRequest(record.ReasonTooManyTypes, "%s%d entity types is over the limit of %d", where(i), len(r.EntityTypes), s.opts.MaxTypes)
		}
		if len(r.Metadata) > 0 && string(r.Metadata) != "null" && !bytes.HasPrefix(bytes.TrimSpace(r.Metadata), []byte("{")) {
			return nil, badRequest("invalid_metadata", "%smetadata must be a JSON object", where(i))
		}
		id := r.ID
		if id == "" {
			id = base + "/" + strconv.Itoa(i)
		}
		docs[i] = record.Document{ID: id, Text: *r.Text, Types: r.EntityTypes, Metadata: r.Metadata, Fields: docs[i].Fields}
		// The text (size, UTF-8, blank) and the types, as the
		// recognizer checks them, without the engine.
		for _, d := range fieldDocs(docs[i]) {
			if err := b.rec.Check(d); err != nil {
				if ie, ok := errors.AsType[*record.InputError](err); ok {
					return nil, inputFailure(where(i), ie)
				}
				return nil, &apiError{http.StatusInternalServerError, "server_error", "", where(i) + err.Error()}
			}
		}
	}
	start := time.Now()
	anns, err := model.WithFields(b.rec).Recognize(ctx, docs)
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	elapsed := time.Since(start)
	records := make([]annotateResult, len(anns))
	var in, out, dropped int
	for i := range anns {
		if e := anns[i].Err; e != nil {
			var ie *record.InputError
			switch {
			case errors.As(e, &ie):
				return nil, inputFailure(where(i), ie)
			case errors.Is(e, model.ErrPromptTooLong):
				return nil, badRequest(record.ReasonContextTooBig, "%s%v", where(i), e)
			}
			return nil, &apiError{http.StatusInternalServerError, "server_error", "", where(i) + e.Error()}
		}
		records[i].record = anns[i].Record(b.name, docs[i].Metadata)
		if hows[i].enrich {
			var e *apiError
			if records[i].event, e = hows[i].enriched(where(i), reqs[i].Event, anns[i].Entities); e != nil {
				return nil, e
			}
		}
		if reqs[i].Explain {
			records[i].explain = explain(&anns[i], elapsed)
		}
		in += anns[i].PromptTokens
		out += anns[i].GeneratedTokens
		dropped += anns[i].BelowMinScore
	}
	s.opts.Metrics.ModelBatch(ctx, len(docs), elapsed, in, out)
	s.opts.Metrics.BelowMinScore(ctx, dropped)
	if list {
		return records, nil
	}
	return records[0], nil
}

func (s *Server) models(_ context.Context, b *backend, _ []byte) (any, *apiError) {
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
// BOS first when asked, when the engine is a Tokenizer; the count, and
// max_model_len, always.
func (s *Server) tokenize(ctx context.Context, b *backend, body []byte) (any, *apiError) {
	var req openaiapi.TokenizeRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	text := cmp.Or(req.Content, req.Prompt)
	if text == nil {
		return nil, badRequest("invalid_prompt", "content (or prompt) is required")
	}
	if len(*text) > s.opts.MaxTextBytes {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_long",
			fmt.Sprintf("text of %d bytes is over the limit of %d", len(*text), s.opts.MaxTextBytes)}
	}
	n, err := b.eng.TokenCount(ctx, *text)
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	resp := openaiapi.TokenizeResponse{Tokens: []json.RawMessage{}, MaxModelLen: b.eng.ContextTokens()}
	tk, ok := b.eng.(Tokenizer)
	if !ok {
		resp.Count = &n
		return resp, nil
	}
	toks, err := tk.Tokenize(model.Prompt{Parts: []model.Part{{Kind: model.PartText, Text: *text}}})
	if err != nil {
		return nil, engineFailure(ctx, err)
	}
	// Tokenize adds BOS when the vocabulary asks for it: keep it only
	// when the client asks for special tokens too.
	special := (req.AddSpecial != nil && *req.AddSpecial) || (req.AddSpecialTokens != nil && *req.AddSpecialTokens)
	if !special && len(toks) > n {
		toks = toks[len(toks)-n:]
	}
	for _, t := range toks {
		resp.Tokens = append(resp.Tokens, strconv.AppendInt(nil, int64(t), 10))
	}
	resp.Count = openaiapi.Ptr(len(toks))
	return resp, nil
}
