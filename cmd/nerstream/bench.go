package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
	modelPath := fset.String("model", "", "GGUF model file (required)")
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
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("--model is required")
	}
	if *docs <= 0 || *types <= 0 || *types > len(benchTypes) || *docTokens <= 0 || *maxNew <= 0 {
		return usagef("--docs, --doc-tokens and --max-new-tokens must be > 0, and --types within 1..%d", len(benchTypes))
	}
	opts := llama.DefaultOptions()
	opts.Threads, opts.GPULayers, opts.Sequences, opts.Cells, opts.BatchTokens = *threads, *gpuLayers, *sequences, *cells, *batchTokens
	opts.SubstringAnswers = *substring
	eng, err := loadEngine(*modelPath, opts)
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
	res := engineBench{Model: filepath.Base(*modelPath), Docs: *docs, Types: *types, DocTokens: tokens, MaxNewTokens: *maxNew,
		Threads: eng.Options().Threads, Sequences: eng.Options().Sequences, BatchTokens: eng.Options().BatchTokens, Substring: *substring}
	if res.PrefillLimitTokensPerS, err = eng.PrefillLimit(ctx); err != nil {
		return err
	}
	// Documents go to the engine as a stream does: in micro-batches, from
	// several callers at once, so that memory holds only what is in
	// flight.
	feed := func(generate func(context.Context, []model.PromptGroup, model.GenerateOptions) ([][]model.Completion, error), callers int) (int, error) {
		const chunk = 8
		var (
			mu       sync.Mutex
			prompts  int
			firstErr error
			wg       sync.WaitGroup
		)
		next := make(chan int)
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lo := range next {
					var groups []model.PromptGroup
					for d := lo; d < min(lo+chunk, len(texts)); d++ {
						var g model.PromptGroup
						for t := range *types {
							g.Prompts = append(g.Prompts, tmpl.Prompt(texts[d], benchTypes[t]))
						}
						groups = append(groups, g)
					}
					out, err := generate(ctx, groups, gen)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					for _, g := range out {
						for _, c := range g {
							prompts += c.PromptTokens
						}
					}
					mu.Unlock()
				}
			}()
		}
		for lo := 0; lo < len(texts); lo += chunk {
			next <- lo
		}
		close(next)
		wg.Wait()
		return prompts, firstErr
	}
	before := eng.Stats()
	start := time.Now()
	if res.PromptTokens, err = feed(eng.Generate, 4); err != nil {
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
		if _, err := feed(eng.GenerateUnbatched, 1); err != nil {
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

// benchTexts builds n distinct passages of about docTokens tokens each,
// and returns them with the mean tokens of a passage (measured on the
// first few).
func benchTexts(ctx context.Context, eng *llama.Engine, n, docTokens int) ([]string, int, error) {
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
