package distill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/backoff"
)

// teacherDouble is a test double of an OpenAI-compatible chat server: it
// records each request and answers request number n (from 1) with
// respond, or with a well-formed answer when respond is nil or returns
// false.
type teacherDouble struct {
	t       *testing.T
	srv     *httptest.Server
	respond func(w http.ResponseWriter, r *http.Request, n int) bool

	mu       sync.Mutex
	requests []recordedRequest
}

// recordedRequest is a request as the double received it.
type recordedRequest struct {
	Path string
	Auth string
	Body map[string]any
}

// doubleAnswer is the double's well-formed answer.
const doubleAnswer = `[("Ada Lovelace", "person")]`

func newTeacherDouble(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int) bool) *teacherDouble {
	d := &teacherDouble{t: t, respond: respond}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *teacherDouble) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		d.t.Errorf("request body is not JSON: %v: %s", err, raw)
	}
	d.mu.Lock()
	d.requests = append(d.requests, recordedRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body})
	n := len(d.requests)
	d.mu.Unlock()
	if d.respond != nil && d.respond(w, r, n) {
		return
	}
	writeChat(w, doubleAnswer, 120, 30)
}

func (d *teacherDouble) hits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.requests)
}

func (d *teacherDouble) base() string { return d.srv.URL + "/v1" }

// close stops the double and waits for the requests it still holds.
func (d *teacherDouble) close() { d.srv.Close() }

// writeChat writes a well-formed chat completions answer.
func writeChat(w http.ResponseWriter, content string, prompt, completion int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		content, prompt, completion, prompt+completion)
}

// recordingSleep replaces time.Sleep in tests: it records the waits and
// returns at once (or with ctx's error).
type recordingSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *recordingSleep) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *recordingSleep) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newTestTeacher returns a teacher of the double with fast test settings;
// edit may change the options.
func newTestTeacher(t *testing.T, base string, edit func(*TeacherOptions)) (*Teacher, *recordingSleep) {
	t.Helper()
	rs := &recordingSleep{}
	opts := TeacherOptions{
		BaseURL: base, Model: "teacher-model",
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		Timeout: 5 * time.Second,
		sleep:   rs.sleep,
		jitter:  func() float64 { return 0.5 },
	}
	if edit != nil {
		edit(&opts)
	}
	tc, err := NewTeacher(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tc, rs
}

func TestTeacherRequestShape(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("  sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const passage = "Ada Lovelace wrote the first program."
	userText := Instruction + "\n\nPassage: " + passage
	tests := []struct {
		name     string
		edit     func(*TeacherOptions)
		messages []any
		auth     string
	}{
		{
			name: "user role (the paper's layout), no key",
			messages: []any{
				map[string]any{"role": "system", "content": "You are a helpful information extraction system."},
				map[string]any{"role": "user", "content": userText},
			},
		},
		{
			name:     "user role, no system message",
			edit:     func(o *TeacherOptions) { o.OmitSystemMessage = true },
			messages: []any{map[string]any{"role": "user", "content": userText}},
		},
		{
			name: "system role, key",
			edit: func(o *TeacherOptions) { o.Role = RoleSystem; o.APIKey = "sk-test" },
			messages: []any{
				map[string]any{"role": "system", "content": Instruction},
				map[string]any{"role": "user", "content": "Passage: " + passage},
			},
			auth: "Bearer sk-test",
		},
		{
			name: "key file, own instruction, trailing slash",
			edit: func(o *TeacherOptions) { o.APIKeyFile = keyFile; o.Instruction = "List entities."; o.BaseURL += "/" },
			messages: []any{
				map[string]any{"role": "system", "content": SystemMessage},
				map[string]any{"role": "user", "content": "List entities.\n\nPassage: " + passage},
			},
			auth: "Bearer sk-from-file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTeacherDouble(t, nil)
			tc, _ := newTestTeacher(t, d.base(), func(o *TeacherOptions) {
				o.MaxTokens = 777
				if tt.edit != nil {
					tt.edit(o)
				}
			})
			ans, err := tc.Ask(context.Background(), passage)
			if err != nil {
				t.Fatal(err)
			}
			want := Answer{Text: doubleAnswer, Usage: Usage{PromptTokens: 120, CompletionTokens: 30}, Attempts: 1, FinishReason: "stop"}
			if ans != want {
				t.Errorf("answer = %+v, want %+v", ans, want)
			}
			if d.hits() != 1 {
				t.Fatalf("%d requests, want 1", d.hits())
			}
			r := d.requests[0]
			if r.Path != "/v1/chat/completions" {
				t.Errorf("path = %q", r.Path)
			}
			if r.Auth != tt.auth {
				t.Errorf("Authorization = %q, want %q", r.Auth, tt.auth)
			}
			wantBody := map[string]any{
				"model": "teacher-model", "messages": tt.messages, "temperature": 0.0,
				"max_tokens": 777.0, "n": 1.0, "stream": false,
			}
			if !reflect.DeepEqual(r.Body, wantBody) {
				t.Errorf("body = %v\nwant   %v", r.Body, wantBody)
			}
			s := tc.Stats()
			if s != (TeacherStats{Requests: 1, PromptTokens: 120, CompletionTokens: 30}) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestNewTeacherErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts TeacherOptions
		want string
	}{
		{"no base URL", TeacherOptions{Model: "m"}, "no base URL"},
		{"not http", TeacherOptions{BaseURL: "ftp://h/v1", Model: "m"}, "not an http(s) URL"},
		{"no host", TeacherOptions{BaseURL: "http:///v1", Model: "m"}, "not an http(s) URL"},
		{"query", TeacherOptions{BaseURL: "http://h/v1?x=1", Model: "m"}, "query or fragment"},
		{"no model", TeacherOptions{BaseURL: "http://h/v1"}, "no model"},
		{"role", TeacherOptions{BaseURL: "http://h/v1", Model: "m", Role: "assistant"}, "unknown role"},
		{"both keys", TeacherOptions{BaseURL: "http://h/v1", Model: "m", APIKey: "k", APIKeyFile: empty}, "not both"},
		{"empty key file", TeacherOptions{BaseURL: "http://h/v1", Model: "m", APIKeyFile: empty}, "is empty"},
		{"missing key file", TeacherOptions{BaseURL: "http://h/v1", Model: "m", APIKeyFile: filepath.Join(dir, "nope")}, "reading the API key file"},
		{"key with line break", TeacherOptions{BaseURL: "http://h/v1", Model: "m", APIKey: "a\nb"}, "line break"},
		{"negative", TeacherOptions{BaseURL: "http://h/v1", Model: "m", Concurrency: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTeacher(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	_, err := NewTeacher(TeacherOptions{BaseURL: "http://h/v1", Model: "m", APIKeyFile: filepath.Join(dir, "nope")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key file: errors.Is(err, os.ErrNotExist) is false: %v", err)
	}
	_, err = NewTeacher(TeacherOptions{BaseURL: "ftp://user:pw@h/v1", Model: "m"})
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("err = %v: want an error without the password", err)
	}
}

func TestTeacherRetries(t *testing.T) {
	// gaveUp: the slow case's client hung up on the held request.
	var gaveUp atomic.Bool
	const retryDate = "Wed, 21 Oct 2026 07:28:07 GMT"
	dateNow, _ := http.ParseTime(retryDate)
	dateNow = dateNow.Add(-9 * time.Second)
	tests := []struct {
		name    string
		timeout time.Duration
		first   func(w http.ResponseWriter, r *http.Request)
		// minWait is a wait the retry must have slept at least.
		minWait   time.Duration
		throttled int64
	}{
		{
			name: "429 with Retry-After seconds",
			first: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
			},
			minWait:   7 * time.Second,
			throttled: 1,
		},
		{
			name: "429 with Retry-After date",
			first: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", retryDate)
				w.WriteHeader(http.StatusTooManyRequests)
			},
			minWait:   9 * time.Second,
			throttled: 1,
		},
		{
			name: "503 with Retry-After above the cap",
			first: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "86400")
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			minWait: 5 * time.Minute,
		},
		{
			name:  "500",
			first: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
		},
		{
			name:  "malformed JSON",
			first: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"choices":[{"message":`) },
		},
		{
			name: "null content",
			first: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}`)
			},
		},
		{
			name:  "no choices",
			first: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"choices":[]}`) },
		},
		{
			name: "cut connection",
			first: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				conn.Close()
			},
		},
		{
			// The double holds the request until the client gives up,
			// so it is slow whatever the timeout; the timeout leaves the
			// healthy retry ample time on a busy machine.
			name:    "slow past the timeout",
			timeout: 2 * time.Second,
			first: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					gaveUp.Store(true)
				case <-time.After(time.Minute):
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gaveUp.Store(false)
			d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					tt.first(w, r)
					return true
				}
				return false
			})
			tc, rs := newTestTeacher(t, d.base(), func(o *TeacherOptions) {
				o.now = func() time.Time { return dateNow }
				if tt.timeout > 0 {
					o.Timeout = tt.timeout
				}
			})
			start := time.Now()
			ans, err := tc.Ask(context.Background(), "p")
			if err != nil {
				t.Fatal(err)
			}
			switch took := time.Since(start); {
			case tt.timeout > 0:
				// The double's first answer waits for the client to
				// give up, which its timeout alone makes it do.
				d.close()
				if !gaveUp.Load() {
					t.Errorf("the client did not give up on the slow request within its timeout of %v", tt.timeout)
				}
			case took > 2*time.Second:
				t.Errorf("took %v: a wait was not cut short", took)
			}
			if ans.Text != doubleAnswer || ans.Attempts != 2 {
				t.Errorf("answer = %+v, want the double's answer after 2 attempts", ans)
			}
			if d.hits() != 2 {
				t.Errorf("%d requests, want 2", d.hits())
			}
			waits := rs.recorded()
			if len(waits) != 1 {
				t.Fatalf("slept %v, want one wait", waits)
			}
			if waits[0] < tt.minWait || waits[0] > max(tt.minWait, 100*time.Millisecond) {
				t.Errorf("waited %v, want %v (or the back-off, at most 100ms, when longer)", waits[0], tt.minWait)
			}
			s := tc.Stats()
			if s.Requests != 2 || s.Retries != 1 || s.RateLimited != tt.throttled || s.Failures != 0 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestTeacherRetryAfterHoldsBackOthers(t *testing.T) {
	// A 429's Retry-After holds back the Teacher's other requests too.
	clock := time.Unix(1e9, 0)
	d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	tc, rs := newTestTeacher(t, d.base(), func(o *TeacherOptions) {
		o.now = func() time.Time { return clock }
		o.Retries = -1
	})
	if _, err := tc.Ask(context.Background(), "first"); err == nil {
		t.Fatal("the 429 was not an error with no retries")
	}
	if len(rs.recorded()) != 0 {
		t.Fatalf("slept %v before the first request", rs.recorded())
	}
	clock = clock.Add(2 * time.Second)
	if _, err := tc.Ask(context.Background(), "second"); err != nil {
		t.Fatal(err)
	}
	if got, want := rs.recorded(), []time.Duration{5 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("the next request slept %v, want %v", got, want)
	}
}

func TestTeacherPermanentErrors(t *testing.T) {
	const key = "sk-very-secret-123"
	tests := []struct {
		code    int
		body    string
		message string
	}{
		{http.StatusUnauthorized, `{"error":{"message":"Incorrect API key provided: sk-very-secret-123","type":"invalid_request_error"}}`, "Incorrect API key provided: [redacted]"},
		{http.StatusBadRequest, `{"error":"context too long"}`, "context too long"},
		{http.StatusForbidden, `{"message":"not for you"}`, "not for you"},
		{http.StatusNotFound, "model\n  not found", "model not found"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
				return true
			})
			base := strings.Replace(d.base(), "http://", "http://user:hunter2@", 1)
			tc, rs := newTestTeacher(t, base, func(o *TeacherOptions) { o.APIKey = key })
			_, err := tc.Ask(context.Background(), "p")
			var te *TeacherError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *TeacherError", err)
			}
			if te.StatusCode != tt.code || te.Message != tt.message || te.Attempts != 1 {
				t.Errorf("error = %+v, want status %d, message %q, 1 attempt", te, tt.code, tt.message)
			}
			if msg := err.Error(); strings.Contains(msg, key) || strings.Contains(msg, "hunter2") || strings.Contains(msg, "user") {
				t.Errorf("error shows a secret: %s", msg)
			}
			if !strings.Contains(err.Error(), "/v1/chat/completions") {
				t.Errorf("error does not name the URL: %s", err)
			}
			if d.hits() != 1 || len(rs.recorded()) != 0 {
				t.Errorf("%d requests and waits %v: want 1 request, no retry", d.hits(), rs.recorded())
			}
			if s := tc.Stats(); s.Failures != 1 || s.Retries != 0 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestTeacherRetriesSpent(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		status int
		want   string
	}{
		{
			name:   "502",
			handle: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "upstream down", http.StatusBadGateway) },
			status: http.StatusBadGateway,
			want:   "502 Bad Gateway: upstream down (giving up after 3 attempts)",
		},
		{
			name: "cut connection",
			handle: func(w http.ResponseWriter, r *http.Request) {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			},
			want: "sending: EOF (giving up after 3 attempts)",
		},
		{
			name: "429 without Retry-After",
			handle: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":{"message":"rate limit reached"}}`, http.StatusTooManyRequests)
			},
			status: http.StatusTooManyRequests,
			want:   "429 Too Many Requests: rate limit reached (giving up after 3 attempts)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				tt.handle(w, r)
				return true
			})
			tc, rs := newTestTeacher(t, d.base(), func(o *TeacherOptions) {
				o.Retries = 2
				o.jitter = func() float64 { return 1 }
			})
			_, err := tc.Ask(context.Background(), "p")
			var te *TeacherError
			if !errors.As(err, &te) || te.StatusCode != tt.status || te.Attempts != 3 {
				t.Fatalf("err = %#v, want a *TeacherError with status %d after 3 attempts", err, tt.status)
			}
			if !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to end %q", err, tt.want)
			}
			if d.hits() != 3 {
				t.Errorf("%d requests, want 3", d.hits())
			}
			// Full jitter at its ceiling: the initial back-off, doubled.
			want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
			if got := rs.recorded(); !reflect.DeepEqual(got, want) {
				t.Errorf("waits = %v, want %v", got, want)
			}
			if s := tc.Stats(); s.Requests != 3 || s.Retries != 2 || s.Failures != 1 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestTeacherNoRetries(t *testing.T) {
	d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	})
	tc, _ := newTestTeacher(t, d.base(), func(o *TeacherOptions) { o.Retries = -1 })
	if _, err := tc.Ask(context.Background(), "p"); err == nil || d.hits() != 1 {
		t.Errorf("err = %v after %d requests, want an error after 1", err, d.hits())
	}
}

func TestTeacherOversizedBody(t *testing.T) {
	d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		io.WriteString(w, `{"choices":[{"message":{"content":"`)
		w.Write([]byte(strings.Repeat("x", maxTeacherBody)))
		io.WriteString(w, `"}}]}`)
		return true
	})
	tc, _ := newTestTeacher(t, d.base(), func(o *TeacherOptions) { o.Retries = -1 })
	_, err := tc.Ask(context.Background(), "p")
	if err == nil || !strings.Contains(err.Error(), "answer over") {
		t.Errorf("err = %v, want an answer over the size limit", err)
	}
}

func TestTeacherConcurrency(t *testing.T) {
	const limit, asks = 3, 20
	var inFlight, most atomic.Int32
	d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		now := inFlight.Add(1)
		for {
			m := most.Load()
			if now <= m || most.CompareAndSwap(m, now) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1) // before answering: the client may send again at once
		writeChat(w, doubleAnswer, 1, 1)
		return true
	})
	tc, _ := newTestTeacher(t, d.base(), func(o *TeacherOptions) { o.Concurrency = limit })
	var wg sync.WaitGroup
	for range asks {
		wg.Go(func() {
			if _, err := tc.Ask(context.Background(), "p"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != limit {
		t.Errorf("at most %d requests were in flight, want %d", m, limit)
	}
	if d.hits() != asks {
		t.Errorf("%d requests, want %d", d.hits(), asks)
	}
}

func TestTeacherCancel(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		edit   func(*TeacherOptions)
		busy   bool // hold the only place with another request first
	}{
		{
			name: "during the request",
			handle: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
		},
		{
			name: "during the back-off",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTooManyRequests)
			},
			edit: func(o *TeacherOptions) {
				o.sleep = backoff.Sleep
				o.BackoffInitial, o.BackoffMax = time.Minute, time.Minute
				o.jitter = func() float64 { return 1 }
			},
		},
		{
			name: "waiting for a place",
			handle: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			edit: func(o *TeacherOptions) { o.Concurrency = 1 },
			busy: true,
		},
		{
			name:   "waiting for the rate limiter",
			handle: func(w http.ResponseWriter, r *http.Request) { writeChat(w, doubleAnswer, 1, 1) },
			edit: func(o *TeacherOptions) {
				o.sleep = backoff.Sleep
				o.RequestsPerMinute = 1
			},
			busy: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				tt.handle(w, r)
				return true
			})
			tc, _ := newTestTeacher(t, d.base(), tt.edit)
			bg, stop := context.WithCancel(context.Background())
			defer stop()
			if tt.busy {
				go tc.Ask(bg, "first")
				for d.hits() == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err := tc.Ask(ctx, "p")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("returned after %v", took)
			}
			if s := tc.Stats(); s.Failures != 0 {
				t.Errorf("a cancelled call counts as a failure: %+v", s)
			}
		})
	}
}

func TestTeacherTokenLimiter(t *testing.T) {
	// The reservation (estimate + MaxTokens) is corrected to the usage.
	clock := time.Unix(1e9, 0)
	d := newTeacherDouble(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeChat(w, doubleAnswer, 100, 50)
		return true
	})
	tc, _ := newTestTeacher(t, d.base(), func(o *TeacherOptions) {
		o.TokensPerMinute = 10000
		o.RequestsPerMinute = 60
		o.MaxTokens = 1000
		o.now = func() time.Time { return clock }
	})
	if _, err := tc.Ask(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	if got := tc.tokens.available(); got != 10000-150 {
		t.Errorf("tokens left = %v, want %v", got, 10000-150)
	}
	if got := tc.requests.available(); got != 59 {
		t.Errorf("requests left = %v, want 59", got)
	}
}
