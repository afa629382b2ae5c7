package openai

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/openai/openaitest"
)

// wordTokenizer is a test double of a local GGUF tokenizer: it counts as
// the openaitest doubles do (BOS, a token per word, "</s>" one token).
type wordTokenizer struct{ calls int }

func (w *wordTokenizer) TokenCount(ctx context.Context, text string) (int, error) {
	w.calls++
	return openaitest.TextTokens(text), nil
}

func (w *wordTokenizer) Tokenize(p model.Prompt) ([]int32, error) {
	n := 1
	for _, s := range p.Segments() {
		if s.Special {
			n++
		} else {
			n += openaitest.TextTokens(s.Text)
		}
	}
	return make([]int32, n), nil
}

// TestStringPromptsInParallel: the dialects that take one string prompt
// per request send a document's prompts at once, each request in a place
// of its own under the per-endpoint cap.
func TestStringPromptsInParallel(t *testing.T) {
	types := []string{"person", "organization", "location", "date"}
	for _, d := range []Dialect{DialectOllama, DialectOpenAI} {
		t.Run(string(d), func(t *testing.T) {
			// One document, four prompts, room for all: all four in
			// flight at once (the double holds each until they are).
			srv := openaitest.NewServer(string(d), openaitest.Options{WaitFor: 4})
			defer srv.Close()
			e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: d})
			out, err := e.Generate(context.Background(), []model.PromptGroup{group("Ada Lovelace in London.", types...)}, model.GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.MaxInFlight(); got != 4 {
				t.Errorf("%d requests in flight at most, want the document's 4 at once", got)
			}
			if out[0][0].Text != ` ["Ada Lovelace"]` || out[0][2].Text != ` ["London"]` || out[0][3].Text != " []" {
				t.Errorf("answers %+v", out[0])
			}

			// Two endpoints with room for one request each: never more,
			// and every prompt of three documents answered.
			a := openaitest.NewServer(string(d), openaitest.Options{Hold: 10 * time.Millisecond})
			b := openaitest.NewServer(string(d), openaitest.Options{Hold: 10 * time.Millisecond})
			defer a.Close()
			defer b.Close()
			e, _ = newTestEngine(t, Options{Endpoints: []string{a.Base(), b.Base()}, Dialect: d, MaxInFlightPerEndpoint: 1})
			groups := []model.PromptGroup{group("Ada Lovelace.", types...), group("London.", types...), group("Royal Society.", types...)}
			out, err = e.Generate(context.Background(), groups, model.GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for g, grp := range groups {
				for p, prompt := range grp.Prompts {
					if want := openaitest.Answer(prompt.String()); out[g][p].Err != nil || out[g][p].Text != want {
						t.Errorf("group %d prompt %d: %+v, want %q", g, p, out[g][p], want)
					}
				}
			}
			if a.MaxInFlight() != 1 || b.MaxInFlight() != 1 || len(a.Completions())+len(b.Completions()) != 12 {
				t.Errorf("in flight at most %d and %d, want 1 each; %d+%d requests for 12 prompts",
					a.MaxInFlight(), b.MaxInFlight(), len(a.Completions()), len(b.Completions()))
			}
			if s := e.Stats(); s.Requests != 12 || s.Endpoints[0].InFlight != 0 || s.Endpoints[1].InFlight != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestStringPromptRefusal: with one request per prompt, a 400 refuses that
// prompt alone; a 404 fails the call.
func TestStringPromptRefusal(t *testing.T) {
	// The "organization" prompt is one word longer than the "person" one:
	// a context between the two takes one and not the other.
	n := openaitest.Tokens(tmpl.Prompt("Ada Lovelace.", "person").String())
	srv := openaitest.NewServer(openaitest.OpenAI, openaitest.Options{ContextTokens: n})
	defer srv.Close()
	e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: DialectOpenAI})
	out, err := e.Generate(context.Background(), []model.PromptGroup{group("Ada Lovelace.", "person", "organization of note")}, model.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if out[0][0].Err != nil || out[0][0].Text != ` ["Ada Lovelace"]` || !errors.As(out[0][1].Err, &se) || se.StatusCode != http.StatusBadRequest {
		t.Errorf("answers %+v", out[0])
	}
}

// TestPromptTokensChecked: where the engine can count a prompt's tokens
// (a local tokenizer, or llama-server's /tokenize) and the server counted
// that prompt alone, a server that cut the prompt (Ollama past num_ctx, an
// older llama-server with context shift) or changed it (a template) gives
// that prompt an error; the other prompts are answered.
func TestPromptTokensChecked(t *testing.T) {
	short := "Ada Lovelace."
	long := "Ada Lovelace " + strings.Repeat("word ", 40)
	wrap := func(p string) string { return "### Instruction: " + p + " ### Response:" }
	for _, tc := range []struct {
		name    string
		server  string
		srv     openaitest.Options
		opts    Options
		checks  bool
		wantErr error // of the long document's prompts; nil: answered
	}{
		{"ollama with a tokenizer", openaitest.Ollama, openaitest.Options{ContextTokens: 40}, Options{Dialect: DialectOllama, LocalTokenizer: &wordTokenizer{}}, true, ErrPromptTruncated},
		{"ollama with a template", openaitest.Ollama, openaitest.Options{Template: wrap}, Options{Dialect: DialectOllama, LocalTokenizer: &wordTokenizer{}}, true, ErrPromptAltered},
		{"ollama without a tokenizer cannot tell", openaitest.Ollama, openaitest.Options{ContextTokens: 40}, Options{Dialect: DialectOllama}, false, nil},
		{"openai with a tokenizer", openaitest.OpenAI, openaitest.Options{ContextTokens: 1000}, Options{Dialect: DialectOpenAI, LocalTokenizer: &wordTokenizer{}}, true, nil},
		{"llama-server that truncates", openaitest.LlamaServer, openaitest.Options{ContextTokens: 40, Truncate: true}, Options{Dialect: DialectLlamaServer}, true, ErrPromptTruncated},
		{"llama-server with a tokenizer", openaitest.LlamaServer, openaitest.Options{ContextTokens: 40, Truncate: true}, Options{Dialect: DialectLlamaServer, LocalTokenizer: &wordTokenizer{}}, true, ErrPromptTruncated},
		{"vllm is not checked", openaitest.VLLM, openaitest.Options{ContextTokens: 1000}, Options{Dialect: DialectVLLM, LocalTokenizer: &wordTokenizer{}}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := openaitest.NewServer(tc.server, tc.srv)
			defer srv.Close()
			tc.opts.Endpoints = []string{srv.Base()}
			e, _ := newTestEngine(t, tc.opts)
			if e.ChecksPromptTokens() != tc.checks {
				t.Errorf("ChecksPromptTokens %v, want %v", e.ChecksPromptTokens(), tc.checks)
			}
			out, err := e.Generate(context.Background(), []model.PromptGroup{group(short, "person", "location"), group(long, "person", "location")}, model.GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for g, grp := range out {
				for p, c := range grp {
					want := tc.wantErr
					if g == 0 && want == ErrPromptTruncated {
						want = nil // the short document fits
					}
					switch {
					case want == nil && c.Err != nil:
						t.Errorf("group %d prompt %d: %v", g, p, c.Err)
					case want != nil && !errors.Is(c.Err, want):
						t.Errorf("group %d prompt %d: %v, want %v", g, p, c.Err, want)
					}
				}
			}
		})
	}
}

// TestPromptTokensCountedOnce: with llama-server's /tokenize, a passage is
// counted once for its group, and a question once for the call.
func TestPromptTokensCountedOnce(t *testing.T) {
	srv := openaitest.NewServer(openaitest.LlamaServer, openaitest.Options{})
	defer srv.Close()
	e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: DialectLlamaServer})
	types := []string{"person", "location", "organization"}
	if _, err := e.Generate(context.Background(), []model.PromptGroup{group("Ada Lovelace.", types...), group("London.", types...)}, model.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	tokenize := 0
	for _, r := range srv.Requests() {
		if r.Path == "/tokenize" {
			tokenize++
		}
	}
	if tokenize != 2+3 {
		t.Errorf("%d tokenize requests, want 2 passages and 3 questions", tokenize)
	}
}

// TestLocalTokenizer: with a local tokenizer, TokenCount sends nothing;
// the option needs the tokenizer loaded.
func TestLocalTokenizer(t *testing.T) {
	srv := openaitest.NewServer(openaitest.Ollama, openaitest.Options{})
	defer srv.Close()
	tok := &wordTokenizer{}
	e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: DialectOllama, LocalTokenizer: tok})
	if e.TokenCounting() != TokenizeLocal {
		t.Errorf("counting %q", e.TokenCounting())
	}
	if n, err := e.TokenCount(context.Background(), "Ada Lovelace wrote"); err != nil || n != 3 || tok.calls != 1 {
		t.Errorf("TokenCount = %d, %v (%d calls)", n, err, tok.calls)
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("requests %v", srv.Requests())
	}
	for _, opts := range []Options{
		{Endpoints: []string{srv.Base()}, Dialect: DialectOllama, Tokenizer: "uniner.gguf"},
		{Endpoints: []string{srv.Base()}, Dialect: DialectOllama, Tokenize: TokenizeLocal},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) accepted a tokenizer that is not loaded", opts)
		}
	}
	// Without one, Ollama's counts are estimated; llama-server's asked.
	for d, want := range map[Dialect]Tokenize{DialectOllama: TokenizeEstimate, DialectOpenAI: TokenizeEstimate, DialectLlamaServer: TokenizeLlamaServer, DialectGeneric: TokenizeEstimate} {
		e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: d})
		if e.TokenCounting() != want {
			t.Errorf("%q counts with %q, want %q", d, e.TokenCounting(), want)
		}
	}
}

func TestDialects(t *testing.T) {
	for d, list := range map[Dialect]bool{DialectGeneric: true, DialectVLLM: true, DialectLlamaServer: true, DialectOpenAI: false, DialectOllama: false} {
		if d.ListPrompts() != list {
			t.Errorf("%q.ListPrompts() = %v", d, !list)
		}
	}
	for _, d := range []Dialect{DialectGeneric, DialectOpenAI, DialectOllama} {
		if _, err := New(Options{Endpoints: []string{"http://x/v1"}, Dialect: d, GuidedJSON: true}); err == nil {
			t.Errorf("guided JSON with dialect %q accepted", d)
		}
	}
}
