package openai

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/openai/openaitest"
)

// conformanceCases pairs each dialect with the test double of its server;
// perPrompt says the dialect sends one string prompt per request.
var conformanceCases = []struct {
	dialect   Dialect
	server    string
	perPrompt bool
}{
	{"vllm", openaitest.VLLM, false},
	{"llama-server", openaitest.LlamaServer, false},
	{"openai", openaitest.OpenAI, true},
	{"ollama", openaitest.Ollama, true},
}

// TestConformance runs the engine against a test double of each dialect's
// server (openaitest), which accepts only that server's request shape and
// answers in its reply shape: every prompt answered, one request per
// document where the server takes a list of prompts and one per prompt
// where it takes only a string, greedy decoding as the server reads the
// request, and the server's token counts.
func TestConformance(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(string(tc.dialect), func(t *testing.T) {
			srv := openaitest.NewServer(tc.server, openaitest.Options{})
			defer srv.Close()
			e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: tc.dialect, Model: "uniner"})
			groups, _ := testGroups()
			out, err := e.Generate(context.Background(), groups, model.GenerateOptions{MaxNewTokens: 64})
			if err != nil {
				t.Fatal(err)
			}
			prompts := 0
			for g, grp := range groups {
				for p, prompt := range grp.Prompts {
					prompts++
					c := out[g][p]
					if want := openaitest.Answer(prompt.String()); c.Err != nil || c.Text != want {
						t.Errorf("group %d prompt %d: %q, %v; want %q", g, p, c.Text, c.Err, want)
					}
				}
			}
			if t.Failed() {
				return
			}

			reqs := srv.Completions()
			if tc.perPrompt && len(reqs) != prompts {
				t.Errorf("%d requests for %d prompts, want one each", len(reqs), prompts)
			}
			if !tc.perPrompt && len(reqs) != len(groups) {
				t.Errorf("%d requests for %d documents, want one each", len(reqs), len(groups))
			}
			for _, r := range reqs {
				if _, isString := r.Body["prompt"].(string); isString != tc.perPrompt {
					t.Errorf("prompt %T", r.Body["prompt"])
				}
				if r.Body["temperature"] != float64(0) || r.Body["max_tokens"] != float64(64) {
					t.Errorf("request %v: not greedy with max_tokens 64", r.Body)
				}
				if stop, _ := r.Body["stop"].([]any); len(stop) != 1 || stop[0] != model.EOS {
					t.Errorf("stop %v", r.Body["stop"])
				}
				if tc.perPrompt && (r.Body["top_p"] != float64(1) || r.Body["frequency_penalty"] != float64(0) || r.Body["presence_penalty"] != float64(0)) {
					t.Errorf("request %v: OpenAI's neutral sampling settings not sent", r.Body)
				}
				if tc.server == openaitest.Ollama {
					// As Ollama's OpenAI layer maps them: its defaults
					// (temperature 1 when absent) must not apply.
					o := r.Options
					if o["temperature"] != float32(0) || o["top_p"] != float32(1) || o["frequency_penalty"] != float32(0) ||
						o["presence_penalty"] != float32(0) || o["num_predict"] != 64 {
						t.Errorf("Ollama's options %v: not greedy", o)
					}
				}
			}

			// Token counts: the server's own, per prompt where it gives
			// them (vLLM gives a request's total, spread over its prompts).
			for g, grp := range groups {
				sum, want := 0, 0
				for p, prompt := range grp.Prompts {
					n := openaitest.Tokens(prompt.String())
					if tc.server != openaitest.VLLM && out[g][p].PromptTokens != n {
						t.Errorf("group %d prompt %d: %d prompt tokens, the server counted %d", g, p, out[g][p].PromptTokens, n)
					}
					sum += out[g][p].PromptTokens
					want += n
				}
				if sum != want {
					t.Errorf("group %d: %d prompt tokens, the server counted %d", g, sum, want)
				}
			}
		})
	}
}

// TestConformanceServedModel: the servers that serve several models answer
// 404 to a request for another one, or for none, which fails the call.
func TestConformanceServedModel(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(string(tc.dialect), func(t *testing.T) {
			srv := openaitest.NewServer(tc.server, openaitest.Options{Model: "uniner"})
			defer srv.Close()
			for _, name := range []string{"uniner", "other"} {
				e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: tc.dialect, Model: name})
				_, err := e.Generate(context.Background(), []model.PromptGroup{group("Ada Lovelace.", "person", "location")}, model.GenerateOptions{})
				var se *StatusError
				switch {
				case name == "uniner" || tc.server == openaitest.LlamaServer:
					if err != nil {
						t.Errorf("model %q: %v", name, err)
					}
				case !errors.As(err, &se) || se.StatusCode != http.StatusNotFound:
					t.Errorf("model %q: %v, want the server's 404", name, err)
				}
			}
		})
	}
}

// TestConformanceTooLong: a prompt past the server's context is a 400 for
// that document's prompts alone (its request, or each of its requests),
// and the other documents are answered.
func TestConformanceTooLong(t *testing.T) {
	for _, tc := range conformanceCases {
		if tc.server == openaitest.Ollama {
			continue // it cuts the prompt instead: TestPromptTokensChecked
		}
		t.Run(string(tc.dialect), func(t *testing.T) {
			srv := openaitest.NewServer(tc.server, openaitest.Options{ContextTokens: 40})
			defer srv.Close()
			e, _ := newTestEngine(t, Options{Endpoints: []string{srv.Base()}, Dialect: tc.dialect})
			long := "Ada Lovelace " + string(slices.Repeat([]byte("word "), 40))
			out, err := e.Generate(context.Background(), []model.PromptGroup{group("Ada Lovelace.", "person"), group(long, "person", "location")}, model.GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if out[0][0].Err != nil || out[0][0].Text != ` ["Ada Lovelace"]` {
				t.Errorf("short document: %+v", out[0][0])
			}
			for p, c := range out[1] {
				var se *StatusError
				if !errors.As(c.Err, &se) || se.StatusCode != http.StatusBadRequest {
					t.Errorf("long document, prompt %d: %v, want the server's 400", p, c.Err)
				}
			}
		})
	}
}
