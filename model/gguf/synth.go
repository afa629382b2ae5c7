package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Shapes are the hyperparameters of a LLaMA model.
type Shapes struct {
	Embedding   int `json:"embedding"`    // n_embd, the width of the residual stream
	Layers      int `json:"layers"`       // n_layer, the number of transformer blocks
	Heads       int `json:"heads"`        // n_head, the number of attention heads
	HeadsKV     int `json:"heads_kv"`     // n_head_kv, the number of key/value heads
	FeedForward int `json:"feed_forward"` // n_ff, the width of the feed-forward layers
	Context     int `json:"context"`      // n_ctx_train, the training context length
	VocabSize   int `json:"vocab_size"`   // n_vocab, the number of tokens
}

// HeadDim returns the width of one attention head, Embedding / Heads.
func (s Shapes) HeadDim() int { return s.Embedding / max(s.Heads, 1) }

// EmbeddingKV returns the width of the key and value projections, HeadDim ×
// HeadsKV.
func (s Shapes) EmbeddingKV() int { return s.HeadDim() * s.HeadsKV }

// Parameters returns the number of weights of a LLaMA model of these shapes
// (with an untied output matrix).
func (s Shapes) Parameters() uint64 {
	e, ekv, ff, v := uint64(s.Embedding), uint64(s.EmbeddingKV()), uint64(s.FeedForward), uint64(s.VocabSize)
	perLayer := 2*e + 2*e*e + 2*e*ekv + 3*e*ff
	return 2*v*e + e + uint64(s.Layers)*perLayer
}

// Validate checks that the shapes make a LLaMA model that ggml can hold in
// 32-element blocks.
func (s Shapes) Validate() error {
	switch {
	case s.Embedding <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.HeadsKV <= 0 || s.FeedForward <= 0 || s.Context <= 0 || s.VocabSize <= 0:
		return fmt.Errorf("shapes %+v: every size must be positive", s)
	case s.Embedding%s.Heads != 0:
		return fmt.Errorf("shapes: embedding %d is not a multiple of the %d heads", s.Embedding, s.Heads)
	case s.Heads%s.HeadsKV != 0:
		return fmt.Errorf("shapes: %d heads are not a multiple of the %d key/value heads", s.Heads, s.HeadsKV)
	case s.Embedding%Q8BlockSize != 0 || s.FeedForward%Q8BlockSize != 0:
		return fmt.Errorf("shapes: embedding %d and feed-forward %d must be multiples of %d", s.Embedding, s.FeedForward, Q8BlockSize)
	}
	return nil
}

// Presets returns the names of the synthetic model presets:
//
//   - "tiny": embedding 64, 2 layers, 4 heads, feed-forward 128, context
//     2048, the built-in vocabulary; about 0.2 M weights, for tests.
//   - "small": embedding 768, 12 layers, 12 heads, feed-forward 2048,
//     context 2048, 32,000 tokens; about 134 M weights, for CPU benchmarks.
//   - "7b": the exact shapes of LLaMA-7B, which UniNER fine-tunes:
//     embedding 4096, 32 layers, 32 heads, feed-forward 11008, context
//     2048, 32,000 tokens; 6.74 B weights.
func Presets() []string { return []string{"tiny", "small", "7b"} }

// PresetShapes returns the shapes of a preset (see [Presets]). VocabSize is
// the preset's own: the size of [SynthVocab] for "tiny", 32,000 (LLaMA's)
// for the others. [Synth] replaces it with the size of a vocabulary it is
// given.
func PresetShapes(name string) (Shapes, error) {
	switch name {
	case "tiny":
		return Shapes{Embedding: 64, Layers: 2, Heads: 4, HeadsKV: 4, FeedForward: 128, Context: 2048,
			VocabSize: len(SynthVocab().Tokens)}, nil
	case "small":
		return Shapes{Embedding: 768, Layers: 12, Heads: 12, HeadsKV: 12, FeedForward: 2048, Context: 2048,
			VocabSize: 32000}, nil
	case "7b":
		return Shapes{Embedding: 4096, Layers: 32, Heads: 32, HeadsKV: 32, FeedForward: 11008, Context: 2048,
			VocabSize: 32000}, nil
	}
	return Shapes{}, fmt.Errorf("gguf: unknown preset %q (want tiny, small or 7b)", name)
}

// SynthOptions say what [Synth] writes.
type SynthOptions struct {
	// Preset is "tiny" (the default), "small" or "7b".
	Preset string
	// Type is the type of the 2-D weight matrices: TypeF32, TypeF16 or
	// TypeQ8_0. The zero value is TypeF32, since ggml numbers F32 0, so a
	// caller that wants the usual F16 must say so.
	Type GGMLType
	// Vocab is the vocabulary, whose size becomes the model's; nil means
	// [SynthVocab], padded with unused tokens ("<unusedN>", type
	// TokenUnused) to the preset's 32,000 tokens for "small" and "7b".
	Vocab *Vocab
	// Seed seeds the random weights; the same options write the same bytes.
	Seed uint64
	// Name is general.name; empty means "nerstream-synthetic-{preset}".
	Name string
}

// Synth writes a LLaMA model with random weights to w: the metadata that
// llama.cpp's LLaMA loader reads, the vocabulary, and the tensors of the
// preset's shapes. The norms are F32 ones; every other weight is drawn,
// from a generator seeded by opts.Seed, from a bell-shaped distribution of
// mean 0 and standard deviation 0.02 (the sum of four uniforms), and stored
// as opts.Type. The weights are generated and written chunk by chunk, so
// even the 7b preset is written in a few megabytes of memory.
func Synth(w io.Writer, opts SynthOptions) error {
	kvs, tensors, err := synthHeader(opts)
	if err != nil {
		return err
	}
	g := &weightGen{seed: opts.Seed}
	return Write(w, kvs, tensors, func(i int, w io.Writer) error {
		return g.write(w, i, tensors[i])
	})
}

// synthHeader returns the metadata and the tensors that [Synth] writes for
// opts.
func synthHeader(opts SynthOptions) ([]KV, []TensorInfo, error) {
	preset := opts.Preset
	if preset == "" {
		preset = "tiny"
	}
	s, err := PresetShapes(preset)
	if err != nil {
		return nil, nil, err
	}
	var ftype FileType
	switch opts.Type {
	case TypeF32:
		ftype = FileTypeF32
	case TypeF16:
		ftype = FileTypeF16
	case TypeQ8_0:
		ftype = FileTypeQ8_0
	default:
		return nil, nil, fmt.Errorf("gguf: synthetic weights of type %s: want F32, F16 or Q8_0", opts.Type)
	}
	v := opts.Vocab
	if v == nil {
		v = SynthVocab()
		padVocab(v, s.VocabSize)
	}
	if err := v.Validate(); err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	s.VocabSize = len(v.Tokens)
	if err := s.Validate(); err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = "nerstream-synthetic-" + preset
	}
	return llamaKVs(s, name, ftype, v), llamaTensors(s, opts.Type), nil
}

// padVocab appends unused tokens "<unused N>" to v until it has n tokens.
func padVocab(v *Vocab, n int) {
	for i := 0; len(v.Tokens) < n; i++ {
		v.Scores = append(v.Scores, -float32(len(v.Tokens)))
		v.Tokens = append(v.Tokens, fmt.Sprintf("<unused%d>", i))
		v.Types = append(v.Types, TokenUnused)
	}
}

// llamaKVs returns the metadata of a LLaMA model.
func llamaKVs(s Shapes, name string, ftype FileType, v *Vocab) []KV {
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.name", name},
		{"general.file_type", uint32(ftype)},
		{"general.quantization_version", uint32(2)},
		{"llama.context_length", uint32(s.Context)},
		{"llama.embedding_length", uint32(s.Embedding)},
		{"llama.block_count", uint32(s.Layers)},
		{"llama.feed_forward_length", uint32(s.FeedForward)},
		{"llama.attention.head_count", uint32(s.Heads)},
		{"llama.attention.head_count_kv", uint32(s.HeadsKV)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-6)},
		{"llama.rope.dimension_count", uint32(s.HeadDim())},
		{"llama.rope.freq_base", float32(10000)},
		{"llama.vocab_size", uint32(s.VocabSize)},
	}
	return append(kvs, v.KVs()...)
}

// llamaTensors returns the tensors of a LLaMA model, with the 2-D weights of
// type typ.
func llamaTensors(s Shapes, typ GGMLType) []TensorInfo {
	e, ekv, ff, nv := uint64(s.Embedding), uint64(s.EmbeddingKV()), uint64(s.FeedForward), uint64(s.VocabSize)
	ts := []TensorInfo{
		{Name: "token_embd.weight", Dims: []uint64{e, nv}, Type: typ},
		{Name: "output_norm.weight", Dims: []uint64{e}, Type: TypeF32},
		{Name: "output.weight", Dims: []uint64{e, nv}, Type: typ},
	}
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			TensorInfo{Name: p + "attn_norm.weight", Dims: []uint64{e}, Type: TypeF32},
			TensorInfo{Name: p + "attn_q.weight", Dims: []uint64{e, e}, Type: typ},
			TensorInfo{Name: p + "attn_k.weight", Dims: []uint64{e, ekv}, Type: typ},
			TensorInfo{Name: p + "attn_v.weight", Dims: []uint64{e, ekv}, Type: typ},
			TensorInfo{Name: p + "attn_output.weight", Dims: []uint64{e, e}, Type: typ},
			TensorInfo{Name: p + "ffn_norm.weight", Dims: []uint64{e}, Type: TypeF32},
			TensorInfo{Name: p + "ffn_gate.weight", Dims: []uint64{e, ff}, Type: typ},
			TensorInfo{Name: p + "ffn_down.weight", Dims: []uint64{ff, e}, Type: typ},
			TensorInfo{Name: p + "ffn_up.weight", Dims: []uint64{e, ff}, Type: typ},
		)
	}
	return ts
}

// chunkElems is how many weights are generated at a time: a multiple of
// the Q8_0 block, 256 KiB of float32.
const chunkElems = 1 << 16

// weightStd is the standard deviation of the synthetic weights.
const weightStd = 0.02

// weightGen generates and encodes synthetic weights. Each chunk of each
// tensor has its own random stream, seeded by the seed, the tensor's index
// and the chunk's index, so chunks are made in parallel (one per
// GOMAXPROCS) and written in order: the bytes do not depend on how many
// are made at once, and memory holds one chunk per worker.
type weightGen struct {
	seed uint64
	bufs []chunkBuf
}

// chunkBuf is one worker's chunk.
type chunkBuf struct {
	vals []float32
	out  []byte
	err  error
}

// write writes tensor i's data: ones for a 1-D (norm) tensor, random
// weights otherwise.
func (g *weightGen) write(w io.Writer, i int, t TensorInfo) error {
	if g.bufs == nil {
		g.bufs = make([]chunkBuf, max(1, runtime.GOMAXPROCS(0)))
		for b := range g.bufs {
			g.bufs[b] = chunkBuf{vals: make([]float32, chunkElems), out: make([]byte, 0, chunkElems*4)}
		}
	}
	n := t.Elements()
	chunks := (n + chunkElems - 1) / chunkElems
	for first := uint64(0); first < chunks; first += uint64(len(g.bufs)) {
		batch := g.bufs[:min(uint64(len(g.bufs)), chunks-first)]
		var wg sync.WaitGroup
		for b := range batch {
			c := first + uint64(b)
			k := min(n-c*chunkElems, chunkElems)
			wg.Go(func() { g.encode(&batch[b], i, c, t, k) })
		}
		wg.Wait()
		for b := range batch {
			if batch[b].err != nil {
				return batch[b].err
			}
			if _, err := w.Write(batch[b].out); err != nil {
				return err
			}
		}
	}
	return nil
}

// encode makes chunk c of tensor i (k weights) into buf.out.
func (g *weightGen) encode(buf *chunkBuf, i int, c uint64, t TensorInfo, k uint64) {
	vals := buf.vals[:k]
	if len(t.Dims) == 1 {
		for j := range vals {
			vals[j] = 1
		}
	} else {
		fillNormal(vals, rand.NewPCG(g.seed, uint64(i)<<32|c), weightStd)
	}
	out := buf.out[:0]
	switch t.Type {
	case TypeF32:
		for _, x := range vals {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		}
	case TypeF16:
		for _, x := range vals {
			out = binary.LittleEndian.AppendUint16(out, Float32ToF16(x))
		}
	case TypeQ8_0:
		out = AppendQ8_0(out, vals)
	default:
		buf.err = fmt.Errorf("cannot encode %s", t.Type)
	}
	buf.out = out
}

// fillNormal fills vals with roughly normal values of mean 0 and standard
// deviation std: each is the sum of the four 16-bit uniforms of one 64-bit
// random number (the Irwin–Hall distribution, bounded at ±3.5σ).
func fillNormal(vals []float32, r *rand.PCG, std float32) {
	const mean = 4 * 65535.0 / 2
	// The variance of a uniform on 0…65535 is (65536²-1)/12.
	scale := std / 37837.22724 // std / sqrt(4·(65536²-1)/12)
	for j := range vals {
		x := r.Uint64()
		s := x&0xffff + x>>16&0xffff + x>>32&0xffff + x>>48
		vals[j] = (float32(s) - mean) * scale
	}
}

// SynthFile writes the synthetic model of opts to path, beside it first
// and then renamed, so that a reader never sees half a model.
func SynthFile(path string, opts SynthOptions) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".synth-*.gguf")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; a no-op once renamed
	w := bufio.NewWriterSize(tmp, 1<<20)
	err = Synth(w, opts)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
