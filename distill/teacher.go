package distill

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nerstream/nerstream/internal/backoff"
	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/internal/redact"
)

const (
	// maxTeacherBody bounds a teacher's answer body: one passage's tuples
	// are a few KiB.
	maxTeacherBody = 16 << 20
	// maxRetryAfter caps how long a server's Retry-After is honoured, so
	// that a server asking for an hour is tried again sooner.
	maxRetryAfter = 5 * time.Minute
)

// SystemMessage is the system message of the paper's data-construction
// prompt (UniNER paper, Figure 1; the project page shows it too).
const SystemMessage = "You are a helpful information extraction system."

// Teacher roles: where TeacherOptions.Instruction goes.
const (
	// RoleUser is the paper's layout and the default: the
	// [SystemMessage], then one user message with the instruction, a
	// blank line, "Passage: " and the passage.
	RoleUser = "user"
	// RoleSystem sends the instruction as the system message, then a user
	// message "Passage: " and the passage.
	RoleSystem = "system"
)

// TeacherOptions configure a [Teacher]. Zero values take the defaults.
type TeacherOptions struct {
	// BaseURL is the API's base URL as OpenAI clients take it, e.g.
	// "http://host:8000/v1"; requests go to BaseURL + "/chat/completions".
	// Required; http or https, no query or fragment; a trailing slash is
	// fine.
	BaseURL string
	// Model is the teacher model's name, sent as "model". Required.
	Model string
	// APIKey is sent as "Authorization: Bearer <key>" when not empty.
	// Default: none.
	APIKey string
	// APIKeyFile names a file holding the API key (white space at the
	// ends dropped), read once by [NewTeacher]; for keys mounted as
	// secrets. Set at most one of APIKey and APIKeyFile.
	APIKeyFile string
	// Instruction is the text before the passage. Default: [Instruction],
	// the UniNER paper's.
	Instruction string
	// Role says where the instruction goes: [RoleUser] (default) or
	// [RoleSystem].
	Role string
	// OmitSystemMessage leaves out [SystemMessage] in the RoleUser layout,
	// for servers whose chat template takes no system message. Default:
	// false.
	OmitSystemMessage bool
	// MaxTokens bounds the answer's length, sent as "max_tokens". Default:
	// 1024. An answer cut at this bound has FinishReason "length".
	MaxTokens int
	// Concurrency is the most requests in flight at once. Default: 4.
	Concurrency int
	// RequestsPerMinute limits the requests sent per minute, retries
	// included. Default: 0, no limit.
	RequestsPerMinute int
	// TokensPerMinute limits the tokens per minute. Before a request is
	// sent it reserves an estimate (the messages' length in bytes / 4 + 1,
	// plus MaxTokens); once the server reports the usage, the reservation
	// is corrected to prompt + completion tokens. Default: 0, no limit.
	TokensPerMinute int
	// Retries is how many times a failed request is sent again: on 408,
	// 429 and 5xx answers, timeouts, cut connections and malformed bodies.
	// Other 4xx answers (400, 401, 403, 404, …) are not retried. Default:
	// 5; negative: none.
	Retries int
	// Timeout bounds one attempt, the answer's body included. Default:
	// 120s.
	Timeout time.Duration
	// BackoffInitial and BackoffMax shape the wait before a retry: a
	// random time between 0 and min(BackoffMax, BackoffInitial×2^retry)
	// ("full jitter"). A 429's or 503's Retry-After (seconds or an HTTP
	// date), capped at 5 minutes, is waited out when longer, and holds
	// back every request of the Teacher until it is over. Defaults: 500ms
	// and 30s.
	BackoffInitial, BackoffMax time.Duration
	// HTTPClient sends the requests. Its Timeout should be zero or above
	// Timeout. Default: a client with no overall timeout (Timeout applies
	// to each attempt) that keeps Concurrency idle connections.
	HTTPClient *http.Client

	// now, sleep and jitter are replaced by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
}

// Usage is what a request cost, from the server's "usage" object; zero
// when the server sends none.
type Usage struct {
	// PromptTokens is the prompt's length in the teacher's tokens.
	PromptTokens int `json:"prompt_tokens"`
	// CompletionTokens is the answer's length in the teacher's tokens.
	CompletionTokens int `json:"completion_tokens"`
}

// Answer is a teacher's reply to one passage.
type Answer struct {
	// Text is the assistant message's content.
	Text string
	// Usage is what the successful request cost.
	Usage Usage
	// Attempts is the number of requests sent, 1 when the first succeeded.
	Attempts int
	// FinishReason is the server's "finish_reason": "stop", or "length"
	// when the answer was cut at MaxTokens (it is not retried: at
	// temperature 0 it would be cut again); empty when not sent.
	FinishReason string
}

// TeacherStats are counters of a Teacher's work since [NewTeacher].
type TeacherStats struct {
	// Requests counts HTTP requests sent, retries included.
	Requests int64
	// Retries counts requests sent again after a failure.
	Retries int64
	// RateLimited counts 429 answers.
	RateLimited int64
	// Failures counts calls of [Teacher.Ask] that returned a
	// [*TeacherError]: a permanent failure, or the retries spent. Calls
	// ended by their context are not counted.
	Failures int64
	// PromptTokens and CompletionTokens add up the usage the server
	// reported.
	PromptTokens, CompletionTokens int64
}

// TeacherError is a request that failed for good: a permanent failure,
// or the last failure once the retries were spent.
type TeacherError struct {
	// URL is the request's URL, any user information hidden.
	URL string
	// StatusCode is the HTTP status; 0 when no usable HTTP answer came
	// (connection failure, timeout, malformed or oversized body).
	StatusCode int
	// Message is the server's error message, shortened to 300 bytes, or
	// what went wrong. It never holds the API key.
	Message string
	// Attempts is the number of requests sent.
	Attempts int
	// Err is the underlying error when there is one: the transport's, or
	// the JSON decoder's for a malformed body. Nil for HTTP status
	// errors and timeouts.
	Err error
}

// Error describes the failure on one line.
func (e *TeacherError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "distill: teacher %s: ", e.URL)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
		if e.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	b.WriteString(openaiapi.StatusHint(e.StatusCode))
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (giving up after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *TeacherError) Unwrap() error { return e.Err }

// Retryable says whether the failure is of a kind that is retried: no
// usable HTTP answer, 408, 429 or 5xx.
func (e *TeacherError) Retryable() bool {
	c := e.StatusCode
	return c == 0 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
}

// Teacher asks an OpenAI-compatible chat model for a passage's entities.
// It is safe for concurrent use.
type Teacher struct {
	opts     TeacherOptions
	client   *http.Client
	apiKey   string
	target   string // the chat completions URL
	name     string // target with any user information hidden
	slots    chan struct{}
	backoff  backoff.Policy
	requests *limiter // nil: no limit
	tokens   *limiter // nil: no limit

	mu         sync.Mutex
	pauseUntil time.Time // after a 429's or 503's Retry-After
	stats      TeacherStats
}

// NewTeacher checks the options, reads the API key file if any, and
// returns a Teacher. It sends no request.
func NewTeacher(opts TeacherOptions) (*Teacher, error) {
	u, err := url.Parse(strings.TrimSpace(opts.BaseURL))
	switch {
	case opts.BaseURL == "":
		return nil, errors.New("distill: teacher: no base URL")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("distill: teacher: base URL %q is not an http(s) URL", redact.String(opts.BaseURL))
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("distill: teacher: base URL %s has a query or fragment", redact.URL(u))
	case opts.Model == "":
		return nil, errors.New("distill: teacher: no model name")
	}
	switch opts.Role {
	case "":
		opts.Role = RoleUser
	case RoleUser, RoleSystem:
	default:
		return nil, fmt.Errorf("distill: teacher: unknown role %q (want user or system)", opts.Role)
	}
	if opts.MaxTokens < 0 || opts.Concurrency < 0 || opts.RequestsPerMinute < 0 || opts.TokensPerMinute < 0 ||
		opts.Timeout < 0 || opts.BackoffInitial < 0 || opts.BackoffMax < 0 {
		return nil, errors.New("distill: teacher: negative option (only Retries may be negative)")
	}
	if opts.Instruction == "" {
		opts.Instruction = Instruction
	}
	opts.MaxTokens = cmp.Or(opts.MaxTokens, 1024)
	opts.Concurrency = cmp.Or(opts.Concurrency, 4)
	opts.Timeout = cmp.Or(opts.Timeout, 120*time.Second)
	opts.BackoffInitial = cmp.Or(opts.BackoffInitial, 500*time.Millisecond)
	opts.BackoffMax = cmp.Or(opts.BackoffMax, 30*time.Second)
	switch {
	case opts.Retries == 0:
		opts.Retries = 5
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.sleep == nil {
		opts.sleep = backoff.Sleep
	}

	t := &Teacher{opts: opts, slots: make(chan struct{}, opts.Concurrency),
		backoff: backoff.Policy{Initial: opts.BackoffInitial, Max: opts.BackoffMax, Jitter: true, Rand: opts.jitter}}
	key, err := openaiapi.APIKey(opts.APIKey, opts.APIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher: %w", err)
	}
	t.apiKey = key

	u.Path = strings.TrimRight(u.Path, "/") + "/chat/completions"
	u.RawPath = ""
	t.target = u.String()
	t.name = redact.URL(u)
	t.requests = newLimiter(opts.RequestsPerMinute, opts.now, opts.sleep)
	t.tokens = newLimiter(opts.TokensPerMinute, opts.now, opts.sleep)
	t.client = opts.HTTPClient
	if t.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = opts.Concurrency
		t.client = &http.Client{Transport: tr}
	}
	return t, nil
}

// URL returns the chat completions URL requests go to, any user
// information hidden.
func (t *Teacher) URL() string { return t.name }

// Stats returns the Teacher's counters. It is safe for concurrent use.
func (t *Teacher) Stats() TeacherStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatRequest is the body of a chat completions request.
type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Temperature float64       `json:"temperature"`
	MaxTokens   int           `json:"max_tokens"`
	N           int           `json:"n"`
	Stream      bool          `json:"stream"`
}

// chatResponse is the part of a chat completions answer that is read.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage Usage `json:"usage"`
}

// messages builds the chat messages for a passage.
func (t *Teacher) messages(passage string) []chatMessage {
	if t.opts.Role == RoleSystem {
		return []chatMessage{
			{Role: "system", Content: t.opts.Instruction},
			{Role: "user", Content: "Passage: " + passage},
		}
	}
	user := chatMessage{Role: "user", Content: t.opts.Instruction + "\n\nPassage: " + passage}
	if t.opts.OmitSystemMessage {
		return []chatMessage{user}
	}
	return []chatMessage{{Role: "system", Content: SystemMessage}, user}
}

// Ask sends one passage (temperature 0, n 1, stream false) and returns the
// teacher's answer. Before each attempt it waits out any back-off or
// Retry-After, then for one of the Concurrency places and for the rate
// limiters. It retries as [TeacherOptions.Retries] says. It returns ctx's
// error, unwrapped, once ctx ends, and any other failure as a
// [*TeacherError].
func (t *Teacher) Ask(ctx context.Context, passage string) (Answer, error) {
	msgs := t.messages(passage)
	payload, err := json.Marshal(chatRequest{
		Model: t.opts.Model, Messages: msgs, Temperature: 0,
		MaxTokens: t.opts.MaxTokens, N: 1, Stream: false,
	})
	if err != nil {
		return Answer{}, fmt.Errorf("distill: teacher: encoding the request: %w", err)
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Content)
	}
	estimate := size/4 + 1 + t.opts.MaxTokens

	var wait time.Duration // back-off before the next attempt
	for attempt := 0; ; attempt++ {
		if err := t.waitTurn(ctx, wait); err != nil {
			return Answer{}, err
		}
		ans, err := t.attempt(ctx, payload, estimate)
		if err == nil {
			ans.Attempts = attempt + 1
			return ans, nil
		}
		if ctx.Err() != nil {
			return Answer{}, ctx.Err()
		}
		var te *TeacherError
		if !errors.As(err, &te) { // the limiters or the slot: ctx's error
			return Answer{}, err
		}
		te.Attempts = attempt + 1
		if !te.Retryable() || attempt >= t.opts.Retries {
			t.mu.Lock()
			t.stats.Failures++
			t.mu.Unlock()
			return Answer{}, te
		}
		t.mu.Lock()
		t.stats.Retries++
		t.mu.Unlock()
		wait = t.backoff.Delay(attempt)
	}
}

// waitTurn sleeps for the back-off d, or until the end of a server's
// Retry-After pause if that is later: a 429's or 503's Retry-After holds
// back every request, the one that got it included.
func (t *Teacher) waitTurn(ctx context.Context, d time.Duration) error {
	t.mu.Lock()
	pause := t.pauseUntil.Sub(t.opts.now())
	t.mu.Unlock()
	if d = max(d, pause); d <= 0 {
		return ctx.Err()
	}
	return t.opts.sleep(ctx, d)
}

// attempt takes a place and the rate limiters' units, and makes one
// request.
func (t *Teacher) attempt(ctx context.Context, payload []byte, estimate int) (Answer, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
	defer func() { <-t.slots }()
	if err := t.requests.Wait(ctx, 1); err != nil {
		return Answer{}, err
	}
	if err := t.tokens.Wait(ctx, estimate); err != nil {
		t.requests.Adjust(-1) // not sent
		return Answer{}, err
	}
	t.mu.Lock()
	t.stats.Requests++
	t.mu.Unlock()
	return t.send(ctx, payload, estimate)
}

// send makes one request. It returns the answer, or an error: ctx's, or a
// *TeacherError. A 429's or 503's Retry-After sets the pause.
func (t *Teacher) send(ctx context.Context, payload []byte, estimate int) (Answer, error) {
	actx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.target, bytes.NewReader(payload))
	if err != nil {
		return Answer{}, &TeacherError{URL: t.name, Message: t.redact(err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if t.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.apiKey)
	}
	failed := func(what string, err error) (Answer, error) {
		switch {
		case ctx.Err() != nil:
			return Answer{}, ctx.Err()
		case actx.Err() != nil:
			return Answer{}, &TeacherError{URL: t.name, Message: fmt.Sprintf("no answer within the timeout of %s", t.opts.Timeout)}
		}
		return Answer{}, &TeacherError{URL: t.name, Message: what + ": " + t.redact(err.Error()), Err: err}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error // its text repeats the URL, with any password
		if errors.As(err, &ue) && ue.Err != nil {
			err = ue.Err
		}
		return failed("sending", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTeacherBody+1))
	if err != nil {
		return failed("reading the answer", err)
	}
	if len(body) > maxTeacherBody {
		return Answer{}, &TeacherError{URL: t.name, Message: fmt.Sprintf("answer over %d bytes", maxTeacherBody)}
	}

	code := resp.StatusCode
	if code < 200 || code > 299 {
		te := &TeacherError{URL: t.name, StatusCode: code, Message: openaiapi.ErrorMessage(t.redact(string(body)))}
		var ra time.Duration
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			ra = min(openaiapi.RetryAfter(resp.Header.Get("Retry-After"), t.opts.now()), maxRetryAfter)
		}
		t.mu.Lock()
		if code == http.StatusTooManyRequests {
			t.stats.RateLimited++
		}
		if until := t.opts.now().Add(ra); ra > 0 && until.After(t.pauseUntil) {
			t.pauseUntil = until
		}
		t.mu.Unlock()
		return Answer{}, te
	}

	var cr chatResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return Answer{}, &TeacherError{URL: t.name, Message: "malformed answer: " + err.Error(), Err: err}
	}
	if used := cr.Usage.PromptTokens + cr.Usage.CompletionTokens; used > 0 {
		t.tokens.Adjust(used - estimate)
		t.mu.Lock()
		t.stats.PromptTokens += int64(cr.Usage.PromptTokens)
		t.stats.CompletionTokens += int64(cr.Usage.CompletionTokens)
		t.mu.Unlock()
	}
	switch {
	case len(cr.Choices) == 0:
		msg := "malformed answer: no choices"
		if m := openaiapi.ErrorMessage(t.redact(string(body))); strings.Contains(string(body), `"error"`) && m != "" {
			msg += ": " + m
		}
		return Answer{}, &TeacherError{URL: t.name, Message: msg}
	case cr.Choices[0].Message.Content == nil:
		return Answer{}, &TeacherError{URL: t.name, Message: "malformed answer: no message content"}
	}
	return Answer{
		Text:         *cr.Choices[0].Message.Content,
		Usage:        cr.Usage,
		FinishReason: cr.Choices[0].FinishReason,
	}, nil
}

// redact hides the API key, should a server or an error repeat it.
func (t *Teacher) redact(s string) string {
	if t.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, t.apiKey, "[redacted]")
}
