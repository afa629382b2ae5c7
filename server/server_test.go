package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// tinyEngine loads the synthetic tiny model in the in-process engine.
func tinyEngine(t *testing.T) *llama.Engine {
	t.Helper()
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Local
}

// TestTextPromptTokenizesAsTemplate: a prompt written out as text, as
// completions requests carry it, gives the in-process engine the tokens of
// the template's prompt: its "</s>" EOS, a "</s>" in the text literal.
func TestTextPromptTokenizesAsTemplate(t *testing.T) {
	eng := tinyEngine(t)
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Ada Lovelace met Charles Babbage in London.", "x", "tab\tand\nnewline, ünïcode", "The </s> tag</s>USER: x"} {
		p := tmpl.Prompt(text, "person")
		want, err := eng.Tokenize(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := eng.Tokenize(model.ParsePrompt(p.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: text prompt tokens %v, want the template's %v", text, got, want)
		}
	}
}

// TestInFlightCap: past Options.MaxInFlight requests, the next one gets
// 429 with Retry-After at once, and is answered again once one finishes.
func TestInFlightCap(t *testing.T) {
	api, err := New(Options{MaxInFlight: 2, MaxBodyBytes: 1 << 10, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	api.backend.Store(&backend{name: "test"})
	entered, release := make(chan struct{}, 2), make(chan struct{})
	srv := httptest.NewServer(api.handle(http.MethodPost, func(ctx context.Context, _ *backend, _ []byte) (any, *apiError) {
		entered <- struct{}{}
		<-release
		return map[string]string{"ok": "yes"}, nil
	}))
	defer srv.Close()
	post := func() *http.Response {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Error(err)
			return nil
		}
		return resp
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if resp := post(); resp != nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("held request: %d", resp.StatusCode)
				}
			}
		})
	}
	<-entered
	<-entered
	resp := post()
	if resp == nil {
		t.FailNow()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "server_busy") {
		t.Errorf("third request: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	close(release)
	wg.Wait()
	if resp := post(); resp == nil || resp.StatusCode != 200 {
		t.Errorf("after the held requests finished: %v", resp)
	} else {
		resp.Body.Close()
	}
	if n := api.inFlight.Load(); n != 0 {
		t.Errorf("%d requests counted in flight after all finished", n)
	}
}

// recordingEngine is a scripted engine that counts the calls made to it.
// With entered set, Generate reports there and then waits for its context
// to end, as a long generation would.
type recordingEngine struct {
	modeltest.ScriptedEngine
	generates, counts atomic.Int32
	entered           chan struct{}
}

func (e *recordingEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	e.generates.Add(1)
	if e.entered != nil {
		e.entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return e.ScriptedEngine.Generate(ctx, groups, opts)
}

func (e *recordingEngine) TokenCount(ctx context.Context, text string) (int, error) {
	e.counts.Add(1)
	return e.ScriptedEngine.TokenCount(ctx, text)
}

// newAPI returns a server of opts serving eng.
func newAPI(t *testing.T, opts Options, eng model.Engine) *Server {
	t.Helper()
	api, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.SetModel(eng, "scripted"); err != nil {
		t.Fatal(err)
	}
	return api
}

// serveAPI serves api's routes on a test server as nerstream serve does:
// each route wrapped in the telemetry's server span and http.server.*
// metrics. wrap, when not nil, wraps the whole mux.
func serveAPI(t *testing.T, api *Server, wrap func(http.Handler) http.Handler) (*httptest.Server, *telemetry.Telemetry) {
	t.Helper()
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{Exporter: telemetry.ExporterNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	for p, h := range api.Routes() {
		mux.Handle(p, tel.HTTPHandler(h))
	}
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(mux)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, tel
}

// statusCounts returns the requests that the http.server.* metrics
// recorded, by status code.
func statusCounts(t *testing.T, tel *telemetry.Telemetry) map[string]int {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	counts := map[string]int{}
	for line := range strings.Lines(rec.Body.String()) {
		if !strings.HasPrefix(line, "http_server_request_duration_seconds_count{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `http_response_status_code="`)
		code, _, _ := strings.Cut(rest, `"`)
		_, value, _ := strings.Cut(line, "} ")
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		counts[code] += n
	}
	return counts
}

// firstRead is a request body that reports its first Read.
type firstRead struct {
	io.ReadCloser
	once    sync.Once
	reading chan<- struct{}
}

func (b *firstRead) Read(p []byte) (int, error) {
	b.once.Do(func() { b.reading <- struct{}{} })
	return b.ReadCloser.Read(p)
}

// TestSlowBodiesHoldNoSlot: clients that send their bodies slowly do not
// lock the others out. Reproduction of the defect: the in-flight slot was
// taken before the body was read, so 16 connections sending one byte a
// second kept a server of --max-in-flight 16 answering 429 to everyone
// until the read timeout, and reconnecting kept it so. Here as many slow
// clients as there are slots have begun their bodies (on real TCP
// connections), and a normal request is still answered; then the slow
// ones finish and are answered too.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	const slots = 2
	eng := &recordingEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Ada"]`})}}
	api := newAPI(t, Options{MaxInFlight: slots, BodyTimeout: time.Hour, Types: []string{"person"}}, eng)
	reading := make(chan struct{}, slots)
	srv, _ := serveAPI(t, api, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Slow") != "" {
				r.Body = &firstRead{ReadCloser: r.Body, reading: reading}
			}
			h.ServeHTTP(w, r)
		})
	})

	body := `{"id": "slow", "text": "Ada wrote."}`
	var conns []net.Conn
	for range slots {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		head := fmt.Sprintf("POST /v1/annotate HTTP/1.1\r\nHost: nerstream\r\nX-Slow: 1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		if _, err := io.WriteString(conn, head+body[:4]); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for range slots {
		<-reading // each slow request's handler is reading its body
	}

	resp, err := http.Post(srv.URL+"/v1/annotate", "application/json", strings.NewReader(`{"id": "quick", "text": "Ada wrote."}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"id":"quick"`) {
		t.Fatalf("a normal request while %d clients send their bodies slowly: %d %s", slots, resp.StatusCode, got)
	}
	if n := api.InFlight(); n != 0 {
		t.Errorf("%d requests in flight while the slow ones still send their bodies, want 0", n)
	}

	for _, conn := range conns {
		if _, err := io.WriteString(conn, body[4:]); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"id":"slow"`) {
			t.Errorf("a slow request, once its body is in: %d %s", resp.StatusCode, got)
		}
	}
}

// TestSlowBodyTimesOut: a body that does not arrive within
// Options.BodyTimeout is answered 408 and its connection closed, by the
// server's own read deadline (the test server has no timeouts of its own,
// as a program that embeds the server may have none).
func TestSlowBodyTimesOut(t *testing.T) {
	eng := &recordingEngine{}
	api := newAPI(t, Options{BodyTimeout: 50 * time.Millisecond, Types: []string{"person"}}, eng)
	srv, _ := serveAPI(t, api, nil)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A guard, not a synchronisation: without a deadline of the
	// server's own, the answer would never come.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, "POST /v1/annotate HTTP/1.1\r\nHost: nerstream\r\nContent-Length: 100\r\n\r\n{\"te"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a body that stopped: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(got), "body_timeout") {
		t.Errorf("answer %d %s, want 408 body_timeout", resp.StatusCode, got)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the 408 the connection is still open: %v", err)
	}
	if n := eng.generates.Load(); n != 0 {
		t.Errorf("%d model calls", n)
	}
}

// TestAnnotateChecksBeforeTheModel: a request with a bad document makes no
// model call. Reproduction of the defect: /v1/annotate checked empty texts
// and entity types only in the recognizer, per document, after the
// documents' generation, so a two-document request with one empty text
// was refused after 25.9 s of generating the other.
func TestAnnotateChecksBeforeTheModel(t *testing.T) {
	const good = `{"text": "Ada wrote.", "entity_types": ["person"]}`
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"empty text", `[` + good + `, {"text": "", "entity_types": ["person"]}]`, 400, record.ReasonEmptyText},
		{"blank text", `[` + good + `, {"text": " \n\t", "entity_types": ["person"]}]`, 400, record.ReasonEmptyText},
		{"no text", `[` + good + `, {"entity_types": ["person"]}]`, 400, record.ReasonEmptyText},
		{"first of two bad", `[{"text": " "}, ` + good + `]`, 400, record.ReasonEmptyText},
		{"empty type", `[` + good + `, {"text": "Ada", "entity_types": ["person", " "]}]`, 400, record.ReasonInvalidType},
		{"type too long", `[` + good + `, {"text": "Ada", "entity_types": ["` + strings.Repeat("x", 257) + `"]}]`, 400, record.ReasonTypeTooLong},
		{"no types, none configured", `[` + good + `, {"text": "Ada"}]`, 400, record.ReasonNoTypes},
		{"too many types", `[` + good + `, {"text": "Ada", "entity_types": ["a", "b", "c", "d"]}]`, 400, record.ReasonTooManyTypes},
		{"good", `[` + good + `, {"text": "Ada", "entity_types": ["a", "b", "c"]}]`, 200, ""},
		{"text too long", `[` + good + `, {"text": "` + strings.Repeat("x", 1001) + `", "entity_types": ["person"]}]`, 413, record.ReasonTextTooLong},
		{"metadata not an object", `[` + good + `, {"text": "Ada", "entity_types": ["person"], "metadata": 1}]`, 400, "invalid_metadata"},
		{"one bad document", `{"text": "", "entity_types": ["person"]}`, 400, record.ReasonEmptyText},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eng := &recordingEngine{}
			api := newAPI(t, Options{MaxTypes: 3, MaxTextBytes: 1000}, eng)
			srv, _ := serveAPI(t, api, nil)
			resp, err := http.Post(srv.URL+"/v1/annotate", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || (c.code != "" && !strings.Contains(string(got), `"code":"`+c.code+`"`)) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, got, c.status, c.code)
			}
			calls := eng.generates.Load() + eng.counts.Load()
			switch {
			case c.status != http.StatusOK && calls != 0:
				t.Errorf("a refused request made %d model calls (%d Generate, %d TokenCount), want none", calls, eng.generates.Load(), eng.counts.Load())
			case c.status == http.StatusOK && eng.generates.Load() != 1:
				t.Errorf("%d Generate calls for a good request, want 1", eng.generates.Load())
			}
		})
	}
}

// TestRefusesNonUnicode: a body that is not Unicode text, raw bytes that
// are not UTF-8 or a JSON escape of a lone surrogate, is refused with 400
// and the stream's dead-letter reason, invalid_utf8, on every route, with
// no model call. Reproduction of the defect: encoding/json turned both
// into U+FFFD, so /v1/annotate annotated another text than the one sent
// (and answered offsets into it), where the stream dead-letters the same
// bytes. A surrogate pair is one character, and is taken.
func TestRefusesNonUnicode(t *testing.T) {
	bodies := map[string]func(text string) string{
		"/v1/annotate":    func(text string) string { return `{"text": "` + text + `", "entity_types": ["person"]}` },
		"/v1/completions": func(text string) string { return `{"prompt": "` + text + `", "max_tokens": 2}` },
		"/tokenize":       func(text string) string { return `{"content": "` + text + `"}` },
	}
	for path, body := range bodies {
		for _, c := range []struct {
			name, text string
			status     int
			says       string
		}{
			{"invalid byte", "caf\xe9 Ada", 400, "the request body is not valid UTF-8 (byte "},
			{"cut rune", "Ada \xe6\x9d", 400, "the request body is not valid UTF-8 (byte "},
			{"lone high surrogate", `Ada \ud800 wrote`, 400, `the request body holds \ud800, a lone UTF-16 surrogate`},
			{"lone low surrogate", `Ada \uDC00`, 400, `the request body holds \udc00, a lone UTF-16 surrogate`},
			{"surrogate pair", `Ada \ud83d\ude00 wrote`, 200, ""},
		} {
			t.Run(path+" "+c.name, func(t *testing.T) {
				eng := &recordingEngine{}
				api := newAPI(t, Options{}, eng)
				srv, _ := serveAPI(t, api, nil)
				resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body(c.text)))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status {
					t.Fatalf("%d %s, want %d", resp.StatusCode, got, c.status)
				}
				if c.status == 200 {
					return
				}
				var e struct {
					Error struct{ Message, Code string }
				}
				if err := json.Unmarshal(got, &e); err != nil || e.Error.Code != record.ReasonInvalidUTF8 || !strings.HasPrefix(e.Error.Message, c.says) {
					t.Errorf("answer %s, want code %s and a message that starts %q", got, record.ReasonInvalidUTF8, c.says)
				}
				if n := eng.generates.Load() + eng.counts.Load(); n != 0 {
					t.Errorf("%d model calls for a refused body", n)
				}
			})
		}
	}
}

// lockedBuffer is a log sink for a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClientGoneIsNotAServerError: a client that disconnects during
// generation is logged as a client cancellation and counted as 499, not a
// server error. Reproduction of the defect: the request's context ends
// with context.Canceled, which was taken for the engine closing: a warning
// "request failed … the server is stopping", and a 503 in the
// http.server.* metrics.
func TestClientGoneIsNotAServerError(t *testing.T) {
	eng := &recordingEngine{entered: make(chan struct{}, 1)}
	var logs lockedBuffer
	api := newAPI(t, Options{Types: []string{"person"}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, eng)
	done := make(chan struct{})
	srv, tel := serveAPI(t, api, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done) // after the handler, its log and its metrics
			h.ServeHTTP(w, r)
		})
	})

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/annotate", strings.NewReader(`{"text": "Ada wrote."}`))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-eng.entered // generating
	cancel()      // the client goes away
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	<-done

	out := logs.String()
	if !strings.Contains(out, `"level":"INFO","msg":"serve: the client closed the request before its answer"`) ||
		strings.Contains(out, "stopping") || strings.Contains(out, `"level":"WARN"`) {
		t.Errorf("log:\n%s", out)
	}
	counts := statusCounts(t, tel)
	if counts["499"] != 1 || len(counts) != 1 {
		t.Errorf("requests recorded by status: %v, want one 499", counts)
	}
}

// TestBearerScheme: the scheme of the Authorization header is matched in
// any case (RFC 7235 2.1), the token exactly. Reproduction of the defect:
// "bearer TOKEN" and "BEARER TOKEN" were refused with 401.
func TestBearerScheme(t *testing.T) {
	api := newAPI(t, Options{Token: []byte("s3cret")}, &recordingEngine{})
	srv, _ := serveAPI(t, api, nil)
	for _, c := range []struct {
		header string
		want   int
	}{
		{"Bearer s3cret", 200},
		{"bearer s3cret", 200},
		{"BEARER s3cret", 200},
		{"bEaReR s3cret", 200},
		{"Bearer   s3cret", 200}, // 1*SP
		{"Bearer s3cret ", 200},  // net/http trims the value
		{"Bearer S3CRET", 401},
		{"Bearer s3cre", 401},
		{"Bearer s3cretx", 401},
		{"Bearers3cret", 401},
		{"Bearer", 401},
		{"Bearer ", 401},
		{"Basic s3cret", 401},
		{"s3cret", 401},
		{"", 401},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/models", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.header, resp.StatusCode, c.want)
		}
	}
}

// postAnnotate posts body to /v1/annotate and returns the answer.
func postAnnotate(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/annotate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// explained is an annotate answer with its explanation.
type explained struct {
	record.Annotation
	Explain *struct {
		Answers []struct {
			Type   string `json:"type"`
			Window int    `json:"window"`
			Text   string `json:"text"`
		} `json:"answers"`
		Windows         int      `json:"windows"`
		PromptTokens    int      `json:"prompt_tokens"`
		GeneratedTokens int      `json:"generated_tokens"`
		ElapsedMS       *float64 `json:"elapsed_ms"`
	} `json:"explain"`
}

// TestAnnotateExplain: "explain": true adds the raw answers, token counts
// and time after the record's fields, and changes nothing else; without
// it the answer is the record alone. On the real (tiny) model, every
// answer's mentions are the record's entities and unaligned mentions.
func TestAnnotateExplain(t *testing.T) {
	const text = "Ada Lovelace met Charles Babbage in London."
	t.Run("scripted double", func(t *testing.T) {
		eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{
			"person":   `["Ada Lovelace", "Grace Hopper"]`,
			"location": `[]`,
		})}
		srv, _ := serveAPI(t, newAPI(t, Options{}, eng), nil)
		doc := `{"id": "d", "text": "` + text + `", "entity_types": ["person", "location"]`
		code, plain := postAnnotate(t, srv.URL, doc+`}`)
		if code != 200 || bytes.Contains(plain, []byte("explain")) {
			t.Fatalf("without explain: %d %s", code, plain)
		}
		code, withEx := postAnnotate(t, srv.URL, doc+`, "explain": true}`)
		if code != 200 {
			t.Fatalf("with explain: %d %s", code, withEx)
		}
		// The record's fields first, byte for byte, then "explain".
		rec := bytes.TrimSuffix(bytes.TrimSpace(plain), []byte("}"))
		if !bytes.HasPrefix(withEx, append(rec, []byte(`,"explain":{`)...)) {
			t.Errorf("with explain:\n%s\nwant the record\n%s\nfollowed by explain", withEx, plain)
		}
		var got explained
		if err := json.Unmarshal(withEx, &got); err != nil {
			t.Fatal(err)
		}
		ex := got.Explain
		if ex == nil || len(ex.Answers) != 2 || ex.Windows != 1 || ex.PromptTokens == 0 || ex.GeneratedTokens == 0 || ex.ElapsedMS == nil || *ex.ElapsedMS < 0 {
			t.Fatalf("explain: %+v", ex)
		}
		if a := ex.Answers[0]; a.Type != "person" || a.Window != 0 || a.Text != `["Ada Lovelace", "Grace Hopper"]` {
			t.Errorf("answer 0: %+v", a)
		}
		if a := ex.Answers[1]; a.Type != "location" || a.Text != `[]` {
			t.Errorf("answer 1: %+v", a)
		}
		// In a list, only the document that asks gets it.
		code, list := postAnnotate(t, srv.URL, `[`+doc+`}, `+doc+`, "explain": true}]`)
		var docs []explained
		if err := json.Unmarshal(list, &docs); code != 200 || err != nil || len(docs) != 2 || docs[0].Explain != nil || docs[1].Explain == nil {
			t.Errorf("list: %d %s", code, list)
		}
	})
	t.Run("hostile", func(t *testing.T) {
		srv, _ := serveAPI(t, newAPI(t, Options{Types: []string{"person"}}, &recordingEngine{}), nil)
		for _, body := range []string{
			`{"text": "Ada", "explain": "yes"}`,
			`{"text": "Ada", "explain": 1}`,
			`{"text": "Ada", "explain": {"answers": true}}`,
		} {
			code, got := postAnnotate(t, srv.URL, body)
			if code != http.StatusBadRequest || !bytes.Contains(got, []byte(`"code":"invalid_json"`)) || bytes.Count(got, []byte("\n")) != 1 {
				t.Errorf("%s: %d %s", body, code, got)
			}
		}
		if code, got := postAnnotate(t, srv.URL, `{"text": "Ada", "explain": null}`); code != 200 || bytes.Contains(got, []byte("explain")) {
			t.Errorf("explain null: %d %s", code, got)
		}
	})
	t.Run("tiny model", func(t *testing.T) {
		srv, _ := serveAPI(t, newAPI(t, Options{MaxNewTokens: 32}, tinyEngine(t)), nil)
		code, b := postAnnotate(t, srv.URL, `{"text": "`+text+`", "entity_types": ["person", "location", "date"], "explain": true}`)
		var got explained
		if err := json.Unmarshal(b, &got); code != 200 || err != nil || got.Explain == nil {
			t.Fatalf("%d %s (%v)", code, b, err)
		}
		ex := got.Explain
		if len(ex.Answers) != 3 || ex.Windows != 1 || ex.GeneratedTokens == 0 {
			t.Fatalf("explain: %+v", ex)
		}
		// What the answers name is what the record holds: each mention
		// an entity (as found or as the model spelled it) or unaligned.
		var named, held []string
		for i, a := range ex.Answers {
			if a.Type != got.EntityTypes[i] {
				t.Errorf("answer %d is about %q, want %q", i, a.Type, got.EntityTypes[i])
			}
			for _, m := range model.Parse(model.ParseLenientMode, a.Text) {
				named = append(named, a.Type+"\x00"+strings.TrimSpace(m))
			}
		}
		for _, e := range got.Entities {
			held = append(held, e.Type+"\x00"+strings.TrimSpace(cmp.Or(e.Mention, e.Text)))
		}
		for _, u := range got.Unaligned {
			held = append(held, u.Type+"\x00"+strings.TrimSpace(u.Text))
		}
		if len(named) == 0 {
			t.Fatalf("the tiny model named nothing in %q: the check would be empty; choose another text", text)
		}
		slices.Sort(named)
		slices.Sort(held)
		if !slices.Equal(slices.Compact(named), slices.Compact(held)) {
			t.Errorf("the answers name %q, the record holds %q", named, held)
		}
	})
}

// TestAnnotateCache: with Options.Cache, a repeated /v1/annotate document
// is answered from the cache (the engine is not asked again) with the same
// body; half cache settings are refused by New.
func TestAnnotateCache(t *testing.T) {
	eng := &recordingEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Ada"]`})}}
	api := newAPI(t, Options{Types: []string{"person"}, Cache: model.CacheOptions{Entries: 10, Bytes: 1 << 20}}, eng)
	srv, _ := serveAPI(t, api, nil)
	body := `{"id": "d", "text": "Ada wrote."}`
	code1, first := postAnnotate(t, srv.URL, body)
	code2, second := postAnnotate(t, srv.URL, body)
	if code1 != http.StatusOK || code2 != http.StatusOK || string(first) != string(second) || !strings.Contains(string(first), `"Ada"`) {
		t.Errorf("%d %s\n%d %s", code1, first, code2, second)
	}
	if g := eng.generates.Load(); g != 1 {
		t.Errorf("the engine generated %d times, want 1", g)
	}
	if s := api.Cache().Stats(); s.Hits != 1 || s.Misses != 1 {
		t.Errorf("cache stats %+v", s)
	}
	if _, err := New(Options{Cache: model.CacheOptions{Entries: 10}}); err == nil || !strings.Contains(err.Error(), "Cache") {
		t.Errorf("New with entries alone: %v", err)
	}
}
