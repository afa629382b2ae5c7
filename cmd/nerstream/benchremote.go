package main

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
)

// remoteBenchOptions are the flags of `nerstream bench engine --engine
// openai`.
type remoteBenchOptions struct {
	modelPath                      string
	endpoints                      []string
	dialect                        string
	clients                        int
	docs, types, docTokens, maxNew int
	threads, gpuLayers             int
}

// remoteBench is what `nerstream bench engine --engine openai` prints.
type remoteBench struct {
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

// runBenchRemote measures the openai engine against servers: clients
// concurrent callers, each an engine of its own with one request in flight,
// as that many nerstream run instances with one document each in flight
// would be. With --model it first runs the same documents through the
// in-process engine, for the ratio that the GPU worker pool must hold.
//
// Where the servers are nerstream serve on this machine, the two runs take
// turns: the server is idle while the in-process engine runs, and the
// in-process engine is idle while the server runs.
func runBenchRemote(ctx context.Context, s streams, o remoteBenchOptions) error {
	engines := make([]*openai.Engine, o.clients)
	for i := range engines {
		e, err := openai.New(openai.Options{Endpoints: o.endpoints, Dialect: openai.Dialect(o.dialect), MaxInFlightPerEndpoint: 1, Timeout: 10 * time.Minute})
		if err != nil {
			return usageError{err}
		}
		defer e.Close()
		engines[i] = e
	}
	var (
		res   remoteBench
		local *llama.Engine
	)
	counter := model.TokenCounter(engines[0])
	if o.modelPath != "" {
		opts := llama.DefaultOptions()
		opts.Threads, opts.GPULayers = o.threads, o.gpuLayers
		var err error
		if local, res.Model, err = openModel(o.modelPath, opts); err != nil {
			return err
		}
		defer local.Close()
		counter = local
	}
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	texts, tokens, err := benchTexts(ctx, counter, o.docs, o.docTokens)
	if err != nil {
		return err
	}
	res.Endpoints, res.Clients, res.Docs, res.Types, res.DocTokens, res.MaxNewTokens = o.endpoints, o.clients, o.docs, o.types, tokens, o.maxNew
	w := benchWork{texts: texts, types: benchTypes[:o.types], tmpl: tmpl, gen: model.GenerateOptions{MaxNewTokens: o.maxNew}}

	var want [][]string
	if local != nil {
		w.chunk = 8
		start := time.Now()
		if want, _, err = w.feed(ctx, slices.Repeat([]generateFunc{local.Generate}, 4)); err != nil {
			return err
		}
		res.InProcessDocsPerS = float64(o.docs) / time.Since(start).Seconds()
	}

	w.chunk = 1
	callers := make([]generateFunc, len(engines))
	for i, e := range engines {
		callers[i] = e.Generate
	}
	start := time.Now()
	got, prompts, err := w.feed(ctx, callers)
	if err != nil {
		return err
	}
	res.RemoteDocsPerS = float64(o.docs) / time.Since(start).Seconds()
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
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
