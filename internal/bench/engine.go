package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
)

// EngineResult is what `nerstream bench engine` prints.
type EngineResult struct {
	Model string `json:"model"`
	// Device is the device the figures were measured on: "" where
	// llama.cpp chose, "all" for several devices at once.
	Device       string `json:"device,omitempty"`
	Docs         int    `json:"docs"`
	Types        int    `json:"types"`
	DocTokens    int    `json:"doc_tokens"`
	PromptTokens int    `json:"prompt_tokens"`
	MaxNewTokens int    `json:"max_new_tokens"`
	// Threads is the fixed thread count, 0 (left out) for the adaptive
	// default; MeanThreads is the mean count of the measured decodes.
	Threads     int     `json:"threads,omitempty"`
	MeanThreads float64 `json:"mean_threads,omitempty"`
	Sequences   int     `json:"sequences,omitempty"`
	BatchTokens int     `json:"batch_tokens,omitempty"`
	Substring   bool    `json:"substring_answers"`

	NaiveDocsPerS  float64 `json:"naive_docs_per_s,omitempty"`
	EngineDocsPerS float64 `json:"engine_docs_per_s"`
	Speedup        float64 `json:"speedup,omitempty"`

	PrefillLimitTokensPerS  float64 `json:"prefill_limit_tokens_per_s,omitempty"`
	EnginePrefillTokensPerS float64 `json:"engine_prefill_tokens_per_s,omitempty"`
	PrefillRatio            float64 `json:"prefill_ratio,omitempty"`

	EngineDecodeCalls    int     `json:"engine_decode_calls"`
	EngineAvgBatchTokens float64 `json:"engine_avg_batch_tokens"`
	SharedPrefixTokens   int     `json:"shared_prefix_tokens"`
	// ResidentPrefixTokens are the shared prefix tokens that groups took
	// over from the resident prompt prefix (of SharedPrefixTokens).
	ResidentPrefixTokens int `json:"resident_prefix_tokens"`
	GeneratedTokens      int `json:"generated_tokens"`

	// With ScoresRounds: documents per second with scores off and on,
	// and the share of throughput that scores cost (1 - on/off).
	ScoresOffDocsPerS float64 `json:"scores_off_docs_per_s,omitempty"`
	ScoresOnDocsPerS  float64 `json:"scores_on_docs_per_s,omitempty"`
	ScoresOverhead    float64 `json:"scores_overhead,omitempty"`
	// ScoresDiffer counts the documents whose answers differ from the
	// first round's (scores off), over the later rounds off, then over
	// the rounds on: as for Resident.Differ, the count off is the noise
	// of batch make-up on a near-flat model, and the count on should be
	// alike (scores are read after the logits, and change no token).
	ScoresDiffer *[2]int `json:"scores_differ,omitempty"`
	// ScoreTimeShare is the time spent on scores over the time in
	// llama_decode during the engine phase (scores on): their cost
	// measured inside one run, whatever the machine's load does.
	ScoreTimeShare float64 `json:"score_time_share,omitempty"`
	// ScoresRounds are each round's figures, off then on, in run order.
	ScoresRounds [][2]float64 `json:"scores_rounds,omitempty"`

	// Resident compares the engine with the resident prompt prefix off
	// and on (ResidentRounds).
	Resident *ResidentResult `json:"resident,omitempty"`

	PeakRSSMB   float64 `json:"peak_rss_mb"`
	ModelMB     float64 `json:"model_mb,omitempty"`
	KVCacheMB   float64 `json:"kv_cache_mb,omitempty"`
	RSSOverBase float64 `json:"rss_over_model_and_kv,omitempty"`

	// SIMD compares the CPU's extensions with those ggml's CPU backend
	// was compiled with: a build missing some runs several times slower.
	SIMD *llama.SIMD `json:"simd,omitempty"`

	// Devices holds, when the model runs on several devices, each
	// device's figures measured alone; the figures above are then all the
	// devices at once, behind the one engine a stream uses.
	Devices []*EngineResult `json:"devices,omitempty"`
}

// ResidentResult is the engine phase with the resident prompt prefix off
// and on, alternating: each figure the median of its rounds.
type ResidentResult struct {
	OffDocsPerS float64 `json:"off_docs_per_s"`
	OnDocsPerS  float64 `json:"on_docs_per_s"`
	// Speedup is OnDocsPerS / OffDocsPerS.
	Speedup float64 `json:"speedup"`
	// Decode calls and tokens decoded (prompt and fed-back answer
	// tokens) per round.
	OffDecodeCalls  float64 `json:"off_decode_calls"`
	OnDecodeCalls   float64 `json:"on_decode_calls"`
	OffDecodeTokens float64 `json:"off_decode_tokens"`
	OnDecodeTokens  float64 `json:"on_decode_tokens"`
	// OnResidentTokens are the prefix tokens groups took over from the
	// resident prefix per round (on).
	OnResidentTokens float64 `json:"on_resident_tokens"`
	// Differ counts the documents whose answers differ from the first
	// round's (off), over the later rounds off, then over the rounds on.
	// With the default F16 cache, the rounding of a decode depends on the
	// make-up of its batch, which four callers vary from run to run, and
	// a synthetic model's near-flat logits turn that into other tokens:
	// the count off is that noise, the count on should be alike. The
	// tests prove the answers the same with ExactCache.
	Differ [2]int `json:"differ"`
	// Rounds are each round's documents per second, off then on, in run
	// order.
	Rounds [][2]float64 `json:"rounds"`
}

// benchTypes are entity types of UniNER's test sets.
var benchTypes = [...]string{"person", "organization", "location", "award", "event", "country", "algorithm", "programming language",
	"conference", "product", "researcher", "field", "task", "metrics", "university", "misc"}

// benchWords make the benchmark's passages.
var benchWords = strings.Fields(`the of and a to in is was for on that with as by at from his her which it an were are this be has had
	Ada Lovelace Charles Babbage Analytical Engine London Royal Society Grace Hopper Navy Harvard COBOL Alan Turing Bletchley
	Park naive Bayes classifier Gaussian mixture model conference neural network research university award program language
	published paper algorithm learning data system theory computer science mathematics machine translation speech`)

// EngineOptions are the settings of [Engine] (the flags of `nerstream bench
// engine`).
type EngineOptions struct {
	// Docs documents of about DocTokens tokens, each asked about Types
	// entity types (at most len(Types)), with answers of at most
	// MaxNewTokens tokens.
	Docs, Types, DocTokens, MaxNewTokens int
	// SkipNaive leaves out the one-prompt-at-a-time baseline.
	SkipNaive bool
	// ScoresRounds, when > 0, also measures what token log-probabilities
	// (entity scores) cost: that many rounds of the engine phase with
	// scores off and on, alternating, each figure the median of its
	// rounds.
	ScoresRounds int
	// ResidentRounds, when > 0, also compares the engine with the
	// resident prompt prefix off and on (llama.Engine.SetResidentPrefix):
	// that many rounds of the engine phase, alternating.
	ResidentRounds int
}

// MaxTypes is the most entity types a benchmark document is asked about.
const MaxTypes = len(benchTypes)

// Engine measures the in-process engine of m against answering the same
// prompts one at a time (see llama.Engine.GenerateUnbatched), and its
// prefill against the one-batch ceiling. On several devices it measures
// each device alone, then all of them together.
func Engine(ctx context.Context, m *engines.Model, o EngineOptions) (*EngineResult, error) {
	if len(m.Workers) == 0 {
		return nil, fmt.Errorf("%w: the engine benchmark runs an in-process model (a file, synth: or a reference)", ErrOptions)
	}
	if o.Docs <= 0 || o.Types <= 0 || o.Types > len(benchTypes) || o.DocTokens <= 0 || o.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("%w: docs, doc tokens and max new tokens must be > 0, and types within 1..%d", ErrOptions, len(benchTypes))
	}
	simd := llama.DetectSIMD()
	if len(m.Workers) == 1 {
		r, err := engineOne(ctx, m.Name, m.Workers[0], o)
		if r != nil {
			r.SIMD = &simd
		}
		return r, err
	}
	all := &EngineResult{Model: m.Name, Device: "all", Docs: o.Docs, Types: o.Types, MaxNewTokens: o.MaxNewTokens, SIMD: &simd}
	for _, w := range m.Workers {
		r, err := engineOne(ctx, m.Name, w, o)
		if err != nil {
			return nil, fmt.Errorf("on %s: %w", w.Device, err)
		}
		all.Devices = append(all.Devices, r)
	}
	w, tokens, err := newBenchWork(ctx, m.Engine, o)
	if err != nil {
		return nil, err
	}
	all.DocTokens = tokens
	before := workerStats(m.Workers)
	start := time.Now()
	// As many callers per device as engineOne gives one device.
	if _, all.PromptTokens, err = w.feed(ctx, slices.Repeat([]generateFunc{m.Engine.Generate}, 4*len(m.Workers))); err != nil {
		return nil, err
	}
	all.EngineDocsPerS = float64(o.Docs) / time.Since(start).Seconds()
	st := workerStats(m.Workers)
	all.EngineDecodeCalls = st.DecodeCalls - before.DecodeCalls
	all.EngineAvgBatchTokens = float64(st.DecodeTokens-before.DecodeTokens) / float64(max(all.EngineDecodeCalls, 1))
	all.SharedPrefixTokens = st.SharedTokens - before.SharedTokens
	all.ResidentPrefixTokens = st.ResidentTokens - before.ResidentTokens
	all.GeneratedTokens = st.GeneratedTokens - before.GeneratedTokens
	all.PeakRSSMB = peakRSSMB()
	return all, nil
}

// workerStats sums the workers' counters.
func workerStats(ws []engines.Worker) llama.Stats {
	var sum llama.Stats
	for _, w := range ws {
		st := w.Engine.Stats()
		sum.DecodeCalls += st.DecodeCalls
		sum.DecodeTokens += st.DecodeTokens
		sum.SharedTokens += st.SharedTokens
		sum.ResidentTokens += st.ResidentTokens
		sum.GeneratedTokens += st.GeneratedTokens
	}
	return sum
}

// engineOne measures one device's engine.
func engineOne(ctx context.Context, name string, wk engines.Worker, o EngineOptions) (*EngineResult, error) {
	eng := wk.Engine
	w, tokens, err := newBenchWork(ctx, eng, o)
	if err != nil {
		return nil, err
	}
	res := &EngineResult{Model: name, Device: wk.Device, Docs: o.Docs, Types: o.Types, DocTokens: tokens, MaxNewTokens: o.MaxNewTokens,
		Threads: eng.Options().Threads, Sequences: eng.Options().Sequences, BatchTokens: eng.Options().BatchTokens, Substring: eng.Options().SubstringAnswers}
	if res.PrefillLimitTokensPerS, err = eng.PrefillLimit(ctx); err != nil {
		return nil, err
	}
	before := eng.Stats()
	start := time.Now()
	if _, res.PromptTokens, err = w.feed(ctx, slices.Repeat([]generateFunc{eng.Generate}, 4)); err != nil {
		return nil, err
	}
	took := time.Since(start)
	st := eng.Stats()
	res.EngineDocsPerS = float64(o.Docs) / took.Seconds()
	calls, toks, dt := st.DecodeCalls-before.DecodeCalls, st.DecodeTokens-before.DecodeTokens, st.DecodeTime-before.DecodeTime
	res.EngineDecodeCalls = calls
	res.MeanThreads = float64(st.DecodeThreads-before.DecodeThreads) / float64(max(calls, 1))
	res.EngineAvgBatchTokens = float64(toks) / float64(max(calls, 1))
	res.EnginePrefillTokensPerS = float64(toks) / dt.Seconds()
	res.PrefillRatio = res.EnginePrefillTokensPerS / res.PrefillLimitTokensPerS
	res.ScoreTimeShare = (st.ScoreTime - before.ScoreTime).Seconds() / dt.Seconds()
	res.SharedPrefixTokens = st.SharedTokens - before.SharedTokens
	res.ResidentPrefixTokens = st.ResidentTokens - before.ResidentTokens
	res.GeneratedTokens = st.GeneratedTokens - before.GeneratedTokens
	if o.ScoresRounds > 0 {
		if err := scoresOverhead(ctx, res, w, eng.Generate, o); err != nil {
			return nil, err
		}
	}
	if o.ResidentRounds > 0 {
		if err := residentAB(ctx, res, w, eng, o); err != nil {
			return nil, err
		}
	}
	if !o.SkipNaive {
		start = time.Now()
		if _, _, err := w.feed(ctx, []generateFunc{eng.GenerateUnbatched}); err != nil {
			return nil, err
		}
		res.NaiveDocsPerS = float64(o.Docs) / time.Since(start).Seconds()
		res.Speedup = res.EngineDocsPerS / res.NaiveDocsPerS
	}
	res.PeakRSSMB = peakRSSMB()
	res.ModelMB = float64(eng.ModelBytes()) / (1 << 20)
	res.KVCacheMB = float64(eng.KVCacheBytes()) / (1 << 20)
	res.RSSOverBase = res.PeakRSSMB / (res.ModelMB + res.KVCacheMB)
	return res, nil
}

// scoresOverhead runs the engine phase o.ScoresRounds times with scores
// off and on, alternating (so that a machine's load drifts over both
// alike), and counts the answers that differ from the first round's.
// (It used to fail on any: four callers vary the batches from run to run,
// and on the tiny model's near-flat logits that alone changes answers.)
func scoresOverhead(ctx context.Context, res *EngineResult, w benchWork, generate generateFunc, o EngineOptions) error {
	var off, on []float64
	var first [][]string // the answers of the first round
	var differ [2]int
	for range o.ScoresRounds {
		for _, noScores := range []bool{true, false} {
			wk := w
			wk.gen.NoScores = noScores
			start := time.Now()
			answers, _, err := wk.feed(ctx, slices.Repeat([]generateFunc{generate}, 4))
			if err != nil {
				return err
			}
			rate := float64(o.Docs) / time.Since(start).Seconds()
			i := 1
			if noScores {
				off, i = append(off, rate), 0
				if first == nil {
					first = answers
					continue
				}
			} else {
				on = append(on, rate)
			}
			for d := range answers {
				if !slices.Equal(answers[d], first[d]) {
					differ[i]++
				}
			}
		}
	}
	res.ScoresDiffer = &differ
	for i := range off {
		res.ScoresRounds = append(res.ScoresRounds, [2]float64{off[i], on[i]})
	}
	res.ScoresOffDocsPerS, res.ScoresOnDocsPerS = median(off), median(on)
	res.ScoresOverhead = 1 - res.ScoresOnDocsPerS/res.ScoresOffDocsPerS
	return nil
}

// residentAB runs the engine phase o.ResidentRounds times with the
// resident prompt prefix off and on, alternating, and counts the answers
// that differ from the first round's (off). It leaves the prefix as the
// engine's options set it.
func residentAB(ctx context.Context, res *EngineResult, w benchWork, eng *llama.Engine, o EngineOptions) error {
	defer eng.SetResidentPrefix(!eng.Options().NoResidentPrefix)
	var rate, calls, toks, attached [2][]float64 // off, on
	var first [][]string
	r := &ResidentResult{}
	for range o.ResidentRounds {
		var round [2]float64
		for i, on := range []bool{false, true} {
			eng.SetResidentPrefix(on)
			before := eng.Stats()
			start := time.Now()
			answers, _, err := w.feed(ctx, slices.Repeat([]generateFunc{eng.Generate}, 4))
			if err != nil {
				return err
			}
			round[i] = float64(o.Docs) / time.Since(start).Seconds()
			st := eng.Stats()
			rate[i] = append(rate[i], round[i])
			calls[i] = append(calls[i], float64(st.DecodeCalls-before.DecodeCalls))
			toks[i] = append(toks[i], float64(st.DecodeTokens-before.DecodeTokens))
			attached[i] = append(attached[i], float64(st.ResidentTokens-before.ResidentTokens))
			if first == nil {
				first = answers
				continue
			}
			for d := range answers {
				if !slices.Equal(answers[d], first[d]) {
					r.Differ[i]++
				}
			}
		}
		r.Rounds = append(r.Rounds, round)
	}
	r.OffDocsPerS, r.OnDocsPerS = median(rate[0]), median(rate[1])
	r.Speedup = r.OnDocsPerS / r.OffDocsPerS
	r.OffDecodeCalls, r.OnDecodeCalls = median(calls[0]), median(calls[1])
	r.OffDecodeTokens, r.OnDecodeTokens = median(toks[0]), median(toks[1])
	r.OnResidentTokens = median(attached[1])
	res.Resident = r
	return nil
}

// newBenchWork makes the benchmark's documents, as counted by tc, and
// returns them with the mean tokens of a passage.
func newBenchWork(ctx context.Context, tc model.TokenCounter, o EngineOptions) (benchWork, int, error) {
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	texts, tokens, err := benchTexts(ctx, tc, o.Docs, o.DocTokens)
	if err != nil {
		return benchWork{}, 0, err
	}
	gen := model.GenerateOptions{MaxNewTokens: o.MaxNewTokens}
	return benchWork{texts: texts, types: benchTypes[:o.Types], tmpl: tmpl, gen: gen, chunk: 8}, tokens, nil
}

// PromptLine is one line of [WritePrompts]: a benchmark prompt as the
// engine decodes it, for baselines outside nerstream
// (scripts/hf_baseline.py).
type PromptLine struct {
	Doc  int     `json:"doc"`
	Type string  `json:"type"`
	IDs  []int32 `json:"ids"`
	// MaxNewTokens is the benchmark's cap on an answer.
	MaxNewTokens int `json:"max_new_tokens"`
}

// WritePrompts writes the prompts that [Engine] sends with options o, as
// JSON lines of [PromptLine], tokenized by m's engine (BOS included).
func WritePrompts(ctx context.Context, m *engines.Model, o EngineOptions, out io.Writer) error {
	if len(m.Workers) == 0 {
		return fmt.Errorf("%w: prompts come from an in-process model's tokenizer", ErrOptions)
	}
	eng := m.Workers[0].Engine
	w, _, err := newBenchWork(ctx, eng, o)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	for d, text := range w.texts {
		for _, t := range w.types {
			ids, err := eng.Tokenize(w.tmpl.Prompt(text, t))
			if err != nil {
				return err
			}
			if err := enc.Encode(PromptLine{Doc: d, Type: t, IDs: ids, MaxNewTokens: o.MaxNewTokens}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
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
