package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
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

// TestTextPromptTokenizesAsTemplate: a prompt written out as text, with
// "</s>" for EOS, gives the in-process engine the tokens of the template's
// prompt.
func TestTextPromptTokenizesAsTemplate(t *testing.T) {
	eng := tinyEngine(t)
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Ada Lovelace met Charles Babbage in London.", "x", "tab\tand\nnewline, ünïcode"} {
		p := tmpl.Prompt(text, "person")
		want, err := eng.Tokenize(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := eng.Tokenize(textPrompt(p.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: text prompt tokens %v, want the template's %v", text, got, want)
		}
	}
	// "</s>" at the edges and twice in a row.
	if got := textPrompt("</s>a</s></s>b").String(); got != "</s>a</s></s>b" {
		t.Errorf("textPrompt changed the text: %q", got)
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
