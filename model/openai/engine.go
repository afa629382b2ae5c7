package openai

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model"

	"github.com/nerstream/nerstream/internal/backoff"
	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/internal/redact"
)

// Dialect names a server's extensions to the OpenAI API.
type Dialect string

const (
	// DialectGeneric uses the plain OpenAI completions API only, with a
	// document's prompts as a list in one request, which the API allows
	// (vLLM, llama-server, SGLang and nerstream serve take it).
	DialectGeneric Dialect = ""
	// DialectVLLM is vLLM (and servers that copy its extensions, SGLang
	// for /tokenize).
	DialectVLLM Dialect = "vllm"
	// DialectLlamaServer is llama.cpp's llama-server.
	DialectLlamaServer Dialect = "llama-server"
	// DialectOpenAI is the plain OpenAI completions API with one prompt,
	// a string, per request: for servers that take no list of prompts.
	DialectOpenAI Dialect = "openai"
	// DialectOllama is Ollama's OpenAI-compatible API: one string prompt
	// per request, with the sampling settings that make its decoding
	// greedy (see the package doc).
	DialectOllama Dialect = "ollama"
)

// ListPrompts says whether the dialect sends a document's prompts as a
// list in one request; the others send each prompt alone, as a string.
func (d Dialect) ListPrompts() bool { return d != DialectOpenAI && d != DialectOllama }

// Tokenize selects how [Engine.TokenCount] counts tokens.
type Tokenize string

const (
	// TokenizeVLLM asks vLLM's POST /tokenize.
	TokenizeVLLM Tokenize = "vllm"
	// TokenizeLlamaServer asks llama-server's POST /tokenize.
	TokenizeLlamaServer Tokenize = "llama-server"
	// TokenizeEstimate counts len(text)+1, an upper bound, with no request.
	TokenizeEstimate Tokenize = "estimate"
	// TokenizeLocal counts with [Options.LocalTokenizer], in this
	// process, with no request.
	TokenizeLocal Tokenize = "local"
)

// LocalTokenizer is a model's tokenizer in this process: the in-process
// engine (model/llama) loaded without its weights satisfies it, as
// engines.Open loads [Options.Tokenizer].
type LocalTokenizer interface {
	// TokenCount counts text as literal text, no BOS.
	model.TokenCounter
	// Tokenize gives a prompt's tokens as a llama.cpp-based server counts
	// them: BOS when the vocabulary adds it, then the prompt, "</s>" in
	// its template as the EOS token.
	Tokenize(p model.Prompt) ([]int32, error)
}

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
	Endpoints []string `yaml:"endpoints"`
	// Model is the served model's name, sent as "model". vLLM checks it
	// against --served-model-name (default: the model path given to vllm
	// serve), Ollama against its models (the name given to ollama
	// create), and both answer 404 to another; llama-server ignores it.
	// Default: empty, and the field is left out.
	Model string `yaml:"model"`
	// APIKey is sent as "Authorization: Bearer <key>". Default: none.
	APIKey string `yaml:"api_key" secret:"true"`
	// APIKeyFile names a file that holds the API key (white space at the
	// ends is dropped), read once when the engine starts; for keys mounted
	// as secrets. Set at most one of APIKey and APIKeyFile.
	APIKeyFile string `yaml:"api_key_file"`
	// Dialect is the servers' extensions: "llama-server" (llama.cpp's
	// server, and nerstream serve), "vllm", "ollama", "openai" (the plain
	// OpenAI API, one string prompt per request, for servers that take no
	// list), or "" (default: the plain OpenAI API with each document's
	// prompts as a list in one request, which the API allows and which
	// lets the server's prefix cache compute the passage once). Without a
	// tokenizer (the server's /tokenize, or Tokenizer) token counts are
	// estimated from bytes, which makes long documents' windows smaller
	// than they need be.
	Dialect Dialect `yaml:"dialect"`
	// GuidedJSON asks the server to hold each answer to a JSON array of
	// strings, as the in-process engine's grammar does: vLLM's
	// "structured_outputs" {"json": schema} (vLLM 0.10.2 and later; it
	// replaced "guided_json", removed in 0.12), llama-server's GBNF
	// "grammar". It needs Dialect vllm or llama-server. Default: false, as
	// the official decoding.
	GuidedJSON bool `yaml:"-"`
	// Tokenize is how TokenCount counts. Default: [TokenizeLocal] with a
	// Tokenizer, else the dialect's /tokenize for vllm and llama-server,
	// else [TokenizeEstimate] (the plain API and Ollama have no tokenizer
	// endpoint).
	Tokenize Tokenize `yaml:"-"`
	// Tokenizer is a GGUF file (the served model's, or any with its
	// vocabulary) whose tokenizer counts tokens in this process, loaded
	// without its weights: exact counts with no request, for servers
	// without /tokenize (Ollama, plain OpenAI), and the check that a
	// llama.cpp-based server got each prompt whole (see the package doc).
	// Default: none: the server's /tokenize where the dialect has one,
	// else the bytes+1 estimate.
	Tokenizer string `yaml:"tokenizer"`
	// LocalTokenizer is the tokenizer that counts with TokenizeLocal;
	// engines.Open loads Tokenizer into it. Default: none.
	LocalTokenizer LocalTokenizer `yaml:"-"`
	// ContextTokens is the model's context window, which the recognizer
	// fits prompts and answers into. Default: 2048, UniNER's context. Set
	// it no larger than the servers' (vLLM --max-model-len; llama-server's
	// context per slot): a longer prompt comes back as a 400, and its
	// document is dead-lettered.
	ContextTokens int `yaml:"-"`
	// Routing spreads requests over the endpoints: "least-in-flight"
	// (default), which keeps a slow server from piling up work, or
	// "round-robin".
	Routing Routing `yaml:"routing"`
	// MaxInFlightPerEndpoint bounds the requests in flight on each
	// endpoint (a document's prompts are one request, or with the ollama
	// and openai dialects one request each); more wait in nerstream,
	// where they can still go to the next free endpoint, rather than in
	// one server's queue. Default: 8.
	MaxInFlightPerEndpoint int `yaml:"max_in_flight_per_endpoint"`
	// Timeout bounds each request (each attempt, not the retries
	// together). Default: 60s: one group is up to 64 prompts of up to 256
	// new tokens, which a loaded GPU answers in seconds.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a failed request is sent again. Default:
	// 3, which rides over one server's restart in a pool of several;
	// negative: none.
	Retries int `yaml:"-"`
	// BackoffInitial and BackoffMax shape the wait before a retry: a
	// random time between 0 and min(BackoffMax, BackoffInitial×2^retry)
	// ("full jitter", so retries from many callers spread out). Defaults:
	// 100ms and 5s.
	BackoffInitial, BackoffMax time.Duration `yaml:"-"`
	// MaxRetryAfter caps how long a server's Retry-After (on 429 and 503)
	// keeps requests off its endpoint, so that a server that asks for an
	// hour is tried again soon. Default: 30s.
	MaxRetryAfter time.Duration `yaml:"-"`
	// FailureThreshold is the number of consecutive failures after which
	// an endpoint is ejected. Default: 3: one failure can be chance,
	// three in a row rarely are.
	FailureThreshold int `yaml:"-"`
	// Cooldown is how long an ejected endpoint gets no requests before a
	// probe is tried. Default: 10s, about a server process's restart.
	Cooldown time.Duration `yaml:"-"`
	// AllowSpecialTokenText sends prompts whose user parts hold
	// special-token text ("<s>", "</s>", "<unk>"), which the server would
	// parse as special tokens. Default: false: such prompts are refused
	// with [ErrSpecialTokenText] (see the package doc).
	AllowSpecialTokenText bool `yaml:"-"`
	// HTTPClient sends the requests; pass one with an instrumented
	// transport to trace them. Its Timeout should be zero or above
	// Timeout. Default: a client whose transport keeps
	// MaxInFlightPerEndpoint idle connections per host.
	HTTPClient *http.Client `yaml:"-"`
	// Logger gets the engine's one line about a server that returns no
	// token log-probabilities (entities then have no scores). Default:
	// slog.Default().
	Logger *slog.Logger `yaml:"-"`

	// now, sleep and jitter are replaced by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
}

// ErrSpecialTokenText is the Completion.Err of a prompt whose user parts
// hold special-token text, unless [Options.AllowSpecialTokenText].
var ErrSpecialTokenText = errors.New("openai: the text holds special-token text (<s>, </s> or <unk>), which the server would parse as control tokens")

// ErrPromptTruncated is wrapped by the Completion.Err of a prompt of which
// the server counted fewer tokens than it has: the server cut it (Ollama
// keeps the end of a prompt longer than its num_ctx, and answers 200).
// It is checked where a count is known (see the package doc).
var ErrPromptTruncated = errors.New("openai: the server cut the prompt short (a prompt longer than its context)")

// ErrPromptAltered is wrapped by the Completion.Err of a prompt of which
// the server counted more tokens than it has: it did not take the prompt
// as it is (Ollama applies its model's TEMPLATE unless that is
// "{{ .Prompt }}"), or tokenizes it otherwise than the tokenizer here.
var ErrPromptAltered = errors.New("openai: the server counted more prompt tokens than the prompt has (a template around it, or another tokenizer)")

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
	backoff  backoff.Policy

	mu       sync.Mutex
	eps      []*endpoint
	rr       int
	released chan struct{} // closed and replaced when a place frees up
	stats    counters
	// lastFailure is the last failure that counted against an endpoint,
	// which errNoEndpoint's error says.
	lastFailure error
	// noScores logs, once, that the server returned no log-probabilities.
	noScores sync.Once
}

// DefaultOptions returns the options that zero values stand for. Tokenize
// is left empty: its default depends on the dialect.
func DefaultOptions() Options {
	return Options{
		Routing:                RoutingLeastInFlight,
		ContextTokens:          2048,
		MaxInFlightPerEndpoint: 8,
		Timeout:                60 * time.Second,
		Retries:                3,
		BackoffInitial:         100 * time.Millisecond,
		BackoffMax:             5 * time.Second,
		MaxRetryAfter:          30 * time.Second,
		FailureThreshold:       3,
		Cooldown:               10 * time.Second,
	}
}

// withDefaults fills the zero values with the defaults, and Tokenize with
// the dialect's.
func (o Options) withDefaults() Options {
	o = defaults.Fill(o, DefaultOptions())
	if o.Tokenize == "" {
		switch {
		case o.Tokenizer != "" || o.LocalTokenizer != nil:
			o.Tokenize = TokenizeLocal
		case o.Dialect == DialectVLLM:
			o.Tokenize = TokenizeVLLM
		case o.Dialect == DialectLlamaServer:
			o.Tokenize = TokenizeLlamaServer
		default:
			o.Tokenize = TokenizeEstimate
		}
	}
	return o
}

// Validate reports every problem of the options, at their YAML keys (the
// Go field's name for a field that has none). Endpoints may be empty here:
// [New] requires them, and the configuration only when the openai engine
// is chosen.
func (o Options) Validate() error {
	var p problems.List
	for i, e := range o.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			p.Addf(fmt.Sprintf("endpoints[%d]", i), "%q is not an http:// or https:// URL", redact.String(e))
		}
	}
	switch o.Dialect {
	case DialectGeneric, DialectVLLM, DialectLlamaServer, DialectOpenAI, DialectOllama:
	default:
		p.Addf("dialect", "%q is not one of llama-server, vllm, ollama, openai or empty", o.Dialect)
	}
	if o.GuidedJSON && o.Dialect != DialectVLLM && o.Dialect != DialectLlamaServer {
		p.Addf("GuidedJSON", "needs a dialect with a grammar (vllm or llama-server): the plain OpenAI API and Ollama's have none")
	}
	switch o.Tokenize {
	case "", TokenizeVLLM, TokenizeLlamaServer, TokenizeEstimate:
	case TokenizeLocal:
		if o.Tokenizer == "" && o.LocalTokenizer == nil {
			p.Addf("Tokenize", "local needs a tokenizer")
		}
	default:
		p.Addf("Tokenize", "%q is not one of vllm, llama-server, local, estimate", o.Tokenize)
	}
	if o.Tokenizer != "" && strings.TrimSpace(o.Tokenizer) != o.Tokenizer {
		p.Addf("tokenizer", "%q has white space at its ends", o.Tokenizer)
	}
	switch o.Routing {
	case RoutingLeastInFlight, RoutingRoundRobin:
	default:
		p.Addf("routing", "%q is not one of least-in-flight, round-robin", o.Routing)
	}
	problems.Positive(&p, "max_in_flight_per_endpoint", o.MaxInFlightPerEndpoint)
	problems.Positive(&p, "timeout", o.Timeout)
	if o.APIKey != "" && o.APIKeyFile != "" {
		p.Addf("api_key_file", "set api_key or api_key_file, not both")
	}
	if o.ContextTokens <= 0 || o.BackoffInitial <= 0 || o.BackoffMax <= 0 || o.MaxRetryAfter <= 0 || o.FailureThreshold <= 0 || o.Cooldown <= 0 {
		p.Addf("", "ContextTokens, BackoffInitial, BackoffMax, MaxRetryAfter, FailureThreshold and Cooldown must be > 0")
	}
	return p.Err()
}

// New checks the options and returns an engine. It sends no request.
func New(opts Options) (*Engine, error) {
	opts, eps, key, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if opts.Tokenize == TokenizeLocal && opts.LocalTokenizer == nil {
		return nil, fmt.Errorf("openai: the tokenizer %s is not loaded: open the engine with engines.Open, or set LocalTokenizer", opts.Tokenizer)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.sleep == nil {
		opts.sleep = backoff.Sleep
	}

	e := &Engine{opts: opts, eps: eps, apiKey: key, released: make(chan struct{}),
		backoff: backoff.Policy{Initial: opts.BackoffInitial, Max: opts.BackoffMax, Jitter: true, Rand: opts.jitter}}
	e.capacity = len(e.eps) * opts.MaxInFlightPerEndpoint
	e.client = opts.HTTPClient
	if e.client == nil {
		e.client = &http.Client{Transport: NewTransport(opts.MaxInFlightPerEndpoint)}
	}
	return e, nil
}

// Check checks the options as [New] does (the endpoints' URLs, the
// options' values, the API key's file), without making an engine, so
// that a command can refuse them before it starts anything: a tokenizer
// that Tokenizer names need not be loaded yet.
func Check(opts Options) error {
	_, _, _, err := prepare(opts)
	return err
}

// prepare is the checks of [New]: the options with their defaults, the
// endpoints and the API key.
func prepare(opts Options) (Options, []*endpoint, string, error) {
	if len(opts.Endpoints) == 0 {
		return opts, nil, "", errors.New("openai: no endpoints")
	}
	// Retries < 0 means none; 0 is the default.
	noRetries := opts.Retries < 0
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return opts, nil, "", fmt.Errorf("openai: %w", err)
	}
	if noRetries {
		opts.Retries = 0
	}
	var eps []*endpoint
	seen := map[string]bool{}
	for _, raw := range opts.Endpoints {
		ep, err := newEndpoint(raw)
		if err != nil {
			return opts, nil, "", err
		}
		if seen[ep.base] {
			return opts, nil, "", fmt.Errorf("openai: endpoint %s given twice", ep.name)
		}
		seen[ep.base] = true
		eps = append(eps, ep)
	}
	key, err := openaiapi.APIKey(opts.APIKey, opts.APIKeyFile)
	if err != nil {
		return opts, nil, "", fmt.Errorf("openai: %w", err)
	}
	return opts, eps, key, nil
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

// newEndpoint checks a base URL.
func newEndpoint(raw string) (*endpoint, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: endpoint %q is not an http(s) URL", redact.String(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("openai: endpoint %s has a query or fragment", redact.URL(u))
	}
	base := strings.TrimRight(u.String(), "/")
	root := strings.TrimSuffix(base, "/v1")
	// name is what errors, stats and logs show: without the user name and
	// password that the URL may carry for basic authentication.
	return &endpoint{base: base, root: root, name: strings.TrimRight(redact.URL(u), "/")}, nil
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
