package openai

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model"

	"github.com/nerstream/nerstream/internal/apiclient"
)

// Dialect names a server's extensions to the OpenAI API.
type Dialect string

const (
	// DialectGeneric uses the plain OpenAI completions API only.
	DialectGeneric Dialect = ""
	// DialectVLLM is vLLM (and servers that copy its extensions, SGLang
	// for /tokenize).
	DialectVLLM Dialect = "vllm"
	// DialectLlamaServer is llama.cpp's llama-server.
	DialectLlamaServer Dialect = "llama-server"
)

// Tokenize selects how [Engine.TokenCount] counts tokens.
type Tokenize string

const (
	// TokenizeVLLM asks vLLM's POST /tokenize.
	TokenizeVLLM Tokenize = "vllm"
	// TokenizeLlamaServer asks llama-server's POST /tokenize.
	TokenizeLlamaServer Tokenize = "llama-server"
	// TokenizeEstimate counts len(text)+1, an upper bound, with no request.
	TokenizeEstimate Tokenize = "estimate"
)

// Routing selects how requests are spread over the endpoints.
type Routing string

const (
	// RoutingLeastInFlight sends each request to the endpoint with the
	// fewest requests in flight, ties broken in turn.
	RoutingLeastInFlight Routing = "least-in-flight"
	// RoutingRoundRobin sends requests to the endpoints in turn, skipping
	// full and ejected ones.
	RoutingRoundRobin Routing = "round-robin"
)

// Options configure an [Engine]. Zero values take the defaults.
type Options struct {
	// Endpoints are the servers' base URLs, as an OpenAI client takes
	// them: http://host:8000/v1. Requests go to {base}/completions;
	// /tokenize goes to the server's root (the base without a trailing
	// /v1). Required: at least one.
	Endpoints []string
	// Model is the served model's name, sent as "model". vLLM checks it
	// against --served-model-name (default: the model path given to vllm
	// serve); llama-server ignores it. Default: empty, and the field is
	// left out.
	Model string
	// APIKey is sent as "Authorization: Bearer <key>". Default: none.
	APIKey string
	// APIKeyFile names a file that holds the API key (white space at the
	// ends is dropped), read once by [New]; for keys mounted as secrets.
	// Set at most one of APIKey and APIKeyFile.
	APIKeyFile string
	// Dialect says which server extensions to use: [DialectVLLM],
	// [DialectLlamaServer], or [DialectGeneric] (default), none.
	Dialect Dialect
	// GuidedJSON asks the server to hold each answer to a JSON array of
	// strings, as the in-process engine's grammar does: vLLM's
	// "structured_outputs" {"json": schema} (vLLM 0.10.2 and later; it
	// replaced "guided_json", removed in 0.12), llama-server's GBNF
	// "grammar". It needs Dialect vllm or llama-server. Default: false, as
	// the official decoding.
	GuidedJSON bool
	// Tokenize is how TokenCount counts. Default: the dialect's /tokenize
	// for vllm and llama-server, else [TokenizeEstimate] (the generic API
	// has no tokenizer endpoint).
	Tokenize Tokenize
	// ContextTokens is the model's context window, which the recognizer
	// fits prompts and answers into. Default: 2048, UniNER's context. Set
	// it no larger than the servers' (vLLM --max-model-len; llama-server's
	// context per slot): a longer prompt comes back as a 400, and its
	// document is dead-lettered.
	ContextTokens int
	// Routing spreads requests over the endpoints. Default:
	// [RoutingLeastInFlight], which keeps a slow server from piling up
	// work.
	Routing Routing
	// MaxInFlightPerEndpoint bounds the requests in flight on each
	// endpoint; more wait in nerstream, where they can still go to the
	// next free endpoint, rather than in one server's queue. Default: 8.
	MaxInFlightPerEndpoint int
	// Timeout bounds each request (each attempt, not the retries
	// together). Default: 60s: one group is up to 64 prompts of up to 256
	// new tokens, which a loaded GPU answers in seconds.
	Timeout time.Duration
	// Retries is how many times a failed request is sent again. Default:
	// 3, which rides over one server's restart in a pool of several;
	// negative: none.
	Retries int
	// BackoffInitial and BackoffMax shape the wait before a retry: a
	// random time between 0 and min(BackoffMax, BackoffInitial×2^retry)
	// ("full jitter", so retries from many callers spread out). Defaults:
	// 100ms and 5s.
	BackoffInitial, BackoffMax time.Duration
	// MaxRetryAfter caps how long a server's Retry-After (on 429 and 503)
	// keeps requests off its endpoint, so that a server that asks for an
	// hour is tried again soon. Default: 30s.
	MaxRetryAfter time.Duration
	// FailureThreshold is the number of consecutive failures after which
	// an endpoint is ejected. Default: 3: one failure can be chance,
	// three in a row rarely are.
	FailureThreshold int
	// Cooldown is how long an ejected endpoint gets no requests before a
	// probe is tried. Default: 10s, about a server process's restart.
	Cooldown time.Duration
	// AllowSpecialTokenText sends prompts whose user parts hold
	// special-token text ("<s>", "</s>", "<unk>"), which the server would
	// parse as special tokens. Default: false: such prompts are refused
	// with [ErrSpecialTokenText] (see the package doc).
	AllowSpecialTokenText bool
	// HTTPClient sends the requests; pass one with an instrumented
	// transport to trace them. Its Timeout should be zero or above
	// Timeout. Default: a client whose transport keeps
	// MaxInFlightPerEndpoint idle connections per host.
	HTTPClient *http.Client

	// now, sleep and jitter are replaced by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
}

// ErrSpecialTokenText is the Completion.Err of a prompt whose user parts
// hold special-token text, unless [Options.AllowSpecialTokenText].
var ErrSpecialTokenText = errors.New("openai: the text holds special-token text (<s>, </s> or <unk>), which the server would parse as control tokens")

// ErrInvalidUTF8 is the Completion.Err of a prompt that is not valid UTF-8,
// which JSON cannot carry unchanged.
var ErrInvalidUTF8 = errors.New("openai: the prompt is not valid UTF-8")

// specialTexts are LLaMA's special tokens as text.
var specialTexts = []string{"<s>", "</s>", "<unk>"}

// Engine is a [model.Engine] backed by a pool of OpenAI-compatible servers.
// It is safe for concurrent use.
type Engine struct {
	opts     Options
	client   *http.Client
	apiKey   string
	capacity int

	mu       sync.Mutex
	eps      []*endpoint
	rr       int
	released chan struct{} // closed and replaced when a place frees up
	stats    counters
}

// New checks the options and returns an engine. It sends no request.
func New(opts Options) (*Engine, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("openai: no endpoints")
	}
	switch opts.Dialect {
	case DialectGeneric, DialectVLLM, DialectLlamaServer:
	default:
		return nil, fmt.Errorf("openai: unknown dialect %q (want vllm, llama-server or empty)", opts.Dialect)
	}
	if opts.GuidedJSON && opts.Dialect == DialectGeneric {
		return nil, errors.New("openai: guided JSON needs a dialect (vllm or llama-server): the plain OpenAI API has no grammar")
	}
	if opts.Tokenize == "" {
		switch opts.Dialect {
		case DialectVLLM:
			opts.Tokenize = TokenizeVLLM
		case DialectLlamaServer:
			opts.Tokenize = TokenizeLlamaServer
		default:
			opts.Tokenize = TokenizeEstimate
		}
	}
	switch opts.Tokenize {
	case TokenizeVLLM, TokenizeLlamaServer, TokenizeEstimate:
	default:
		return nil, fmt.Errorf("openai: unknown tokenize %q (want vllm, llama-server or estimate)", opts.Tokenize)
	}
	if opts.Routing == "" {
		opts.Routing = RoutingLeastInFlight
	}
	if opts.Routing != RoutingLeastInFlight && opts.Routing != RoutingRoundRobin {
		return nil, fmt.Errorf("openai: unknown routing %q (want least-in-flight or round-robin)", opts.Routing)
	}
	if opts.ContextTokens < 0 || opts.MaxInFlightPerEndpoint < 0 || opts.Timeout < 0 || opts.BackoffInitial < 0 ||
		opts.BackoffMax < 0 || opts.MaxRetryAfter < 0 || opts.FailureThreshold < 0 || opts.Cooldown < 0 {
		return nil, errors.New("openai: negative option (only Retries may be negative)")
	}
	setDefault(&opts.ContextTokens, 2048)
	setDefault(&opts.MaxInFlightPerEndpoint, 8)
	setDefault(&opts.Timeout, 60*time.Second)
	if opts.Retries == 0 {
		opts.Retries = 3
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	setDefault(&opts.BackoffInitial, 100*time.Millisecond)
	setDefault(&opts.BackoffMax, 5*time.Second)
	setDefault(&opts.MaxRetryAfter, 30*time.Second)
	setDefault(&opts.FailureThreshold, 3)
	setDefault(&opts.Cooldown, 10*time.Second)
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.sleep == nil {
		opts.sleep = apiclient.Sleep
	}
	if opts.jitter == nil {
		opts.jitter = rand.Float64
	}

	e := &Engine{opts: opts, released: make(chan struct{})}
	seen := map[string]bool{}
	for _, raw := range opts.Endpoints {
		ep, err := newEndpoint(raw)
		if err != nil {
			return nil, err
		}
		if seen[ep.base] {
			return nil, fmt.Errorf("openai: endpoint %s given twice", ep.name)
		}
		seen[ep.base] = true
		e.eps = append(e.eps, ep)
	}
	e.capacity = len(e.eps) * opts.MaxInFlightPerEndpoint

	key, err := apiclient.APIKey(opts.APIKey, opts.APIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	e.apiKey = key

	e.client = opts.HTTPClient
	if e.client == nil {
		e.client = &http.Client{Transport: NewTransport(opts.MaxInFlightPerEndpoint)}
	}
	return e, nil
}

// NewTransport returns the transport of the engine's default client:
// net/http's default one, keeping up to idlePerEndpoint idle connections
// per endpoint (set it to Options.MaxInFlightPerEndpoint, so that a busy
// pool reuses its connections instead of opening new ones), with a
// 10-second dial timeout. Wrap it to instrument the requests, and pass the
// client as [Options.HTTPClient].
func NewTransport(idlePerEndpoint int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(idlePerEndpoint, 2)
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// newEndpoint checks a base URL.
func newEndpoint(raw string) (*endpoint, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: endpoint %q is not an http(s) URL", apiclient.HideUserinfoRaw(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("openai: endpoint %s has a query or fragment", u.Redacted())
	}
	base := strings.TrimRight(u.String(), "/")
	root := strings.TrimSuffix(base, "/v1")
	return &endpoint{base: base, root: root, name: strings.TrimRight(u.Redacted(), "/")}, nil
}

// ContextTokens implements [model.Engine].
func (e *Engine) ContextTokens() int { return e.opts.ContextTokens }

// Close drops the idle connections of the engine's HTTP client.
func (e *Engine) Close() error {
	e.client.CloseIdleConnections()
	return nil
}

// checkPrompt returns why a prompt is refused before it is sent, or nil.
func (e *Engine) checkPrompt(p model.Prompt) error {
	for _, part := range p.Parts {
		if !utf8.ValidString(part.Text) {
			return ErrInvalidUTF8
		}
		if part.Kind == model.PartFixed || e.opts.AllowSpecialTokenText {
			continue
		}
		for _, s := range specialTexts {
			if strings.Contains(part.Text, s) {
				return ErrSpecialTokenText
			}
		}
	}
	return nil
}
