package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/record"
)

var serveListening = regexp.MustCompile(`"msg":"serve: listening","address":"([^"]+)"`)

// serveArgs are the test server's flags, as the issue gives them.
var serveArgs = []string{"serve", "--model", "synth:tiny", "--threads", "1", "--max-new-tokens", "8", "--listen", "127.0.0.1:0"}

// startServe runs nerstream serve in-process with the extra flags, waits
// until it is ready, and stops it when the test ends, checking that it
// exits 0. It returns the base URL.
func startServe(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append(slices.Clone(serveArgs), extra...), strings.NewReader(""), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("serve exited %d; log:\n%s", c, logs.String())
			}
			if !strings.Contains(logs.String(), `"msg":"serve: stopped"`) {
				t.Errorf("no stop line in the log:\n%s", logs.String())
			}
		case <-time.After(2 * time.Minute):
			t.Errorf("serve did not stop after cancel; log:\n%s", logs.String())
		}
	})
	var base string
	deadline := time.Now().Add(2 * time.Minute)
	for base == "" {
		if m := serveListening.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before listening; log:\n%s", c, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; log:\n%s", logs.String())
		}
	}
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready (%v); log:\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// post sends body (a string, or a value to encode) and returns the status
// and the body.
func post(t *testing.T, url string, body any, header ...string) (int, []byte) {
	t.Helper()
	var b []byte
	if s, ok := body.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return doRequest(t, req)
}

func doRequest(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// openTestEngine loads the same model with the same options as the test
// server, to compare answers with.
func openTestEngine(t *testing.T) (*llama.Engine, string) {
	t.Helper()
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1, GPULayers: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Local, m.Name
}

// checkRecord checks an annotation record against its document.
func checkRecord(t *testing.T, rec record.Annotation, id, text string, types []string) {
	t.Helper()
	if rec.ID != id {
		t.Errorf("id %q, want %q", rec.ID, id)
	}
	if !slices.Equal(rec.EntityTypes, types) {
		t.Errorf("%s: entity_types %q, want %q", id, rec.EntityTypes, types)
	}
	if rec.Model == "" || rec.Source != nil {
		t.Errorf("%s: model %q and source %v, want a model and no source", id, rec.Model, rec.Source)
	}
	if rec.Entities == nil {
		t.Errorf("%s: entities is null, want a list", id)
	}
	runes := []rune(text)
	for _, e := range rec.Entities {
		if e.Start < 0 || e.End > len(runes) || e.Start >= e.End || string(runes[e.Start:e.End]) != e.Text {
			t.Errorf("%s: entity %+v is not text[start:end] of %q", id, e, text)
		}
		if !slices.Contains(types, e.Type) {
			t.Errorf("%s: entity %+v has a type not asked for", id, e)
		}
	}
}

// apiErrorBody is the OpenAI error shape.
// completionResponse is the answer of /v1/completions as a client reads it.
type completionResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

type apiErrorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func TestServe(t *testing.T) {
	base := startServe(t)
	eng, name := openTestEngine(t)
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const text = "Ada Lovelace worked with Charles Babbage in London on the Analytical Engine."
	types := []string{"person", "location"}

	t.Run("probes", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if code, body := doRequest(t, req); code != http.StatusOK {
				t.Errorf("GET %s = %d %s", path, code, body)
			}
		}
	})

	t.Run("completions", func(t *testing.T) {
		prompts := make([]string, len(types))
		group := model.PromptGroup{}
		for i, typ := range types {
			p := tmpl.Prompt(text, typ)
			prompts[i] = p.String()
			group.Prompts = append(group.Prompts, p)
		}
		// max_tokens over the flag's cap of 8 is capped.
		code, body := post(t, base+"/v1/completions", map[string]any{
			"model": "UniNER-7B-type", "prompt": prompts, "max_tokens": 256, "temperature": 0, "stop": []string{"</s>"},
		})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var resp completionResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.ID, "cmpl-") || resp.Object != "text_completion" || resp.Created == 0 || resp.Model != name {
			t.Errorf("header fields %+v", resp)
		}
		if len(resp.Choices) != len(prompts) {
			t.Fatalf("%d choices for %d prompts", len(resp.Choices), len(prompts))
		}
		want, err := eng.Generate(context.Background(), []model.PromptGroup{group}, model.GenerateOptions{MaxNewTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		var promptTokens, genTokens int
		for i, c := range resp.Choices {
			w := want[0][i]
			if w.Err != nil {
				t.Fatal(w.Err)
			}
			// JSON carries invalid UTF-8 (a cut multi-byte character;
			// random weights give many) as U+FFFD: compare through it.
			wb, _ := json.Marshal(w.Text)
			var wantText string
			if err := json.Unmarshal(wb, &wantText); err != nil {
				t.Fatal(err)
			}
			if c.Index != i || c.Text != wantText {
				t.Errorf("choice %d: index %d text %q, want %q from the engine", i, c.Index, c.Text, w.Text)
			}
			if c.FinishReason != "stop" && c.FinishReason != "length" {
				t.Errorf("choice %d: finish_reason %q", i, c.FinishReason)
			}
			promptTokens += w.PromptTokens
			genTokens += w.GeneratedTokens
		}
		u := resp.Usage
		if u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Errorf("usage %+v", u)
		}
		if u.PromptTokens != promptTokens || u.CompletionTokens != genTokens {
			t.Errorf("usage %+v, want %d prompt and %d completion tokens", u, promptTokens, genTokens)
		}

		// A single string prompt gives one choice.
		code, body = post(t, base+"/v1/completions", map[string]any{"prompt": prompts[0]})
		if code != http.StatusOK {
			t.Fatalf("single prompt: status %d: %s", code, body)
		}
		resp = completionResponse{}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		one, err := eng.Generate(context.Background(), []model.PromptGroup{{Prompts: group.Prompts[:1]}}, model.GenerateOptions{MaxNewTokens: 8})
		if err != nil || one[0][0].Err != nil {
			t.Fatal(err, one[0][0].Err)
		}
		ob, _ := json.Marshal(one[0][0].Text)
		if len(resp.Choices) != 1 || !bytes.Contains(body, ob) {
			t.Errorf("single prompt: %s, want the text %s", body, ob)
		}
	})

	t.Run("tokenize", func(t *testing.T) {
		n, err := eng.TokenCount(context.Background(), text)
		if err != nil {
			t.Fatal(err)
		}
		code, body := post(t, base+"/tokenize", map[string]any{"content": text, "add_special": false})
		var v struct {
			Count  int     `json:"count"`
			Tokens []int32 `json:"tokens"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Count != n || len(v.Tokens) != n {
			t.Errorf("POST /tokenize = %d %s, want a count of %d", code, body, n)
		}
	})

	t.Run("annotate", func(t *testing.T) {
		code, body := post(t, base+"/v1/annotate", map[string]any{"id": "doc-1", "text": text, "entity_types": types})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var rec record.Annotation
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		checkRecord(t, rec, "doc-1", text, types)
		// The same as the recognizer gives in-process.
		r, err := model.NewRecognizer(eng, model.RecognizerOptions{MaxNewTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		anns, err := r.Recognize(context.Background(), []record.Document{{ID: "doc-1", Text: text, Types: types}})
		if err != nil || anns[0].Err != nil {
			t.Fatal(err, anns[0].Err)
		}
		want := anns[0].Record(name, []byte("{}"))
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(rec)
		if !bytes.Equal(wb, gb) {
			t.Errorf("record %s, want %s", gb, wb)
		}

		// A list, one without an id and without types (the defaults).
		docs := []map[string]any{
			{"id": "a", "text": "Grace Hopper joined the Navy.", "entity_types": []string{"person", "organization"}, "metadata": map[string]any{"k": 1}},
			{"text": "Paris is in France."},
		}
		code, body = post(t, base+"/v1/annotate", docs)
		if code != http.StatusOK {
			t.Fatalf("list: status %d: %s", code, body)
		}
		var recs []record.Annotation
		if err := json.Unmarshal(body, &recs); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(recs) != 2 {
			t.Fatalf("%d records for 2 documents: %s", len(recs), body)
		}
		checkRecord(t, recs[0], "a", "Grace Hopper joined the Navy.", []string{"person", "organization"})
		if string(recs[0].Metadata) != `{"k":1}` {
			t.Errorf("metadata %s, want {\"k\":1}", recs[0].Metadata)
		}
		if recs[1].ID == "" {
			t.Error("a document without an id got none")
		}
		checkRecord(t, recs[1], recs[1].ID, "Paris is in France.", []string{"person", "organization", "location"})
	})

	t.Run("bad requests", func(t *testing.T) {
		prompt := tmpl.Prompt(text, "person").String()
		manyTypes := make([]string, 100)
		for i := range manyTypes {
			manyTypes[i] = fmt.Sprintf("type %d", i)
		}
		big := `{"text": "` + strings.Repeat("a", 1<<20) + `"}`
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			message            string
		}{
			{"malformed JSON", "POST", "/v1/annotate", `{"text": `, 400, "malformed JSON"},
			{"trailing garbage", "POST", "/v1/annotate", `{"text": "a"} x`, 400, "malformed JSON"},
			{"empty text", "POST", "/v1/annotate", map[string]any{"text": "  ", "entity_types": []string{"person"}}, 400, "empty"},
			{"no text", "POST", "/v1/annotate", map[string]any{"entity_types": []string{"person"}}, 400, "text is required"},
			{"100 types", "POST", "/v1/annotate", map[string]any{"text": "a b", "entity_types": manyTypes}, 400, "over the limit of 64"},
			{"empty type", "POST", "/v1/annotate", []map[string]any{{"text": "a"}, {"text": "a b", "entity_types": []string{""}}}, 400, "document 1"},
			{"empty list", "POST", "/v1/annotate", `[]`, 400, "empty"},
			{"body over the limit", "POST", "/v1/annotate", big, 413, "over the limit"},
			{"GET annotate", "GET", "/v1/annotate", nil, 405, "method not allowed"},
			{"temperature", "POST", "/v1/completions", map[string]any{"prompt": prompt, "temperature": 0.7}, 400, "only greedy decoding (temperature 0)"},
			{"stop", "POST", "/v1/completions", map[string]any{"prompt": prompt, "stop": []string{"\n"}}, 400, "stop"},
			{"token prompt", "POST", "/v1/completions", map[string]any{"prompt": []int{1, 2, 3}}, 400, "prompt must be"},
			{"no prompt", "POST", "/v1/completions", map[string]any{}, 400, "prompt is required"},
			{"65 prompts", "POST", "/v1/completions", map[string]any{"prompt": slices.Repeat([]string{prompt}, 65)}, 400, "over the limit of 64"},
			{"max_tokens 0", "POST", "/v1/completions", map[string]any{"prompt": prompt, "max_tokens": 0}, 400, "max_tokens"},
			{"stream", "POST", "/v1/completions", map[string]any{"prompt": prompt, "stream": true}, 400, "streaming"},
			{"logprobs 6", "POST", "/v1/completions", map[string]any{"prompt": prompt, "logprobs": 6}, 400, "logprobs must be between 0 and 5"},
			{"logprobs -1", "POST", "/v1/completions", map[string]any{"prompt": prompt, "logprobs": -1}, 400, "logprobs must be between 0 and 5"},
			{"logprobs not a number", "POST", "/v1/completions", map[string]any{"prompt": prompt, "logprobs": "all"}, 400, "malformed JSON"},
			{"too long for the context", "POST", "/v1/completions", map[string]any{"prompt": strings.Repeat("word ", 5000)}, 400, "context"},
			{"unknown route", "POST", "/v1/chat/completions", map[string]any{}, 404, "no route"},
		} {
			var code int
			var body []byte
			if tc.method == "GET" {
				req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
				code, body = doRequest(t, req)
			} else {
				code, body = post(t, base+tc.path, tc.body)
			}
			var e apiErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Errorf("%s: body %q is not JSON: %v", tc.name, body, err)
				continue
			}
			if code != tc.status || !strings.Contains(e.Error.Message, tc.message) || e.Error.Type == "" {
				t.Errorf("%s: %d %s, want %d with a message holding %q", tc.name, code, body, tc.status, tc.message)
			}
		}
		// Still serving.
		code, body := post(t, base+"/v1/annotate", map[string]any{"id": "after", "text": text, "entity_types": types})
		if code != http.StatusOK {
			t.Fatalf("after the bad requests: %d %s", code, body)
		}
	})

	t.Run("concurrent clients", func(t *testing.T) {
		const clients = 8
		var wg sync.WaitGroup
		errs := make([]string, clients)
		recs := make([]record.Annotation, clients)
		texts := make([]string, clients)
		start := make(chan struct{})
		for i := range clients {
			texts[i] = fmt.Sprintf("Client %d says: Ada Lovelace number %d visited Turin and met %d engineers.", i, i, i*7)
			wg.Go(func() {
				<-start
				b, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("c%d", i), "text": texts[i], "entity_types": types})
				resp, err := http.Post(base+"/v1/annotate", "application/json", bytes.NewReader(b))
				if err != nil {
					errs[i] = err.Error()
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					errs[i] = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
					return
				}
				if err := json.Unmarshal(body, &recs[i]); err != nil {
					errs[i] = err.Error()
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range clients {
			if errs[i] != "" {
				t.Errorf("client %d: %s", i, errs[i])
				continue
			}
			checkRecord(t, recs[i], fmt.Sprintf("c%d", i), texts[i], types)
		}
	})
}

func TestServeBearerToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "--token-file", file)
	doc := map[string]any{"id": "d", "text": "Ada Lovelace.", "entity_types": []string{"person"}}
	for _, tc := range []struct {
		name   string
		header []string
		status int
	}{
		{"missing", nil, 401},
		{"wrong", []string{"Authorization", "Bearer s3cres"}, 401},
		{"not bearer", []string{"Authorization", "Basic s3cret"}, 401},
		{"right", []string{"Authorization", "Bearer s3cret"}, 200},
		{"scheme in lower case", []string{"Authorization", "bearer s3cret"}, 200}, // RFC 7235: any case
		{"scheme in upper case", []string{"Authorization", "BEARER s3cret"}, 200},
	} {
		code, body := post(t, base+"/v1/annotate", doc, tc.header...)
		if code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.status)
		}
		if code == 401 {
			var e apiErrorBody
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error.Message, "bearer token") {
				t.Errorf("%s: body %s, want a JSON error about the token", tc.name, body)
			}
		}
	}
	// The probes need no token.
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	if code, body := doRequest(t, req); code != http.StatusOK {
		t.Errorf("/readyz without a token = %d %s", code, body)
	}
	// Nor does the page: its requests to the API carry the token that
	// its user types in.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(string(page), "v1/annotate") {
		t.Errorf("GET / without a token: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}
}

// TestServeMetricsBounded: requests, unauthenticated ones included, choose
// no label of /metrics. Reproduction of the defect: 20,000 requests with
// random Host headers, all answered 401, grew /metrics from 8.9 KB to
// 28.7 MB (a series each, under server.address and server.port), and then
// the 2,000-series cap put real traffic under otel_metric_overflow. Here,
// after one request of each kind, many more with random Host headers,
// methods, paths and user agents add no series.
func TestServeMetricsBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "--token-file", file)
	n := 0
	send := func(method, path, host, agent string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host, n = host, n+1
		req.Header.Set("User-Agent", agent)
		doRequest(t, req) // the answer is read: the request is recorded
	}
	round := func(i int) {
		host, agent := fmt.Sprintf("h%d.example:%d", i, 1+i%65535), fmt.Sprintf("agent-%d", i)
		send(http.MethodPost, "/v1/annotate", host, agent)                  // 401
		send(http.MethodGet, "/v1/models", host, agent)                     // 401
		send(fmt.Sprintf("M%d", i), "/v1/annotate", host, agent)            // 405, method _OTHER
		send(http.MethodGet, fmt.Sprintf("/v1/nothing-%d", i), host, agent) // 404
	}
	series := func() (lines []string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		code, body := doRequest(t, req)
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "http_server_") {
				lines = append(lines, line)
			}
		}
		return lines
	}
	round(0)
	first := series()
	for i := 1; i <= 100; i++ {
		round(i)
	}
	second := series()
	if len(first) == 0 || len(second) != len(first) {
		t.Fatalf("%d http_server_ lines after 4 requests, %d after %d; e.g. %q", len(first), len(second), n, second[len(second)-1])
	}
	for _, line := range second {
		if strings.Contains(line, ".example") || strings.Contains(line, "agent-") || strings.Contains(line, "nothing-") || strings.Contains(line, `"M`) {
			t.Fatalf("a label a client chose: %s", line)
		}
	}
}

func TestServeUsageErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args     []string
		contains string
	}{
		{[]string{"serve"}, "--model is required"},
		{[]string{"serve", "--model", "synth:tiny", "--max-types", "0"}, "must be > 0"},
		{[]string{"serve", "--model", "synth:tiny", "--body-timeout", "0s"}, "must be > 0"},
		{[]string{"serve", "--model", "synth:tiny", "--token-file", empty}, "is empty"},
		{[]string{"serve", "--model", "synth:tiny", "--token-file", empty + ".missing"}, "--token-file"},
		{[]string{"serve", "--model", "synth:tiny", "stray"}, "unexpected argument"},
	} {
		code, _, errs := runCLI(t, "", tc.args...)
		checkOneLineError(t, code, 2, errs, tc.contains)
	}
}

// TestServeChecksBeforeListening: a model spec that cannot work (a missing
// file, one the GGUF gate refuses, a malformed endpoint, a missing
// tokenizer) exits 2 with one line, before anything listens or logs.
func TestServeChecksBeforeListening(t *testing.T) {
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.gguf")
	tiny := filepath.Join(dir, "tiny.gguf")
	if code, _, errs := runCLI(t, "", "model", "synth", "--preset", "tiny", "--out", tiny); code != 0 {
		t.Fatalf("model synth: %d %s", code, errs)
	}
	b, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model    []string
		contains string
	}{
		{[]string{"--model", filepath.Join(dir, "nope.gguf")}, "no such file"},
		{[]string{"--model", truncated}, "run past the end"},
		{[]string{"--model", "openai:ftp://gpu-1/v1"}, "is not an http:// or https:// URL"},
		{[]string{"--model", "openai:http://127.0.0.1:1/v1", "--tokenizer", filepath.Join(dir, "none.gguf")}, "the tokenizer"},
		{[]string{"--model", "synth:huge"}, "unknown preset"},
	} {
		code, out, errs := runCLI(t, "", append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.model...)...)
		checkOneLineError(t, code, 2, errs, tc.contains)
		if strings.Contains(errs+out, "listening") {
			t.Errorf("%v: it listened before it failed: %q", tc.model, errs)
		}
	}
}

// TestServeLogsDurations: the log shows a duration as Go writes it
// ("drain_timeout":"1.5s"), not in nanoseconds.
func TestServeLogsDurations(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append(slices.Clone(serveArgs), "--drain-timeout", "1500ms"), strings.NewReader(""), io.Discard, logs)
	}()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(logs.String(), `"msg":"serve: ready"`) {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before it was ready; log:\n%s", c, logs.String())
		case <-deadline:
			t.Fatalf("serve not ready; log:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited %d; log:\n%s", c, logs.String())
		}
	case <-deadline:
		t.Fatalf("serve did not stop; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"drain_timeout":"1.5s"`) {
		t.Errorf("the stop line does not say \"drain_timeout\":\"1.5s\":\n%s", logs.String())
	}
}

// TestServeRefusesNonUnicodeAsTheStreamDoes: the same bytes, a document
// whose text has an invalid UTF-8 byte or a lone surrogate escape, are a
// 400 from serve and a dead letter from the stream's decoder, with the
// same reason; a surrogate pair is taken by both, as one character.
func TestServeRefusesNonUnicodeAsTheStreamDoes(t *testing.T) {
	base := startServe(t)
	for _, c := range []struct {
		name, doc string
		reason    string // "" when the document is taken
	}{
		{"invalid byte", "{\"id\": \"a\", \"text\": \"Ada caf\xe9\", \"entity_types\": [\"person\"]}", record.ReasonInvalidUTF8},
		{"lone surrogate", `{"id": "b", "text": "Ada \ud800 wrote", "entity_types": ["person"]}`, record.ReasonInvalidUTF8},
		{"surrogate pair", `{"id": "c", "text": "Ada \ud83d\ude00 wrote", "entity_types": ["person"]}`, ""},
	} {
		code, body := post(t, base+"/v1/annotate", c.doc)
		_, err := consumers.DecodeJSON([]byte(c.doc), consumers.Limits{})
		if c.reason == "" {
			if code != http.StatusOK || err != nil {
				t.Errorf("%s: serve %d %s, stream %v; want both to take it", c.name, code, body, err)
			}
			continue
		}
		ie, ok := errors.AsType[*record.InputError](err)
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"code":"`+c.reason+`"`) || !ok || ie.Reason != c.reason {
			t.Errorf("%s: serve %d %s, stream %v; want both to refuse it as %s", c.name, code, body, err, c.reason)
		}
	}
}
