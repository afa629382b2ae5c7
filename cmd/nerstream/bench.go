package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
)

// runBench dispatches `nerstream bench engine` and `nerstream bench
// pipeline`. `bench broker` is the pipeline benchmark's broker process,
// started by it and not meant for users.
func runBench(ctx context.Context, s streams, args []string) error {
	if len(args) == 0 {
		return usagef("want a benchmark: engine or pipeline")
	}
	switch args[0] {
	case "engine":
		return runBenchEngine(ctx, s, args[1:])
	case "pipeline":
		return runBenchPipeline(ctx, s, args[1:])
	case "broker":
		return runBenchBroker(ctx, s, args[1:])
	case "-h", "--help", "help":
		return flag.ErrHelp
	}
	return usagef("unknown benchmark %q (want engine or pipeline)", args[0])
}

// engineBench is what `nerstream bench engine` prints.
type engineBench struct {
	Model        string `json:"model"`
	Docs         int    `json:"docs"`
	Types        int    `json:"types"`
	DocTokens    int    `json:"doc_tokens"`
	PromptTokens int    `json:"prompt_tokens"`
	MaxNewTokens int    `json:"max_new_tokens"`
	Threads      int    `json:"threads"`
	Sequences    int    `json:"sequences"`
	BatchTokens  int    `json:"batch_tokens"`
	Substring    bool   `json:"substring_answers"`

	NaiveDocsPerS  float64 `json:"naive_docs_per_s,omitempty"`
	EngineDocsPerS float64 `json:"engine_docs_per_s"`
	Speedup        float64 `json:"speedup,omitempty"`

	PrefillLimitTokensPerS  float64 `json:"prefill_limit_tokens_per_s"`
	EnginePrefillTokensPerS float64 `json:"engine_prefill_tokens_per_s"`
	PrefillRatio            float64 `json:"prefill_ratio"`

	EngineDecodeCalls    int     `json:"engine_decode_calls"`
	EngineAvgBatchTokens float64 `json:"engine_avg_batch_tokens"`
	SharedPrefixTokens   int     `json:"shared_prefix_tokens"`
	GeneratedTokens      int     `json:"generated_tokens"`

	PeakRSSMB   float64 `json:"peak_rss_mb"`
	ModelMB     float64 `json:"model_mb"`
	KVCacheMB   float64 `json:"kv_cache_mb"`
	RSSOverBase float64 `json:"rss_over_model_and_kv"`
}

// benchTypes are entity types of UniNER's test sets.
var benchTypes = []string{"person", "organization", "location", "award", "event", "country", "algorithm", "programming language",
	"conference", "product", "researcher", "field", "task", "metrics", "university", "misc"}

// benchWords make the benchmark's passages.
var benchWords = strings.Fields(`the of and a to in is was for on that with as by at from his her which it an were are this be has had
	Ada Lovelace Charles Babbage Analytical Engine London Royal Society Grace Hopper Navy Harvard COBOL Alan Turing Bletchley
	Park naive Bayes classifier Gaussian mixture model conference neural network research university award program language
	published paper algorithm learning data system theory computer science mathematics machine translation speech`)

func runBenchEngine(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench engine", flag.ContinueOnError)
	modelPath := fset.String("model", "", "GGUF model file, or synth:PRESET (required for the llama engine)")
	docs := fset.Int("docs", 16, "documents")
	types := fset.Int("types", 8, "entity types per document")
	docTokens := fset.Int("doc-tokens", 200, "tokens per document text")
	maxNew := fset.Int("max-new-tokens", 16, "cap on new tokens per answer; both sides do the same work")
	threads := fset.Int("threads", 0, "CPU threads (default: all)")
	gpuLayers := fset.Int("gpu-layers", -1, "layers to offload to a GPU: -1 all, 0 none")
	sequences := fset.Int("sequences", 0, "parallel sequences (default: the engine's)")
	cells := fset.Int("cells", 0, "KV cache cells (default: the engine's)")
	batchTokens := fset.Int("batch-tokens", 0, "tokens per llama_decode (default: the engine's)")
	skipNaive := fset.Bool("skip-naive", false, "do not run the one-prompt-at-a-time baseline")
	substring := fset.Bool("substring", false, "hold answers to substrings of their passage")
	engineName := fset.String("engine", "llama", "llama (in process) or openai (servers at --endpoint, against the in-process engine on --model when given)")
	var endpoints setFlag
	fset.Var(&endpoints, "endpoint", "openai engine: a server's base URL, like http://gpu-1:8081/v1; repeatable")
	clients := fset.Int("clients", 8, "openai engine: concurrent clients, each with one request in flight")
	dialect := fset.String("dialect", "llama-server", "openai engine: the servers' extensions, llama-server (and nerstream serve) or vllm")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *docs <= 0 || *types <= 0 || *types > len(benchTypes) || *docTokens <= 0 || *maxNew <= 0 {
		return usagef("--docs, --doc-tokens and --max-new-tokens must be > 0, and --types within 1..%d", len(benchTypes))
	}
	switch *engineName {
	case "llama":
	case "openai":
		if len(endpoints) == 0 {
			return usagef("--engine openai needs at least one --endpoint")
		}
		if *clients <= 0 {
			return usagef("--clients must be > 0")
		}
		return runBenchRemote(ctx, s, remoteBenchOptions{
			modelPath: *modelPath, endpoints: endpoints, dialect: *dialect, clients: *clients,
			docs: *docs, types: *types, docTokens: *docTokens, maxNew: *maxNew, threads: *threads, gpuLayers: *gpuLayers,
		})
	default:
		return usagef("--engine %q is not one of llama, openai", *engineName)
	}
	if *modelPath == "" {
		return usagef("--model is required")
	}
	opts := llama.DefaultOptions()
	opts.Threads, opts.GPULayers, opts.Sequences, opts.Cells, opts.BatchTokens = *threads, *gpuLayers, *sequences, *cells, *batchTokens
	opts.SubstringAnswers = *substring
	eng, name, err := openModel(*modelPath, opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	texts, tokens, err := benchTexts(ctx, eng, *docs, *docTokens)
	if err != nil {
		return err
	}
	gen := model.GenerateOptions{MaxNewTokens: *maxNew}
	res := engineBench{Model: name, Docs: *docs, Types: *types, DocTokens: tokens, MaxNewTokens: *maxNew,
		Threads: eng.Options().Threads, Sequences: eng.Options().Sequences, BatchTokens: eng.Options().BatchTokens, Substring: *substring}
	if res.PrefillLimitTokensPerS, err = eng.PrefillLimit(ctx); err != nil {
		return err
	}
	before := eng.Stats()
	start := time.Now()
	w := benchWork{texts: texts, types: benchTypes[:*types], tmpl: tmpl, gen: gen, chunk: 8}
	if _, res.PromptTokens, err = w.feed(ctx, slices.Repeat([]generateFunc{eng.Generate}, 4)); err != nil {
		return err
	}
	took := time.Since(start)
	st := eng.Stats()
	res.EngineDocsPerS = float64(*docs) / took.Seconds()
	calls, toks, dt := st.DecodeCalls-before.DecodeCalls, st.DecodeTokens-before.DecodeTokens, st.DecodeTime-before.DecodeTime
	res.EngineDecodeCalls = calls
	res.EngineAvgBatchTokens = float64(toks) / float64(max(calls, 1))
	res.EnginePrefillTokensPerS = float64(toks) / dt.Seconds()
	res.PrefillRatio = res.EnginePrefillTokensPerS / res.PrefillLimitTokensPerS
	res.SharedPrefixTokens = st.SharedTokens - before.SharedTokens
	res.GeneratedTokens = st.GeneratedTokens - before.GeneratedTokens
	if !*skipNaive {
		start = time.Now()
		if _, _, err := w.feed(ctx, []generateFunc{eng.GenerateUnbatched}); err != nil {
			return err
		}
		res.NaiveDocsPerS = float64(*docs) / time.Since(start).Seconds()
		res.Speedup = res.EngineDocsPerS / res.NaiveDocsPerS
	}
	res.PeakRSSMB = peakRSSMB()
	res.ModelMB = float64(eng.ModelBytes()) / (1 << 20)
	res.KVCacheMB = float64(eng.KVCacheBytes()) / (1 << 20)
	res.RSSOverBase = res.PeakRSSMB / (res.ModelMB + res.KVCacheMB)
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// generateFunc is an engine's Generate.
type generateFunc func(context.Context, []model.PromptGroup, model.GenerateOptions) ([][]model.Completion, error)

// benchWork is the documents of an engine benchmark and how they are sent.
type benchWork struct {
	texts []string
	types []string
	tmpl  *model.Template
	gen   model.GenerateOptions
	chunk int // documents per Generate call
}

// feed sends the documents to the engine as a stream does: in
// micro-batches of w.chunk, from one caller per generate function at once,
// so that memory holds only what is in flight. It returns each document's
// answers (one per type), and the prompt tokens of all.
func (w benchWork) feed(ctx context.Context, callers []generateFunc) ([][]string, int, error) {
	var (
		mu       sync.Mutex
		prompts  int
		firstErr error
		wg       sync.WaitGroup
	)
	answers := make([][]string, len(w.texts))
	next := make(chan int)
	for _, generate := range callers {
		wg.Go(func() {
			for lo := range next {
				hi := min(lo+w.chunk, len(w.texts))
				var groups []model.PromptGroup
				for d := lo; d < hi; d++ {
					var g model.PromptGroup
					for _, t := range w.types {
						g.Prompts = append(g.Prompts, w.tmpl.Prompt(w.texts[d], t))
					}
					groups = append(groups, g)
				}
				out, err := generate(ctx, groups, w.gen)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for g, comps := range out {
					for _, c := range comps {
						prompts += c.PromptTokens
						if c.Err != nil && firstErr == nil {
							firstErr = c.Err
						}
						answers[lo+g] = append(answers[lo+g], c.Text)
					}
				}
				mu.Unlock()
			}
		})
	}
	for lo := 0; lo < len(w.texts); lo += w.chunk {
		next <- lo
	}
	close(next)
	wg.Wait()
	return answers, prompts, firstErr
}

// benchTexts builds n distinct passages of about docTokens tokens each, as
// eng counts them, and returns them with the mean tokens of a passage
// (measured on the first few).
func benchTexts(ctx context.Context, eng model.TokenCounter, n, docTokens int) ([]string, int, error) {
	text := func(d, words int) string {
		w := make([]string, words)
		for i := range w {
			w[i] = benchWords[(d*31+i*7+i*i)%len(benchWords)]
		}
		return strings.Join(w, " ") + " (" + strconv.Itoa(d) + ")."
	}
	// Find how many words make docTokens tokens, on the first passage.
	words := 8
	for ; ; words += 4 {
		c, err := eng.TokenCount(ctx, text(0, words))
		if err != nil {
			return nil, 0, err
		}
		if c >= docTokens {
			break
		}
	}
	texts := make([]string, n)
	sum, measured := 0, 0
	for d := range texts {
		texts[d] = text(d, words)
		if d < 16 {
			c, err := eng.TokenCount(ctx, texts[d])
			if err != nil {
				return nil, 0, err
			}
			sum += c
			measured++
		}
	}
	return texts, sum / measured, nil
}

// peakRSSMB reads the process's peak resident set (VmHWM) from /proc.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
