package llama

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
)

// Options configure an [Engine]. Zero values take the defaults, except
// GPULayers, where 0 means none; [DefaultOptions] sets it to all.
type Options struct {
	// Threads is the number of CPU threads for decoding, fixed. Default
	// (0): chosen before each decode, as many as there are CPUs that
	// nothing else is running on (read from /proc/loadavg on Linux), at
	// least 1 and at most GOMAXPROCS (which follows the cgroup CPU limit)
	// and the physical cores; elsewhere that ceiling, fixed. ggml's
	// threads spin at a barrier after every graph node, so more threads
	// than free CPUs slows a decode by orders of magnitude (threads.go).
	Threads int
	// GPULayers is the number of layers to offload to the GPU: -1 for
	// all, 0 for none. It matters only when a GPU backend is loaded.
	GPULayers int
	// Device is where the model runs: a device of [Devices] by name
	// ("CPU", "Vulkan0", "CUDA0"), the model and its KV cache whole on it
	// (GPULayers aside, which still bounds the offload). Default: "",
	// llama.cpp's choice: every GPU device of the loaded backends, else
	// the CPU.
	Device string
	// Sequences is the number of sequences decoded together (n_seq_max):
	// one per entity type of the documents in flight. Default: 64, at
	// most 256.
	Sequences int
	// Cells is the size of the unified KV cache in tokens, shared by all
	// sequences. Default: [DefaultCells].
	Cells int
	// BatchTokens is the most tokens one llama_decode call takes
	// (n_batch). Default: 512.
	BatchTokens int
	// ExactCache keeps the KV cache in F32 and turns flash attention off.
	// It costs memory and speed, and makes decoding depend on a batch's
	// make-up only through float rounding order (the equivalence test
	// uses it). Default: false (F16 cache, flash attention as llama.cpp
	// chooses).
	ExactCache bool
	// SubstringAnswers holds every string of an answer to a substring of
	// the passage it is about, so that the model cannot name what the text
	// does not hold. Default: false (off), as the official decoding.
	SubstringAnswers bool
	// NoGrammar turns off the grammar that holds answers to a JSON array
	// of strings. Default: false (grammar on).
	NoGrammar bool
	// NoResidentPrefix turns off the resident prompt prefix: the tokens
	// that every prompt begins with, decoded once and kept in the KV cache
	// for the engine's life (see the package doc). It is there to measure
	// what the prefix saves (bench engine --resident-rounds); answers are
	// the same either way. Default: false (on).
	NoResidentPrefix bool
	// VocabOnly loads the tokenizer without weights: TokenCount works,
	// Generate does not.
	VocabOnly bool
	// Logger receives llama.cpp's log lines, at debug level. llama.cpp
	// logs through one callback for the whole process, so the logger of
	// the latest Load that gives one receives the lines of every engine,
	// from the start of that Load on. Default: nil, which leaves the
	// current one (at first slog.Default()).
	Logger *slog.Logger
}

// maxSequences is llama.cpp's limit on sequence ids (LLAMA_MAX_SEQ).
const maxSequences = 256

// DefaultCells is the KV cache's default size in tokens, shared by every
// sequence in flight.
const DefaultCells = 8192

// DefaultOptions returns the options with every default set, GPU offload
// of all layers included.
func DefaultOptions() Options {
	return Options{GPULayers: -1}
}

func (o *Options) fill() error {
	if o.Threads < 0 {
		return fmt.Errorf("llama: %d threads; want 0 (adaptive) or more", o.Threads)
	}
	if o.Sequences <= 0 {
		o.Sequences = 64
	}
	if o.Sequences > maxSequences {
		return fmt.Errorf("llama: %d sequences is over llama.cpp's limit of %d", o.Sequences, maxSequences)
	}
	if o.Cells <= 0 {
		o.Cells = DefaultCells
	}
	if o.BatchTokens <= 0 {
		o.BatchTokens = 512
	}
	if o.BatchTokens < 8 {
		return fmt.Errorf("llama: batch of %d tokens is too small", o.BatchTokens)
	}
	return nil
}

// Engine runs a GGUF model in-process. It implements [model.Engine] and is
// safe for concurrent use: requests from all callers feed one continuous
// batch.
type Engine struct {
	path      string
	opts      Options
	model     *cModel
	lctx      *cContext
	voc       vocab
	nCtxTrain int
	grammar   *cGrammar // the root each sequence clones; nil without grammar
	sched     *scheduler

	closeOnce sync.Once
	// life guards the model's memory: calls that read it (tokenizing,
	// sizes) hold it shared; Close holds it alone while it frees the
	// model.
	life   sync.RWMutex
	closed bool

	stats  counters
	queued atomic.Int64 // prompts of the requests in Generate
}

// Stats are counters of an engine's work since it was loaded.
type Stats struct {
	// DecodeCalls, DecodeTokens and DecodeTime are the llama_decode
	// calls, the tokens they took, and the time spent in them.
	DecodeCalls  int
	DecodeTokens int
	DecodeTime   time.Duration
	// PromptTokens counts prompt tokens as prompts have them (a shared
	// prefix once per prompt); SharedTokens counts the prefix tokens that
	// sharing saved from decoding.
	PromptTokens int
	SharedTokens int
	// ResidentTokens counts the prefix tokens, of SharedTokens, that
	// groups took over from the resident prompt prefix.
	ResidentTokens int
	// GeneratedTokens counts tokens generated.
	GeneratedTokens int
	// DecodeThreads sums the CPU threads of each decode: divided by
	// DecodeCalls, the mean thread count.
	DecodeThreads int
	// ScoreTime is the time spent on token log-probabilities (scores),
	// one log-sum-exp per generated token: beside DecodeTime, their cost.
	ScoreTime time.Duration
}

// ErrClosed is returned by an engine that was closed; it wraps
// [model.ErrClosed].
var ErrClosed = fmt.Errorf("llama: %w", model.ErrClosed)

// ErrPromptTooLong is a prompt that, with room for its answer, does not fit
// the model's context; it wraps [model.ErrPromptTooLong].
var ErrPromptTooLong = fmt.Errorf("llama: %w", model.ErrPromptTooLong)

// Load loads a GGUF model and starts its scheduler. It first checks the
// file in Go (see the package doc, Safety): a file that llama.cpp would
// abort on, or refuse, is refused with an error that wraps
// [gguf.ErrFormat] or [gguf.ErrModel] before any C code sees it.
func Load(path string, opts Options) (*Engine, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := checkFile(path, opts.VocabOnly); err != nil {
		return nil, err
	}
	return load(path, opts)
}

// load is Load after the checks: opts filled, the file checked.
func load(path string, opts Options) (*Engine, error) {
	if opts.Logger != nil {
		setLogger(opts.Logger)
	}
	devices, err := deviceList(opts.Device)
	if err != nil {
		return nil, err
	}
	m, err := loadModel(path, opts.GPULayers, opts.VocabOnly, devices)
	if err != nil {
		return nil, fmt.Errorf("llama: loading %s: %w", path, err)
	}
	e := &Engine{path: path, opts: opts, model: m}
	e.voc = newVocab(m.vocab())
	e.nCtxTrain = m.nCtxTrain()
	if err := e.findSpecials(); err != nil {
		m.free()
		return nil, err
	}
	if opts.VocabOnly {
		return e, nil
	}
	if opts.Device == "CPU" || (opts.Device == "" && !SupportsGPU()) {
		warnSIMD(opts.Logger)
	}
	// One more sequence id than Sequences, for the resident prefix, within
	// llama.cpp's limit; at the limit the engine runs without it.
	sequences, resident := opts.Sequences, int32(-1)
	if opts.Sequences < maxSequences {
		sequences, resident = opts.Sequences+1, int32(opts.Sequences)
	}
	lctx, err := newContext(m, contextParams{
		cells:       opts.Cells,
		batchTokens: opts.BatchTokens,
		sequences:   sequences,
		threads:     max(opts.Threads, 1),
		exact:       opts.ExactCache,
	})
	if err != nil {
		m.free()
		return nil, fmt.Errorf("llama: creating a context for %s: %w", path, err)
	}
	e.lctx = lctx
	e.opts.Cells = lctx.cells()
	cfg := schedConfig{
		sequences:   e.opts.Sequences,
		cells:       e.opts.Cells,
		batchTokens: e.opts.BatchTokens,
		substring:   e.opts.SubstringAnswers,
		resident:    -1,
	}
	if lctx.unified {
		// Attaching to the resident prefix's cells copies nothing only
		// in a unified KV cache (one stream for every sequence).
		cfg.resident = resident
	}
	cfg.pieces, cfg.eog = e.voc.pieces()
	if !opts.NoGrammar {
		g, err := newGrammar(e.voc.c)
		if err != nil {
			e.free()
			return nil, fmt.Errorf("llama: %w", err)
		}
		e.grammar = g
		cfg.grammar = g
	}
	dec := &threadedDecoder{decoder: lctx, source: newThreadSource(opts.Threads), set: lctx.setThreads, cur: max(opts.Threads, 1), stats: &e.stats}
	e.sched = newScheduler(dec, cfg, &e.stats)
	e.sched.residentOn.Store(!opts.NoResidentPrefix)
	e.sched.start()
	return e, nil
}

// ErrUnknownDevice is a device that no loaded backend offers.
var ErrUnknownDevice = errors.New("llama: unknown device")

// deviceList is the devices of loadModel for a device name: nil for "",
// none for the CPU, else the one device of that name.
func deviceList(name string) ([]cDevice, error) {
	if name == "" {
		return nil, nil
	}
	var names []string
	for _, d := range cDevices() {
		if d.name() == name {
			if d.kind() == DeviceCPU {
				return []cDevice{}, nil
			}
			return []cDevice{d}, nil
		}
		names = append(names, d.name())
	}
	return nil, fmt.Errorf("%w %q (there are: %s; GPU backends load from model.backends_dir)", ErrUnknownDevice, name, strings.Join(names, ", "))
}

// checkFile refuses, in Go, a path that is not a GGUF file llama.cpp loads
// safely: a folder, a file that is not GGUF, or one that the gate
// (gguf.File.CheckLlama) refuses, for a whole model or for its vocabulary
// alone.
func checkFile(path string, vocabOnly bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("llama: %s is a folder, not a GGUF file", path)
	}
	mode := gguf.LoadModel
	if vocabOnly {
		mode = gguf.LoadVocab
	}
	if _, err := gguf.OpenLlama(path, mode); err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	return nil
}

// ErrVocab is a model that llama.cpp loads, but whose vocabulary cannot
// write UniNER's prompt: it has no single special token for "</s>". The
// file is at fault, as with the gate's refusals.
var ErrVocab = errors.New("llama: the vocabulary cannot write UniNER's prompt")

// findSpecials finds the token of each special token the prompt template
// uses.
func (e *Engine) findSpecials() error {
	e.voc.special = map[string]int32{}
	toks, err := e.voc.tokenizeMode(model.EOS, true)
	if err != nil {
		return err
	}
	if len(toks) != 1 {
		// Found by random edits of a model: a file whose
		// tokenizer.ggml.token_type key is gone (or misspelt) loads, with
		// every token a normal one, and "</s>" is then text.
		return fmt.Errorf("%w: %q is %d tokens %v, not one special token (a LLaMA vocabulary marks it a control token in %s)",
			ErrVocab, model.EOS, len(toks), toks, gguf.KeyTokenTypes)
	}
	e.voc.special[model.EOS] = toks[0]
	return nil
}

// Close stops the scheduler, fails what is in flight with [ErrClosed], and
// frees the model. It is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		if e.sched != nil {
			e.sched.stop()
		}
		e.life.Lock()
		e.closed = true
		e.free()
		e.life.Unlock()
	})
	return nil
}

func (e *Engine) free() {
	if e.grammar != nil {
		e.grammar.free()
		e.grammar = nil
	}
	if e.lctx != nil {
		e.lctx.free()
		e.lctx = nil
	}
	if e.model != nil {
		e.model.free()
		e.model = nil
	}
}

// ContextTokens implements model.Engine: the context the model was trained
// with, the budget of one prompt and its answer.
func (e *Engine) ContextTokens() int {
	return min(e.nCtxTrain, e.opts.Cells)
}

// TokenCount implements model.Engine.
func (e *Engine) TokenCount(ctx context.Context, text string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return 0, ErrClosed
	}
	toks, err := e.voc.tokenize(text)
	if err != nil {
		return 0, fmt.Errorf("llama: %w", err)
	}
	return len(toks), nil
}

// Tokenize returns the tokens of a prompt as the engine decodes it: BOS if
// the vocabulary asks for it, then each segment, special tokens only where
// the template has them.
func (e *Engine) Tokenize(p model.Prompt) ([]int32, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	var out []int32
	if e.voc.addBOS {
		out = append(out, e.voc.bos)
	}
	for _, s := range p.Segments() {
		if s.Special {
			id, ok := e.voc.special[s.Text]
			if !ok {
				return nil, fmt.Errorf("llama: no token for the special %q", s.Text)
			}
			out = append(out, id)
			continue
		}
		toks, err := e.voc.tokenize(s.Text)
		if err != nil {
			return nil, fmt.Errorf("llama: %w", err)
		}
		out = append(out, toks...)
	}
	return out, nil
}

// Token returns a token of the vocabulary: its spelling and the text it
// stands for, to show a prompt's tokens (nerstream prompt --tokens). An id
// outside the vocabulary is an error.
func (e *Engine) Token(id int32) (Token, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return Token{}, ErrClosed
	}
	tok, err := e.voc.token(id)
	if err != nil {
		return Token{}, fmt.Errorf("llama: %w", err)
	}
	return tok, nil
}

// PromptTokens returns the tokens of a prompt as the engine decodes it
// (see [Engine.Tokenize]), each with its spelling and text.
func (e *Engine) PromptTokens(p model.Prompt) ([]Token, error) {
	ids, err := e.Tokenize(p)
	if err != nil {
		return nil, err
	}
	toks := make([]Token, len(ids))
	for i, id := range ids {
		if toks[i], err = e.Token(id); err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// SetResidentPrefix turns the resident prompt prefix on or off from the
// next group on (see Options.NoResidentPrefix); off, it leaves the KV
// cache once no group uses it. Answers are the same either way. It does
// nothing for an engine that cannot keep one (Sequences at llama.cpp's
// limit).
func (e *Engine) SetResidentPrefix(on bool) {
	if e.sched != nil {
		e.sched.residentOn.Store(on)
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return e.stats.get()
}

// ModelBytes returns the size of the model's weights, or 0 once the engine
// is closed.
func (e *Engine) ModelBytes() uint64 {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.model == nil {
		return 0
	}
	return e.model.size()
}

// KVCacheBytes returns the size of the KV cache: cells × layers × K and V
// rows (no grouped-query attention assumed, as in LLaMA-1) × the element
// size (2 for F16, 4 with ExactCache). It is 0 without a context and once
// the engine is closed.
func (e *Engine) KVCacheBytes() uint64 {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.model == nil || e.lctx == nil {
		return 0
	}
	elem := uint64(2)
	if e.opts.ExactCache {
		elem = 4
	}
	layers := uint64(e.model.nLayer())
	embd := uint64(e.model.nEmbd())
	return uint64(e.opts.Cells) * layers * 2 * embd * elem
}

// QueueDepth is the number of prompts in the engine, waiting or being
// decoded: those of every Generate call that has not returned.
func (e *Engine) QueueDepth() int64 { return e.queued.Load() }

// Options returns the options the engine runs with, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Vocabulary returns the number of tokens in the model's vocabulary.
func (e *Engine) Vocabulary() int { return e.voc.n }

// Generate implements model.Engine.
func (e *Engine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	return e.submit(ctx, groups, opts, false)
}

// GenerateUnbatched answers the same prompts one at a time, each decoded
// whole on its own with no sharing: what single-sequence bindings and the
// official Hugging Face code do. It is the baseline of the engine
// benchmark and of the equivalence test, and gives the same tokens as
// Generate.
func (e *Engine) GenerateUnbatched(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	return e.submit(ctx, groups, opts, true)
}

// PrefillLimit measures the ceiling of prompt processing: the time of one
// llama_decode of a full batch (BatchTokens tokens of one sequence), the
// best of three, when the engine is otherwise idle. It returns tokens per
// second.
func (e *Engine) PrefillLimit(ctx context.Context) (float64, error) {
	if e.opts.VocabOnly {
		return 0, errors.New("llama: the model was loaded for its vocabulary only")
	}
	toks := make([]int32, e.opts.BatchTokens)
	for i := range toks {
		toks[i] = int32(3 + i%(e.voc.n-3))
	}
	best := time.Duration(0)
	for range 3 {
		req := &request{ctx: ctx, probe: toks, pending: 1, finished: make(chan struct{})}
		if err := e.sched.do(ctx, req); err != nil {
			return 0, err
		}
		if best == 0 || req.probeTime < best {
			best = req.probeTime
		}
	}
	return float64(len(toks)) / best.Seconds(), nil
}

func (e *Engine) submit(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions, serial bool) ([][]model.Completion, error) {
	if e.opts.VocabOnly {
		return nil, errors.New("llama: the model was loaded for its vocabulary only")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	maxNew := opts.MaxNewTokens
	if maxNew <= 0 {
		maxNew = model.DefaultMaxNewTokens
	}
	sizes := make([]int, len(groups))
	for gi, g := range groups {
		sizes[gi] = len(g.Prompts)
	}
	req := newRequest(ctx, maxNew, serial, sizes)
	req.noScores = opts.NoScores
	budget := e.ContextTokens()
	var queued int64
	for gi, g := range groups {
		var ps []prompt
		for pi, p := range g.Prompts {
			toks, err := e.Tokenize(p)
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			if err == nil && len(toks) == 0 {
				// No BOS and no text: the scheduler would wait for ever
				// for logits that no token gives.
				err = errors.New("llama: the prompt is no tokens (empty, and the vocabulary adds no BOS)")
			}
			if err == nil && len(toks)+maxNew > budget {
				err = fmt.Errorf("%w: %d prompt tokens and %d for the answer exceed the context of %d", ErrPromptTooLong, len(toks), maxNew, budget)
			}
			if err == nil && len(toks)+maxNew > e.opts.Cells {
				err = fmt.Errorf("%w: %d prompt tokens and %d for the answer exceed the KV cache of %d cells", ErrPromptTooLong, len(toks), maxNew, e.opts.Cells)
			}
			req.out[gi][pi].PromptTokens = len(toks)
			if err != nil {
				req.out[gi][pi].Err = err
				continue
			}
			pr := prompt{index: pi, tokens: toks}
			if e.opts.SubstringAnswers {
				for _, part := range p.Parts {
					if part.Kind == model.PartText {
						pr.passage += part.Text
					}
				}
			}
			ps = append(ps, pr)
		}
		req.addGroup(gi, ps)
		queued += int64(len(ps))
	}
	if req.pending == 0 {
		return req.out, nil
	}
	e.queued.Add(queued)
	defer e.queued.Add(-queued)
	if err := e.sched.do(ctx, req); err != nil {
		return nil, err
	}
	return req.out, nil
}
