package gguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func synthBytes(t *testing.T, opts SynthOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Synth(&buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeTensor returns a tensor's values as float32.
func decodeTensor(t *testing.T, data []byte, f *File, ti TensorInfo) []float32 {
	t.Helper()
	n, err := ti.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw := data[f.DataOffset+int64(ti.Offset):][:n]
	var out []float32
	switch ti.Type {
	case TypeF32:
		for i := 0; i < len(raw); i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
		}
	case TypeF16:
		for i := 0; i < len(raw); i += 2 {
			out = append(out, F16ToFloat32(binary.LittleEndian.Uint16(raw[i:])))
		}
	case TypeQ8_0:
		for i := 0; i < len(raw); i += 34 {
			d := F16ToFloat32(binary.LittleEndian.Uint16(raw[i:]))
			for _, q := range raw[i+2 : i+34] {
				out = append(out, d*float32(int8(q)))
			}
		}
	default:
		t.Fatalf("cannot decode %s", ti.Type)
	}
	return out
}

func TestSynthTiny(t *testing.T) {
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeQ8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			data := synthBytes(t, SynthOptions{Preset: "tiny", Type: typ, Seed: 42})
			f, err := readBytes(data)
			if err != nil {
				t.Fatal(err)
			}
			sv := SynthVocab()
			nv := uint64(len(sv.Tokens))
			ftype := map[GGMLType]uint32{TypeF32: 0, TypeF16: 1, TypeQ8_0: 7}[typ]
			meta := []KV{
				{"general.architecture", "llama"},
				{"general.name", "nerstream-synthetic-tiny"},
				{"general.file_type", ftype},
				{"llama.context_length", uint32(2048)},
				{"llama.embedding_length", uint32(64)},
				{"llama.block_count", uint32(2)},
				{"llama.feed_forward_length", uint32(128)},
				{"llama.attention.head_count", uint32(4)},
				{"llama.attention.head_count_kv", uint32(4)},
				{"llama.attention.layer_norm_rms_epsilon", float32(1e-6)},
				{"llama.rope.dimension_count", uint32(16)},
				{"llama.rope.freq_base", float32(10000)},
				{"llama.vocab_size", uint32(nv)},
				{"tokenizer.ggml.model", "llama"},
				{"tokenizer.ggml.tokens", sv.Tokens},
				{"tokenizer.ggml.scores", sv.Scores},
				{"tokenizer.ggml.token_type", sv.Types},
				{"tokenizer.ggml.bos_token_id", uint32(1)},
				{"tokenizer.ggml.eos_token_id", uint32(2)},
				{"tokenizer.ggml.unknown_token_id", uint32(0)},
				{"tokenizer.ggml.add_bos_token", true},
				{"tokenizer.ggml.add_eos_token", false},
			}
			for _, kv := range meta {
				got, ok := f.KV(kv.Key)
				if !ok || !reflect.DeepEqual(got, kv.Value) {
					t.Errorf("%s = %v (%T), want %v (%T)", kv.Key, got, got, kv.Value, kv.Value)
				}
			}

			type want struct {
				dims []uint64
				typ  GGMLType
			}
			wantTensors := map[string]want{
				"token_embd.weight":  {[]uint64{64, nv}, typ},
				"output_norm.weight": {[]uint64{64}, TypeF32},
				"output.weight":      {[]uint64{64, nv}, typ},
			}
			for i := range 2 {
				p := fmt.Sprintf("blk.%d.", i)
				wantTensors[p+"attn_norm.weight"] = want{[]uint64{64}, TypeF32}
				wantTensors[p+"attn_q.weight"] = want{[]uint64{64, 64}, typ}
				wantTensors[p+"attn_k.weight"] = want{[]uint64{64, 64}, typ}
				wantTensors[p+"attn_v.weight"] = want{[]uint64{64, 64}, typ}
				wantTensors[p+"attn_output.weight"] = want{[]uint64{64, 64}, typ}
				wantTensors[p+"ffn_norm.weight"] = want{[]uint64{64}, TypeF32}
				wantTensors[p+"ffn_gate.weight"] = want{[]uint64{64, 128}, typ}
				wantTensors[p+"ffn_down.weight"] = want{[]uint64{128, 64}, typ}
				wantTensors[p+"ffn_up.weight"] = want{[]uint64{64, 128}, typ}
			}
			if len(f.Tensors) != len(wantTensors) {
				t.Errorf("%d tensors, want %d", len(f.Tensors), len(wantTensors))
			}
			var end, aligned, params uint64
			for _, ti := range f.Tensors {
				w, ok := wantTensors[ti.Name]
				if !ok {
					t.Errorf("unexpected tensor %q", ti.Name)
					continue
				}
				if !reflect.DeepEqual(ti.Dims, w.dims) || ti.Type != w.typ {
					t.Errorf("%s: %v %s, want %v %s", ti.Name, ti.Dims, ti.Type, w.dims, w.typ)
				}
				n, err := ti.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if ti.Offset != end || ti.Offset%32 != 0 {
					t.Errorf("%s at %d, want %d (aligned)", ti.Name, ti.Offset, end)
				}
				end = alignUp(ti.Offset+n, 32)
				aligned += alignUp(n, 32)
				params += ti.Elements()

				vals := decodeTensor(t, data, f, ti)
				if len(ti.Dims) == 1 {
					for _, v := range vals {
						if v != 1 {
							t.Fatalf("%s: a norm weight is %g, want 1", ti.Name, v)
						}
					}
					continue
				}
				var sum, sq float64
				for _, v := range vals {
					sum += float64(v)
					sq += float64(v) * float64(v)
				}
				mean := sum / float64(len(vals))
				std := math.Sqrt(sq/float64(len(vals)) - mean*mean)
				if math.Abs(mean) > 0.002 || math.Abs(std-0.02) > 0.002 {
					t.Errorf("%s: mean %g, std %g; want about 0 and 0.02", ti.Name, mean, std)
				}
			}
			if want := uint64(f.DataOffset) + aligned; uint64(len(data)) != want {
				t.Errorf("file of %d bytes, want data offset %d + %d", len(data), f.DataOffset, aligned)
			}
			s, _ := PresetShapes("tiny")
			if params != s.Parameters() {
				t.Errorf("%d parameters, Shapes.Parameters says %d", params, s.Parameters())
			}
			v, err := ReadVocab(f)
			if err != nil || !reflect.DeepEqual(v, sv) {
				t.Errorf("ReadVocab of a synthetic model: %v", err)
			}
		})
	}
}

func TestSynthDeterministic(t *testing.T) {
	sum := func(opts SynthOptions) [32]byte { return sha256.Sum256(synthBytes(t, opts)) }
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeQ8_0} {
		a := sum(SynthOptions{Preset: "tiny", Type: typ, Seed: 7})
		if b := sum(SynthOptions{Preset: "tiny", Type: typ, Seed: 7}); a != b {
			t.Errorf("%s: the same seed wrote different bytes", typ)
		}
		if b := sum(SynthOptions{Preset: "tiny", Type: typ, Seed: 8}); a == b {
			t.Errorf("%s: different seeds wrote the same bytes", typ)
		}
	}
	// The chunks are made in parallel; the bytes are those of the
	// sequential writer that came before (these sums), whatever
	// GOMAXPROCS is.
	golden := map[GGMLType]string{
		TypeF32:  "180b76f3aeb408eac0422cb4e4a5fbc7a5b9e8cfbab302068dd17fbac611ef11",
		TypeF16:  "d1fe4b9871f2656a9d6a2b37b7a2d85d9e93d27c363164b63d3dc039db3ba703",
		TypeQ8_0: "9cee3045520d42f8688e0bb0592caa4b3364e28773db699a8a92befa880524ed",
	}
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		for typ, want := range golden {
			if got := sum(SynthOptions{Preset: "tiny", Type: typ, Seed: 3}); hex.EncodeToString(got[:]) != want {
				t.Errorf("%s with GOMAXPROCS %d: sha256 %x, want %s", typ, procs, got, want)
			}
		}
		runtime.GOMAXPROCS(old)
	}
	// The default preset is tiny.
	if a, b := sum(SynthOptions{Type: TypeF16}), sum(SynthOptions{Preset: "tiny", Type: TypeF16}); a != b {
		t.Error("an empty preset is not tiny")
	}
	f, err := readBytes(synthBytes(t, SynthOptions{Name: "mine"}))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("general.name"); s != "mine" {
		t.Errorf("general.name = %q", s)
	}
}

func TestPresetShapes(t *testing.T) {
	tests := []struct {
		preset string
		want   Shapes
		params uint64
	}{
		{"tiny", Shapes{64, 2, 4, 4, 128, 2048, len(SynthVocab().Tokens)}, 0},
		{"small", Shapes{768, 12, 12, 12, 2048, 2048, 32000}, 134105856},
		// LLaMA-7B's published count.
		{"7b", Shapes{4096, 32, 32, 32, 11008, 2048, 32000}, 6738415616},
	}
	for _, tt := range tests {
		s, err := PresetShapes(tt.preset)
		if err != nil || s != tt.want {
			t.Errorf("PresetShapes(%q) = %+v, %v; want %+v", tt.preset, s, err, tt.want)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", tt.preset, err)
		}
		var params uint64
		for _, ti := range llamaTensors(s, TypeF16) {
			params += ti.Elements()
		}
		if params != s.Parameters() {
			t.Errorf("%s: the tensors hold %d weights, Parameters() says %d", tt.preset, params, s.Parameters())
		}
		if tt.params != 0 && params != tt.params {
			t.Errorf("%s: %d weights, want %d", tt.preset, params, tt.params)
		}
	}
	if s, _ := PresetShapes("7b"); s.HeadDim() != 128 || s.EmbeddingKV() != 4096 {
		t.Errorf("7b: head dim %d, kv width %d", s.HeadDim(), s.EmbeddingKV())
	}
	if _, err := PresetShapes("13b"); err == nil {
		t.Error("PresetShapes(13b): no error")
	}
	if got := Presets(); !reflect.DeepEqual(got, []string{"tiny", "small", "7b"}) {
		t.Errorf("Presets() = %v", got)
	}
}

// countingHash counts and hashes what is written to it.
type countingHash struct {
	n int64
	h io.Writer
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// TestSynthSmall writes the small preset (about a second) and checks its
// size against the layout.
func TestSynthSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 143 MB")
	}
	s, _ := PresetShapes("small")
	w := &countingHash{h: io.Discard}
	if err := Synth(w, SynthOptions{Preset: "small", Type: TypeQ8_0}); err != nil {
		t.Fatal(err)
	}
	var data uint64
	for _, ti := range llamaTensors(s, TypeQ8_0) {
		n, _ := ti.Bytes()
		data += alignUp(n, 32)
	}
	if uint64(w.n) < data || uint64(w.n) > data+2<<20 {
		t.Errorf("small Q8_0: %d bytes, want %d of data plus a header of under 2 MiB", w.n, data)
	}
}

// stopWriter fails with err once limit bytes have been written.
type stopWriter struct {
	n, limit int64
	err      error
}

func (w *stopWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.limit {
		return 0, w.err
	}
	return len(p), nil
}

// TestSynth7bStreams starts writing the 7b preset and stops after 64 MiB,
// checking that the weights stream: memory use stays far below the 262 MB
// of the first tensor.
func TestSynth7bStreams(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	errStop := errors.New("enough")
	err := Synth(&stopWriter{limit: 64 << 20, err: errStop}, SynthOptions{Preset: "7b", Type: TypeF16})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errStop) {
		t.Fatalf("Synth: %v, want the writer's error", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("writing 64 MiB of the 7b preset allocated %d MiB", alloc>>20)
	}
	// The whole file's size, from the layout, without writing it.
	s, _ := PresetShapes("7b")
	var data uint64
	for _, ti := range llamaTensors(s, TypeF16) {
		n, _ := ti.Bytes()
		data += alignUp(n, 32)
	}
	// Two bytes a weight, and two more for the F32 norms.
	if want := 2*s.Parameters() + 2*uint64(2*s.Layers+1)*uint64(s.Embedding); data != want {
		t.Errorf("7b F16: %d bytes of data, want %d", data, want)
	}
}

func TestSynthVocabulary(t *testing.T) {
	custom := &Vocab{
		Model:  "llama",
		Tokens: []string{"<unk>", "<s>", "</s>", "▁a", "b"},
		Scores: []float32{0, 0, 0, -1, -2},
		Types:  []int32{2, 3, 3, 1, 1},
		BOS:    1, EOS: 2, AddBOS: true,
		Extra: []KV{{"tokenizer.ggml.pre", "default"}, {"tokenizer.chat_template", "{{x}}"}},
	}
	f, err := readBytes(synthBytes(t, SynthOptions{Preset: "tiny", Type: TypeF16, Vocab: custom}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadVocab(f)
	if err != nil || !reflect.DeepEqual(got, custom) {
		t.Errorf("ReadVocab = %+v, %v; want %+v", got, err, custom)
	}
	if n, _ := f.Uint("llama.vocab_size"); n != 5 {
		t.Errorf("llama.vocab_size = %d, want 5", n)
	}
	if ti, _ := f.Tensor("output.weight"); !reflect.DeepEqual(ti.Dims, []uint64{64, 5}) {
		t.Errorf("output.weight dims %v", ti.Dims)
	}

	// The built-in vocabulary is padded to the preset's size.
	v := SynthVocab()
	n := len(v.Tokens)
	padVocab(v, 32000)
	if len(v.Tokens) != 32000 || len(v.Scores) != 32000 || len(v.Types) != 32000 || v.Tokens[n] != "<unused0>" || v.Types[31999] != TokenUnused {
		t.Errorf("padded vocabulary: %d tokens, token %d %q", len(v.Tokens), n, v.Tokens[n])
	}
	if err := v.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSynthRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts SynthOptions
		want string
	}{
		{"preset", SynthOptions{Preset: "70b"}, `unknown preset "70b"`},
		{"type", SynthOptions{Type: TypeQ4_0}, "type Q4_0"},
		{"vocab without tokens", SynthOptions{Vocab: &Vocab{Model: "llama"}}, "no tokens"},
		{"vocab without model", SynthOptions{Vocab: &Vocab{Tokens: []string{"a"}}}, "no tokenizer model"},
		{"bos out of range", SynthOptions{Vocab: &Vocab{Model: "llama", Tokens: []string{"a", "b"}, BOS: 2}}, "BOS token id 2"},
		{"scores", SynthOptions{Vocab: &Vocab{Model: "llama", Tokens: []string{"a"}, Scores: []float32{1, 2}}}, "2 scores for 1 tokens"},
		{"types", SynthOptions{Vocab: &Vocab{Model: "llama", Tokens: []string{"a"}, Types: []int32{1, 1}}}, "2 token types"},
		{"extra outside tokenizer", SynthOptions{Vocab: &Vocab{Model: "llama", Tokens: []string{"a"}, Extra: []KV{{"general.name", "x"}}}}, "not a tokenizer.* key"},
		{"extra duplicates a field", SynthOptions{Vocab: &Vocab{Model: "llama", Tokens: []string{"a"}, Extra: []KV{{KeyBOS, uint32(0)}}}}, "duplicates a field"},
	}
	for _, tt := range tests {
		err := Synth(io.Discard, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// BenchmarkSynth writes the small preset at Q8_0 (the 7b preset's type)
// with one worker and with GOMAXPROCS of them: the ratio of the two is
// what making chunks in parallel gives (BENCHMARKS.md).
func BenchmarkSynth(b *testing.B) {
	s, _ := PresetShapes("small")
	for _, procs := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("small-q8_0/procs=%d", procs), func(b *testing.B) {
			old := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(old)
			b.SetBytes(int64(s.Parameters())) // "MB/s" is millions of weights a second
			for b.Loop() {
				if err := Synth(io.Discard, SynthOptions{Preset: "small", Type: TypeQ8_0}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
