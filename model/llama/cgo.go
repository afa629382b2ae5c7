package llama

// This file holds every call into C. The rest of the package talks to
// llama.cpp through the small types below, and to them through the
// interfaces it declares where it uses them (decoder in scheduler.go,
// grammar in sampler.go), so that its policy runs in tests without
// llama.cpp.

/*
#cgo CFLAGS: -std=c11
// GPU backend modules (ggml_backend_load) bind to this executable's ggml
// core rather than to a second copy of it: one registry, one log callback.
#cgo linux LDFLAGS: -Wl,--export-dynamic
#include <stdlib.h>
#include "llama_decl.h"

double nerstream_logsumexp(const float *l, int n); // helpers.c
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/nerstream/nerstream/model"

	// Compiles llama.cpp and ggml (CPU backend) through cgo.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

// llama.cpp's log levels (enum ggml_log_level), checked against ggml.h by
// TestConstantsMatchHeader.
const (
	logLevelDebug = C.NERSTREAM_GGML_LOG_LEVEL_DEBUG
	logLevelInfo  = C.NERSTREAM_GGML_LOG_LEVEL_INFO
	logLevelWarn  = C.NERSTREAM_GGML_LOG_LEVEL_WARN
	logLevelError = C.NERSTREAM_GGML_LOG_LEVEL_ERROR
	logLevelCont  = C.NERSTREAM_GGML_LOG_LEVEL_CONT
)

var backendOnce sync.Once

// initBackend starts llama.cpp's process-wide backend and routes its logs
// to logLine, once.
func initBackend() {
	backendOnce.Do(func() {
		C.nerstream_route_logs()
		C.llama_backend_init()
	})
}

//export nerstreamLog
func nerstreamLog(level C.uint, text *C.char, _ unsafe.Pointer) {
	logLine(int(level), C.GoString(text))
}

// buildSIMD reports which x86 SIMD extensions ggml's CPU backend was
// compiled with (its ggml_cpu_has_* functions answer from the compiler's
// macros, not from the CPU).
func buildSIMD() map[string]bool {
	return map[string]bool{
		"AVX":    C.ggml_cpu_has_avx() != 0,
		"AVX2":   C.ggml_cpu_has_avx2() != 0,
		"FMA":    C.ggml_cpu_has_fma() != 0,
		"F16C":   C.ggml_cpu_has_f16c() != 0,
		"AVX512": C.ggml_cpu_has_avx512() != 0,
	}
}

// SupportsGPU reports whether a GPU backend is loaded.
func SupportsGPU() bool {
	initBackend()
	return bool(C.llama_supports_gpu_offload())
}

// SystemInfo returns llama.cpp's description of the CPU features it uses.
func SystemInfo() string {
	initBackend()
	return C.GoString(C.llama_print_system_info())
}

// cModel is a loaded llama_model.
type cModel struct {
	m *C.struct_llama_model
}

// loadMu serializes loads, so that the error lines llama.cpp logs during a
// load are that load's.
var loadMu sync.Mutex

// loadModel loads a GGUF file, which the caller has checked (see
// gguf.File.CheckLlama): llama.cpp aborts the process on some malformed
// files. gpuLayers < 0 offloads every layer. devices nil leaves the choice
// to llama.cpp (every GPU device of the loaded backends); an empty, non-nil
// devices keeps the model on the CPU. A refusal says every error line
// llama.cpp logged during the load.
func loadModel(path string, gpuLayers int, vocabOnly bool, devices []cDevice) (*cModel, error) {
	initBackend()
	loadMu.Lock()
	defer loadMu.Unlock()
	mp := C.llama_model_default_params()
	mp.n_gpu_layers = C.int32_t(gpuLayers)
	if gpuLayers < 0 {
		mp.n_gpu_layers = 999
	}
	mp.vocab_only = C.bool(vocabOnly)
	if devices != nil {
		// A NULL-terminated array in C memory; llama.cpp copies it.
		size := C.size_t(unsafe.Sizeof(C.ggml_backend_dev_t(nil))) * C.size_t(len(devices)+1)
		arr := C.calloc(1, size)
		defer C.free(arr)
		list := unsafe.Slice((*C.ggml_backend_dev_t)(arr), len(devices)+1)
		for i, d := range devices {
			list[i] = d.d
		}
		mp.devices = arr
		if len(devices) == 0 {
			mp.n_gpu_layers = 0
		}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	takeLlamaErrors() // earlier lines are not this load's
	m := C.llama_model_load_from_file(cpath, mp)
	if m == nil {
		msg := takeLlamaErrors()
		if msg == "" {
			msg = "llama.cpp could not load it"
		}
		return nil, errors.New(msg)
	}
	return &cModel{m: m}, nil
}

func (m *cModel) free()          { C.llama_model_free(m.m) }
func (m *cModel) size() uint64   { return uint64(C.llama_model_size(m.m)) }
func (m *cModel) nLayer() int    { return int(C.llama_model_n_layer(m.m)) }
func (m *cModel) nEmbd() int     { return int(C.llama_model_n_embd(m.m)) }
func (m *cModel) nCtxTrain() int { return int(C.llama_model_n_ctx_train(m.m)) }
func (m *cModel) vocab() cVocab  { return cVocab{v: C.llama_model_get_vocab(m.m)} }

// cVocab is a model's llama_vocab. It lives as long as its model.
type cVocab struct {
	v *C.struct_llama_vocab
}

func (v cVocab) nTokens() int         { return int(C.llama_vocab_n_tokens(v.v)) }
func (v cVocab) bos() int32           { return int32(C.llama_vocab_bos(v.v)) }
func (v cVocab) eos() int32           { return int32(C.llama_vocab_eos(v.v)) }
func (v cVocab) addBOS() bool         { return bool(C.llama_vocab_get_add_bos(v.v)) }
func (v cVocab) isEOG(tok int32) bool { return bool(C.llama_vocab_is_eog(v.v, C.llama_token(tok))) }

// tokenize returns the tokens of text (no BOS; special tokens parsed when
// parseSpecial is set). The caller checks that text is valid UTF-8 and not
// empty.
func (v cVocab) tokenize(text string, parseSpecial bool) ([]int32, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// SentencePiece and BPE make at most one token per byte, plus a
	// space prefix.
	max := len(text) + 2
	buf := make([]int32, max)
	n := C.llama_tokenize(v.v, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&buf[0])), C.int32_t(max), false, C.bool(parseSpecial))
	if n < 0 {
		return nil, fmt.Errorf("tokenizer needs %d tokens for %d bytes", -n, len(text))
	}
	return buf[:n:n], nil
}

// piece returns the text of a token; a control token's is empty unless
// special is set. The caller checks that tok is in the vocabulary.
func (v cVocab) piece(tok int32, special bool) []byte {
	var buf [64]C.char
	n := C.llama_token_to_piece(v.v, C.llama_token(tok), &buf[0], C.int32_t(len(buf)), 0, C.bool(special))
	if n < 0 {
		big := make([]C.char, -n)
		n = C.llama_token_to_piece(v.v, C.llama_token(tok), &big[0], C.int32_t(len(big)), 0, C.bool(special))
		return C.GoBytes(unsafe.Pointer(&big[0]), n)
	}
	return C.GoBytes(unsafe.Pointer(&buf[0]), n)
}

// text returns the vocabulary's own spelling of a token ("▁US",
// "<0x0A>"). The caller checks that tok is in the vocabulary: llama.cpp
// throws past its end.
func (v cVocab) text(tok int32) string {
	return C.GoString(C.llama_vocab_get_text(v.v, C.llama_token(tok)))
}

// contextParams are the settings of a new llama context.
type contextParams struct {
	cells, batchTokens, sequences, threads int
	// exact keeps the KV cache in F32 and turns flash attention off.
	exact bool
}

// cContext is a llama_context with its llama_batch. It implements decoder.
// One goroutine (the scheduler's) uses it at a time.
type cContext struct {
	ctx   *C.struct_llama_context
	mem   C.llama_memory_t
	batch C.llama_batch
	nVoc  int
	nSeq  int
	// unified: one KV stream for every sequence, so that copySequence
	// shares cells instead of copying them.
	unified bool
	// The batch's arrays (C memory), as Go slices of batchTokens entries.
	token  []C.llama_token
	pos    []C.llama_pos
	nSeqID []C.int32_t
	seqID  [][]C.llama_seq_id // each of nSeq entries
	logit  []C.int8_t
}

func newContext(m *cModel, p contextParams) (*cContext, error) {
	cp := C.llama_context_default_params()
	cp.n_ctx = C.uint32_t(p.cells)
	cp.n_batch = C.uint32_t(p.batchTokens)
	cp.n_ubatch = C.uint32_t(p.batchTokens)
	cp.n_seq_max = C.uint32_t(p.sequences)
	cp.n_threads = C.int32_t(p.threads)
	cp.n_threads_batch = C.int32_t(p.threads)
	cp.kv_unified = true
	if p.exact {
		cp.type_k, cp.type_v = C.NERSTREAM_GGML_TYPE_F32, C.NERSTREAM_GGML_TYPE_F32
		cp.flash_attn_type = C.NERSTREAM_LLAMA_FLASH_ATTN_TYPE_DISABLED
	}
	cp.no_perf = true
	takeLlamaErrors()
	lctx := C.llama_init_from_model(m.m, cp)
	if lctx == nil {
		msg := takeLlamaErrors()
		if msg == "" {
			msg = "llama.cpp could not create it"
		}
		return nil, errors.New(msg)
	}
	c := &cContext{ctx: lctx, mem: C.llama_get_memory(lctx), nVoc: m.vocab().nTokens(), nSeq: p.sequences, unified: bool(cp.kv_unified)}
	n := p.batchTokens
	c.batch = C.llama_batch_init(C.int32_t(n), 0, C.int32_t(p.sequences))
	c.token = unsafe.Slice(c.batch.token, n)
	c.pos = unsafe.Slice(c.batch.pos, n)
	c.nSeqID = unsafe.Slice(c.batch.n_seq_id, n)
	c.logit = unsafe.Slice(c.batch.logits, n)
	c.seqID = make([][]C.llama_seq_id, n)
	for i, ids := range unsafe.Slice(c.batch.seq_id, n) {
		c.seqID[i] = unsafe.Slice(ids, c.nSeq)
	}
	return c, nil
}

// cells returns the size of the KV cache, which llama.cpp may round up.
func (c *cContext) cells() int { return int(C.llama_n_ctx(c.ctx)) }

// setThreads sets the CPU threads of the next decodes, one-token and
// batched alike; n > 0.
func (c *cContext) setThreads(n int) {
	C.llama_set_n_threads(c.ctx, C.int32_t(n), C.int32_t(n))
}

// decode copies b into the llama_batch and runs llama_decode. It checks
// what would corrupt memory or abort the process first.
func (c *cContext) decode(b *batch) error {
	n := b.len()
	if n == 0 || n > len(c.token) {
		return fmt.Errorf("a batch of %d tokens, outside 1..%d", n, len(c.token))
	}
	for i := range n {
		tok, seqs := b.token[i], b.seqs[i]
		if tok < 0 || int(tok) >= c.nVoc {
			return fmt.Errorf("token %d outside the vocabulary of %d", tok, c.nVoc)
		}
		if len(seqs) == 0 || len(seqs) > len(c.seqID[i]) {
			return fmt.Errorf("a token with %d sequence ids, outside 1..%d", len(seqs), c.nSeq)
		}
		c.token[i] = C.llama_token(tok)
		c.pos[i] = C.llama_pos(b.pos[i])
		c.nSeqID[i] = C.int32_t(len(seqs))
		dst := c.seqID[i]
		for k, id := range seqs {
			if id < 0 || int(id) >= c.nSeq {
				return fmt.Errorf("sequence id %d outside 0..%d", id, c.nSeq-1)
			}
			dst[k] = C.llama_seq_id(id)
		}
		c.logit[i] = 0
		if b.logits[i] {
			c.logit[i] = 1
		}
	}
	c.batch.n_tokens = C.int32_t(n)
	if rc := C.llama_decode(c.ctx, c.batch); rc != 0 {
		return fmt.Errorf("llama_decode failed (code %d): %s", int(rc), takeLlamaErrors())
	}
	return nil
}

// logits returns the logits of batch row i of the last decode, in C memory
// valid until the next decode, or nil when the row has none.
func (c *cContext) logits(i int32) []float32 {
	p := C.llama_get_logits_ith(c.ctx, C.int32_t(i))
	if p == nil {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nVoc)
}

// logSumExp returns log(Σ exp(l[i])), the normaliser of the log-softmax
// of l: -Inf for no logits. It reads l during the call only.
func logSumExp(l []float32) float64 {
	if len(l) == 0 {
		return math.Inf(-1)
	}
	return float64(C.nerstream_logsumexp((*C.float)(unsafe.Pointer(&l[0])), C.int(len(l))))
}

// removeSequence frees every KV cell of sequence id.
func (c *cContext) removeSequence(id int32) {
	C.llama_memory_seq_rm(c.mem, C.llama_seq_id(id), -1, -1)
}

// trimSequence takes sequence id off its cells at positions from p0 on
// (llama_memory_seq_rm over [p0, ∞)). Ids outside the context's and a
// negative p0 (which would mean all positions) are not passed on.
func (c *cContext) trimSequence(id, p0 int32) {
	if id < 0 || int(id) >= c.nSeq || p0 < 0 {
		return
	}
	C.llama_memory_seq_rm(c.mem, C.llama_seq_id(id), C.llama_pos(p0), -1)
}

// copySequence adds sequence dst to the cells of sequence src at positions
// p0 ≤ pos < p1 (llama_memory_seq_cp: in a unified cache, metadata only).
// llama.cpp asserts on ids outside the context's, so they are checked
// first.
func (c *cContext) copySequence(src, dst, p0, p1 int32) error {
	if src < 0 || int(src) >= c.nSeq || dst < 0 || int(dst) >= c.nSeq || src == dst {
		return fmt.Errorf("copying sequence %d to %d, outside 0..%d", src, dst, c.nSeq-1)
	}
	if p0 < 0 || p1 <= p0 {
		return fmt.Errorf("copying positions %d..%d", p0, p1)
	}
	C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
	return nil
}

func (c *cContext) free() {
	C.llama_batch_free(c.batch)
	C.llama_free(c.ctx)
}

// cGrammar is a llama.cpp grammar sampler. It implements grammar. A root
// grammar and its clones share the root's candidate arrays (C memory, as
// llama.cpp's samplers take them), so they are used from one goroutine,
// and the root is freed last.
type cGrammar struct {
	s    *C.struct_llama_sampler
	buf  *candidates
	root bool
}

// candidates are the C arrays llama_sampler_apply works on.
type candidates struct {
	full []C.llama_token_data // the whole vocabulary
	one  []C.llama_token_data // one token
	arr  *C.llama_token_data_array
	mem  []unsafe.Pointer
}

// newGrammar parses the answer grammar for a vocabulary.
func newGrammar(v cVocab) (*cGrammar, error) {
	src := C.CString(model.AnswerGrammar)
	defer C.free(unsafe.Pointer(src))
	root := C.CString("root")
	defer C.free(unsafe.Pointer(root))
	takeLlamaErrors()
	s := C.llama_sampler_init_grammar(v.v, src, root)
	if s == nil {
		return nil, errors.New("the answer grammar did not parse: " + takeLlamaErrors())
	}
	n := v.nTokens()
	buf := &candidates{}
	alloc := func(size uintptr) unsafe.Pointer {
		p := C.calloc(1, C.size_t(size))
		buf.mem = append(buf.mem, p)
		return p
	}
	var td C.llama_token_data
	buf.full = unsafe.Slice((*C.llama_token_data)(alloc(unsafe.Sizeof(td)*uintptr(n))), n)
	buf.one = unsafe.Slice((*C.llama_token_data)(alloc(unsafe.Sizeof(td))), 1)
	buf.arr = (*C.llama_token_data_array)(alloc(unsafe.Sizeof(C.llama_token_data_array{})))
	return &cGrammar{s: s, buf: buf, root: true}, nil
}

func (g *cGrammar) clone() (grammar, error) {
	s := C.llama_sampler_clone(g.s)
	if s == nil {
		return nil, errors.New("llama.cpp could not clone the grammar")
	}
	return &cGrammar{s: s, buf: g.buf}, nil
}

// allows applies the grammar to tok alone: a refused token comes back with
// a logit of -Inf.
func (g *cGrammar) allows(tok int32) bool {
	b := g.buf
	b.one[0] = C.llama_token_data{id: C.llama_token(tok)}
	*b.arr = C.llama_token_data_array{data: &b.one[0], size: 1, selected: -1}
	C.llama_sampler_apply(g.s, b.arr)
	return b.one[0].logit == 0
}

// allowed applies the grammar to the whole vocabulary.
func (g *cGrammar) allowed(dst []int32) []int32 {
	b := g.buf
	for i := range b.full {
		b.full[i] = C.llama_token_data{id: C.llama_token(i)}
	}
	*b.arr = C.llama_token_data_array{data: &b.full[0], size: C.size_t(len(b.full)), selected: -1}
	C.llama_sampler_apply(g.s, b.arr)
	for _, d := range unsafe.Slice(b.arr.data, int(b.arr.size)) {
		if d.logit == 0 {
			dst = append(dst, int32(d.id))
		}
	}
	return dst
}

func (g *cGrammar) accept(tok int32) { C.llama_sampler_accept(g.s, C.llama_token(tok)) }

func (g *cGrammar) free() {
	C.llama_sampler_free(g.s)
	if g.root {
		for _, p := range g.buf.mem {
			C.free(p)
		}
		g.buf.mem = nil
	}
}

// loadBackend loads a ggml backend module (built with GGML_BACKEND_DL) and
// returns the name of the backend it registers. The caller has checked the
// file (see checkModule).
func loadBackend(path string) (string, error) {
	initBackend()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	takeLlamaErrors()
	reg := C.ggml_backend_load(cpath)
	if reg == nil {
		msg := takeLlamaErrors()
		if msg == "" {
			msg = "ggml could not load it"
		}
		return "", errors.New(msg)
	}
	return C.GoString(C.ggml_backend_reg_name(reg)), nil
}

// cDevice is a device of a registered backend.
type cDevice struct {
	d C.ggml_backend_dev_t
}

// cDevices returns every device that the registered backends offer.
func cDevices() []cDevice {
	initBackend()
	n := int(C.ggml_backend_dev_count())
	out := make([]cDevice, 0, n)
	for i := range n {
		if d := C.ggml_backend_dev_get(C.size_t(i)); d != nil {
			out = append(out, cDevice{d})
		}
	}
	return out
}

func (d cDevice) name() string        { return C.GoString(C.ggml_backend_dev_name(d.d)) }
func (d cDevice) description() string { return C.GoString(C.ggml_backend_dev_description(d.d)) }
func (d cDevice) backend() string {
	return C.GoString(C.ggml_backend_reg_name(C.ggml_backend_dev_backend_reg(d.d)))
}

func (d cDevice) memory() (free, total uint64) {
	var f, t C.size_t
	C.ggml_backend_dev_memory(d.d, &f, &t)
	return uint64(f), uint64(t)
}

func (d cDevice) kind() DeviceType {
	switch C.ggml_backend_dev_type(d.d) {
	case C.NERSTREAM_GGML_BACKEND_DEVICE_TYPE_CPU:
		return DeviceCPU
	case C.NERSTREAM_GGML_BACKEND_DEVICE_TYPE_GPU:
		return DeviceGPU
	case C.NERSTREAM_GGML_BACKEND_DEVICE_TYPE_IGPU:
		return DeviceIGPU
	case C.NERSTREAM_GGML_BACKEND_DEVICE_TYPE_ACCEL:
		return DeviceAccel
	}
	return DeviceUnknown
}
