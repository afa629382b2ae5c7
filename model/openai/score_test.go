package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/model"
)

func TestTokenLogProbs(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	want := []model.TokenLogProb{{Bytes: 2, LogProb: -0.5}, {Bytes: 3, LogProb: -1}, {Bytes: 2, LogProb: 0}}
	cases := []struct {
		name string
		lp   *openaiapi.Logprobs
		n    int
		want []model.TokenLogProb
	}{
		{"none", nil, 7, nil},
		{"OpenAI's form", &openaiapi.Logprobs{Tokens: []string{` [`, `"A"`, `]`}, TokenLogprobs: []*float64{f(-0.5), f(-1), f(0)}}, 6,
			[]model.TokenLogProb{{Bytes: 2, LogProb: -0.5}, {Bytes: 3, LogProb: -1}, {Bytes: 1, LogProb: 0}}},
		{"OpenAI's form, spelling the answer", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]`}, TokenLogprobs: []*float64{f(-0.5), f(-1), f(0)}}, 7, want},
		{"the chat form, bytes before text", &openaiapi.Logprobs{Content: []openaiapi.TokenLogprob{
			{Token: `["`, Logprob: f(-0.5)}, {Token: "\ufffd", Logprob: f(-1), Bytes: []int{0xc3}}, {Token: `"]`, Logprob: f(0)}}}, 5,
			[]model.TokenLogProb{{Bytes: 2, LogProb: -0.5}, {Bytes: 1, LogProb: -1}, {Bytes: 2, LogProb: 0}}},
		{"EOS and what follows are not read", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]`, `</s>`, `junk`}, TokenLogprobs: []*float64{f(-0.5), f(-1), f(0), f(-2), nil}}, 7, want},
		{"an empty answer", &openaiapi.Logprobs{Tokens: []string{}, TokenLogprobs: []*float64{}}, 0, []model.TokenLogProb{}},
		{"a missing log-prob", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]`}, TokenLogprobs: []*float64{f(-0.5), nil, f(0)}}, 7, nil},
		{"a positive log-prob", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]`}, TokenLogprobs: []*float64{f(-0.5), f(3), f(0)}}, 7, nil},
		{"lists of other lengths", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]`}, TokenLogprobs: []*float64{f(-0.5)}}, 7, nil},
		{"a token across the answer's end", &openaiapi.Logprobs{Tokens: []string{`["`, `Ada`, `"]</s>`}, TokenLogprobs: []*float64{f(-0.5), f(-1), f(0)}}, 7, nil},
		{"too few tokens", &openaiapi.Logprobs{Tokens: []string{`["`}, TokenLogprobs: []*float64{f(-0.5)}}, 7, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := tokenLogProbs(c.lp, c.n)
			if (got == nil) != (c.want == nil) || !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestLogprobsDouble: against a double of vLLM that returns known token
// log-probabilities, completions carry them, and the engine asks for them.
// Against one that returns none, completions have none, and the engine says
// so once in the log, however many answers lack them.
func TestLogprobsDouble(t *testing.T) {
	var asked []*int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req openaiapi.CompletionRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		asked = append(asked, req.Logprobs)
		prompts, _ := openaiapi.Strings(req.Prompt)
		resp := openaiapi.CompletionResponse{Usage: &openaiapi.Usage{PromptTokens: openaiapi.Ptr(10), CompletionTokens: openaiapi.Ptr(3)}}
		for i := range prompts {
			c := openaiapi.Choice{Index: openaiapi.Ptr(i), Text: openaiapi.Ptr(` ["Ada"]`)}
			if strings.Contains(prompts[i], "person") {
				c.Logprobs = &openaiapi.Logprobs{Tokens: []string{` ["`, `Ada`, `"]`}, TokenLogprobs: []*float64{openaiapi.Ptr(-0.1), openaiapi.Ptr(math.Log(0.5)), openaiapi.Ptr(math.Log(0.8))}}
			}
			resp.Choices = append(resp.Choices, c)
		}
		json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	e, _ := newTestEngine(t, Options{Endpoints: []string{srv.URL + "/v1"}, Dialect: DialectVLLM, Tokenize: TokenizeEstimate,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	g := model.PromptGroup{Prompts: []model.Prompt{tmpl.Prompt("Ada wrote.", "person"), tmpl.Prompt("Ada wrote.", "place"), tmpl.Prompt("Ada wrote.", "thing")}}
	for range 2 {
		out, err := e.Generate(context.Background(), []model.PromptGroup{g}, model.GenerateOptions{MaxNewTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		if got := out[0][0].Tokens; len(got) != 3 || got[1].Bytes != 3 || got[1].LogProb != math.Log(0.5) {
			t.Errorf("person: tokens %v", got)
		}
		if out[0][1].Tokens != nil || out[0][2].Tokens != nil {
			t.Errorf("log-probs where the server gave none: %v %v", out[0][1].Tokens, out[0][2].Tokens)
		}
	}
	if n := strings.Count(logs.String(), "no token log-probabilities"); n != 1 {
		t.Errorf("%d log lines about missing log-probs, want 1:\n%s", n, logs.String())
	}
	for _, a := range asked {
		if a == nil || *a != 1 {
			t.Errorf("request asked for logprobs %v, want 1", a)
		}
	}
}
