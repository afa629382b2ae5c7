package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/redact"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/openai"
)

// RemoteOptions are the settings of [Remote] (the flags of `nerstream bench
// engine --engine openai`).
type RemoteOptions struct {
	EngineOptions
	// Endpoints and Dialect are the servers'; Clients is the concurrent
	// callers, each with one document in flight (one request, or with a
	// dialect of string prompts, one per prompt).
	Endpoints []string
	Dialect   string
	Clients   int
	// OpenAI is what each client's engine starts from: the served model's
	// name, the API key, the tokenizer (loaded here once, for all of
	// them). Endpoints, Dialect, MaxInFlightPerEndpoint and Timeout are
	// the benchmark's.
	OpenAI openai.Options
	// Baseline, when set, is an in-process model that answers the same
	// documents first, in this process, for the ratio.
	Baseline *engines.Model
}

// RemoteResult is what `nerstream bench engine --engine openai` prints.
type RemoteResult struct {
	Model        string   `json:"model,omitempty"`
	Endpoints    []string `json:"endpoints"`
	Clients      int      `json:"clients"`
	Docs         int      `json:"docs"`
	Types        int      `json:"types"`
	DocTokens    int      `json:"doc_tokens"`
	PromptTokens int      `json:"prompt_tokens"`
	MaxNewTokens int      `json:"max_new_tokens"`

	// RemoteDocsPerS is the documents per second that the clients got
	// from the servers, one request per document.
	RemoteDocsPerS float64 `json:"remote_docs_per_s"`
	Requests       int64   `json:"requests"`
	Retries        int64   `json:"retries"`

	// InProcessDocsPerS is the same documents through the in-process
	// engine on --model, in this process, measured just before; Ratio is
	// remote over in-process. Both are absent without --model.
	InProcessDocsPerS float64 `json:"in_process_docs_per_s,omitempty"`
	Ratio             float64 `json:"ratio,omitempty"`
	// AnswersDiffer counts answers that differ between the two engines.
	AnswersDiffer *int `json:"answers_differ,omitempty"`
}

// Remote measures the openai engine against servers: clients
// concurrent callers, each an engine of its own with one document in flight,
// as that many nerstream run instances with one document each in flight
// would be. With --model it first runs the same documents through the
// in-process engine, for the ratio that the GPU worker pool must hold.
//
// Where the servers are nerstream serve on this machine, the two runs take
// turns: the server is idle while the in-process engine runs, and the
// in-process engine is idle while the server runs.
func Remote(ctx context.Context, o RemoteOptions) (*RemoteResult, error) {
	if len(o.Endpoints) == 0 || o.Clients <= 0 || o.Docs <= 0 || o.Types <= 0 || o.Types > len(benchTypes) || o.DocTokens <= 0 || o.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("%w: endpoints, clients, docs, doc tokens and max new tokens must be > 0, and types within 1..%d", ErrOptions, len(benchTypes))
	}
	eo := o.OpenAI
	eo.Endpoints, eo.Dialect, eo.MaxInFlightPerEndpoint, eo.Timeout = o.Endpoints, openai.Dialect(o.Dialect), 1, 10*time.Minute
	if !eo.Dialect.ListPrompts() {
		eo.MaxInFlightPerEndpoint = o.Types // one document: its prompts, one request each
	}
	if eo.Tokenizer != "" && eo.LocalTokenizer == nil {
		tok, err := engines.OpenTokenizer(ctx, eo.Tokenizer, engines.Options{})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer tok.Close()
		eo.LocalTokenizer = tok.Local
	}
	engines := make([]*openai.Engine, o.Clients)
	for i := range engines {
		e, err := openai.New(eo)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer e.Close()
		engines[i] = e
	}
	var (
		res   = &RemoteResult{}
		local model.Engine
	)
	counter := model.TokenCounter(engines[0])
	if o.Baseline != nil {
		local, res.Model = o.Baseline.Engine, o.Baseline.Name
		counter = local
	}
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	texts, tokens, err := benchTexts(ctx, counter, o.Docs, o.DocTokens)
	if err != nil {
		return nil, err
	}
	res.Clients, res.Docs, res.Types, res.DocTokens, res.MaxNewTokens = o.Clients, o.Docs, o.Types, tokens, o.MaxNewTokens
	for _, e := range o.Endpoints { // the report is printed and kept: no credentials
		res.Endpoints = append(res.Endpoints, redact.String(e))
	}
	w := benchWork{texts: texts, types: benchTypes[:o.Types], tmpl: tmpl, gen: model.GenerateOptions{MaxNewTokens: o.MaxNewTokens}}

	var want [][]string
	if local != nil {
		w.chunk = 8
		start := time.Now()
		if want, _, err = w.feed(ctx, slices.Repeat([]generateFunc{local.Generate}, 4)); err != nil {
			return nil, err
		}
		res.InProcessDocsPerS = float64(o.Docs) / time.Since(start).Seconds()
	}

	w.chunk = 1
	callers := make([]generateFunc, len(engines))
	for i, e := range engines {
		callers[i] = e.Generate
	}
	start := time.Now()
	got, prompts, err := w.feed(ctx, callers)
	if err != nil {
		return nil, err
	}
	res.RemoteDocsPerS = float64(o.Docs) / time.Since(start).Seconds()
	res.PromptTokens = prompts
	for _, e := range engines {
		st := e.Stats()
		res.Requests += st.Requests
		res.Retries += st.Retries
	}
	if local != nil {
		res.Ratio = res.RemoteDocsPerS / res.InProcessDocsPerS
		differ := 0
		for d := range want {
			for k := range want[d] {
				if k >= len(got[d]) || got[d][k] != want[d][k] {
					differ++
				}
			}
		}
		res.AnswersDiffer = &differ
	}
	return res, nil
}
