package llama

/*
#include <stdlib.h>
#include "llama_decl.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nerstream/nerstream/model"
)

// Options configure an [Engine]. Zero values take the defaults, except
// GPULayers, where 0 means none; [DefaultOptions] sets it to all.
type Options struct {
	// Threads is the number of CPU threads for decoding. Default: the
	// number of CPUs.
	Threads int
	// GPULayers is the number of layers to offload to the GPU: -1 for
	// all, 0 for none. It matters only when a GPU backend is loaded.
	GPULayers int
	// Sequences is the number of sequences decoded together (n_seq_max):
	// one per entity type of the documents in flight. Default: 64, at
	// most 256.
	Sequences int
	// Cells is the size of the unified KV cache in tokens, shared by all
	// sequences. Default: 8192.
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
	// VocabOnly loads the tokenizer without weights: TokenCount works,
	// Generate does not.
	VocabOnly bool
}

// DefaultOptions returns the options with every default set, GPU offload
// of all layers included.
func DefaultOptions() Options {
	return Options{GPULayers: -1}
}

func (o *Options) fill() error {
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.Sequences <= 0 {
		o.Sequences = 64
	}
	if o.Sequences > 256 {
		return fmt.Errorf("llama: %d sequences is over llama.cpp's limit of 256", o.Sequences)
	}
	if o.Cells <= 0 {
		o.Cells = 8192
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
	model     *C.struct_llama_model
	lctx      *C.struct_llama_context
	mem       C.llama_memory_t
	voc       vocab
	nCtxTrain int
	pieces    [][]byte // the text of every token
	grammar   *C.struct_llama_sampler

	work chan *request
	quit chan struct{}
	done chan struct{}

	closeOnce sync.Once
	// life guards the model's memory: calls that read it (tokenizing)
	// hold it shared; Close holds it alone while it frees the model.
	life   sync.RWMutex
	closed bool

	statsMu sync.Mutex
	stats   Stats
	queued  atomic.Int64 // prompts of the requests in Generate
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
	// GeneratedTokens counts tokens generated.
	GeneratedTokens int
}

// ErrClosed is returned by an engine that was closed; it wraps
// [model.ErrClosed].
var ErrClosed = fmt.Errorf("llama: %w", model.ErrClosed)

// ErrPromptTooLong is a prompt that, with room for its answer, does not fit
// the model's context; it wraps [model.ErrPromptTooLong].
var ErrPromptTooLong = fmt.Errorf("llama: %w", model.ErrPromptTooLong)

// Load loads a GGUF model and starts its scheduler.
func Load(path string, opts Options) (*Engine, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := checkGGUF(path); err != nil {
		return nil, err
	}
	initBackend()
	mp := C.llama_model_default_params()
	mp.n_gpu_layers = C.int32_t(opts.GPULayers)
	if opts.GPULayers < 0 {
		mp.n_gpu_layers = 999
	}
	mp.vocab_only = C.bool(opts.VocabOnly)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	m := C.llama_model_load_from_file(cpath, mp)
	if m == nil {
		msg := lastLlamaError()
		if msg == "" {
			msg = "llama.cpp could not load it"
		}
		return nil, fmt.Errorf("llama: loading %s: %s", path, msg)
	}
	e := &Engine{path: path, opts: opts, model: m}
	e.voc.v = C.llama_model_get_vocab(m)
	e.voc.n = int(C.llama_vocab_n_tokens(e.voc.v))
	e.voc.bos = int32(C.llama_vocab_bos(e.voc.v))
	e.voc.eos = int32(C.llama_vocab_eos(e.voc.v))
	e.voc.addBOS = bool(C.llama_vocab_get_add_bos(e.voc.v))
	e.nCtxTrain = int(C.llama_model_n_ctx_train(m))
	if err := e.findSpecials(); err != nil {
		C.llama_model_free(m)
		return nil, err
	}
	if opts.VocabOnly {
		return e, nil
	}
	cp := C.llama_context_default_params()
	cp.n_ctx = C.uint32_t(opts.Cells)
	cp.n_batch = C.uint32_t(opts.BatchTokens)
	cp.n_ubatch = C.uint32_t(opts.BatchTokens)
	cp.n_seq_max = C.uint32_t(opts.Sequences)
	cp.n_threads = C.int32_t(opts.Threads)
	cp.n_threads_batch = C.int32_t(opts.Threads)
	cp.kv_unified = true
	if opts.ExactCache {
		cp.type_k, cp.type_v = 0, 0 // GGML_TYPE_F32
		cp.flash_attn_type = 0      // LLAMA_FLASH_ATTN_TYPE_DISABLED
	}
	cp.no_perf = true
	lctx := C.llama_init_from_model(m, cp)
	if lctx == nil {
		C.llama_model_free(m)
		return nil, fmt.Errorf("llama: creating a context for %s: %s", path, lastLlamaError())
	}
	e.lctx = lctx
	e.mem = C.llama_get_memory(lctx)
	e.opts.Cells = int(C.llama_n_ctx(lctx))
	e.pieces = make([][]byte, e.voc.n)
	for t := range e.pieces {
		e.pieces[t] = e.voc.piece(int32(t))
	}
	if !opts.NoGrammar {
		g, err := newGrammar(e.voc.v)
		if err != nil {
			e.free()
			return nil, err
		}
		e.grammar = g
	}
	e.work = make(chan *request)
	e.quit = make(chan struct{})
	e.done = make(chan struct{})
	go e.run()
	return e, nil
}

// checkGGUF refuses a path that is not a readable GGUF file before
// llama.cpp sees it.
func checkGGUF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("llama: %s is a folder, not a GGUF file", path)
	}
	var magic [4]byte
	if _, err := f.Read(magic[:]); err != nil || string(magic[:]) != "GGUF" {
		return fmt.Errorf("llama: %s is not a GGUF file", path)
	}
	return nil
}

// findSpecials finds the token of each special token the prompt template
// uses.
func (e *Engine) findSpecials() error {
	e.voc.special = map[string]int32{}
	toks, err := e.voc.tokenizeMode(model.EOS, true)
	if err != nil {
		return err
	}
	if len(toks) != 1 {
		return fmt.Errorf("llama: the vocabulary has no single token for %q (got %v); it is not a LLaMA vocabulary", model.EOS, toks)
	}
	e.voc.special[model.EOS] = toks[0]
	return nil
}

// Close stops the scheduler, fails what is in flight with [ErrClosed], and
// frees the model. It is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		if e.quit != nil {
			close(e.quit)
			<-e.done
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
		C.llama_sampler_free(e.grammar)
		e.grammar = nil
	}
	if e.lctx != nil {
		C.llama_free(e.lctx)
		e.lctx = nil
	}
	if e.model != nil {
		C.llama_model_free(e.model)
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

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	defer e.statsMu.Unlock()
	return e.stats
}

// ModelBytes returns the size of the model's weights.
func (e *Engine) ModelBytes() uint64 {
	if e.model == nil {
		return 0
	}
	return uint64(C.llama_model_size(e.model))
}

// KVCacheBytes returns the size of the KV cache: cells × layers × K and V
// rows (no grouped-query attention assumed, as in LLaMA-1) × the element
// size (2 for F16, 4 with ExactCache).
func (e *Engine) KVCacheBytes() uint64 {
	if e.model == nil || e.lctx == nil {
		return 0
	}
	elem := uint64(2)
	if e.opts.ExactCache {
		elem = 4
	}
	layers := uint64(C.llama_model_n_layer(e.model))
	embd := uint64(C.llama_model_n_embd(e.model))
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
		select {
		case e.work <- req:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-e.quit:
			return 0, ErrClosed
		}
		<-req.finished
		if req.err != nil {
			return 0, req.err
		}
		if best == 0 || req.probeTime < best {
			best = req.probeTime
		}
	}
	return float64(len(toks)) / best.Seconds(), nil
}

// request is one Generate call on its way through the scheduler.
type request struct {
	ctx    context.Context
	maxNew int
	serial bool
	// probe, when set, asks for one full-batch decode instead (see
	// PrefillLimit); probeTime is its result.
	probe     []int32
	probeTime time.Duration
	groups    []*group
	out       [][]model.Completion
	pending   int // groups not finished
	finished  chan struct{}
	err       error
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
	req := &request{ctx: ctx, maxNew: maxNew, serial: serial, out: make([][]model.Completion, len(groups)), finished: make(chan struct{})}
	budget := e.ContextTokens()
	for gi, g := range groups {
		req.out[gi] = make([]model.Completion, len(g.Prompts))
		grp := &group{req: req, index: gi}
		for pi, p := range g.Prompts {
			toks, err := e.Tokenize(p)
			if errors.Is(err, ErrClosed) {
				return nil, err
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
			grp.prompts = append(grp.prompts, pr)
		}
		if len(grp.prompts) > 0 {
			req.groups = append(req.groups, grp)
		}
	}
	req.pending = len(req.groups)
	if req.pending == 0 {
		return req.out, nil
	}
	var queued int64
	for _, g := range req.groups {
		queued += int64(len(g.prompts))
	}
	e.queued.Add(queued)
	defer e.queued.Add(-queued)
	select {
	case e.work <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.quit:
		return nil, ErrClosed
	}
	select {
	case <-req.finished:
	case <-e.done:
		// The scheduler stopped; it finished or failed every request
		// it held before it did.
		<-req.finished
	}
	if req.err != nil {
		return nil, req.err
	}
	return req.out, nil
}
