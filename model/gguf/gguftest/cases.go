package gguftest

import (
	"encoding/binary"
	"math"
	"strings"

	"github.com/nerstream/nerstream/model/gguf"
)

// Case is one file of the corpus: the tiny model with one edit.
type Case struct {
	// Name says what is wrong with the file.
	Name string
	// Mode is how the file is loaded: the whole model, or its
	// vocabulary only.
	Mode gguf.LoadMode
	// Refused is what the one-line error refusing the file must say, in
	// Go, before llama.cpp sees it; empty when the file must load.
	Refused string
	// Crash says what the pinned llama.cpp does with the file when
	// nothing stops it, as seen running the corpus past the gate
	// (NERSTREAM_HOSTILE_UNGATED=1 go test ./model/llama -run
	// TestHostileFiles -v): the reason the case is here.
	Crash string
	// Edit turns the tiny model into the case's file.
	Edit func(m *Model)
}

// Build returns the case's file, taken apart.
func (c Case) Build() (*Model, error) {
	m, err := Base()
	if err != nil {
		return nil, err
	}
	c.Edit(m)
	return m, nil
}

// WriteFile writes the case's file to path.
func (c Case) WriteFile(path string) error {
	m, err := c.Build()
	if err != nil {
		return err
	}
	return m.WriteFile(path)
}

// u64 is the little-endian encoding of v.
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// Cases returns the corpus: files that the gate must refuse (Refused set)
// and files that must load (Refused empty), each with what llama.cpp does
// with it unguarded. The first five are issue 16's.
func Cases() []Case {
	const (
		abort = "GGML_ASSERT or GGML_ABORT: SIGABRT"
		throw = "a C++ exception past llama.cpp's catch: std::terminate, SIGABRT"
		clean = "llama.cpp refuses it with an error line"
	)
	set := func(key string, v any) func(*Model) { return func(m *Model) { m.Set(key, v) } }
	return []Case{
		{Name: "block_count 0", Refused: "llama.block_count is 0, want 1 to 512", Crash: abort + " (llama_hparams::n_head(0) with no layers)",
			Edit: set("llama.block_count", uint32(0))},
		{Name: "duplicate tokens", Refused: "tokens 300 and 301 are both", Crash: abort + " (id_to_token.size() == token_to_id.size())",
			Edit: func(m *Model) { t := m.Tokens(); t[300] = t[301] }},
		// Found by random edits of the tiny model's header (issue 17): a
		// NUL in "▁who" made "▁\x00ho", which llama.cpp reads as a C
		// string, "▁", a second "▁"; the gate compared whole strings.
		{Name: "NUL inside a token", Refused: "token 300 holds a NUL byte", Crash: abort + " (id_to_token.size() == token_to_id.size(): llama.cpp cuts the text at the NUL, and it is another token's)",
			Edit: func(m *Model) { t := m.Tokens(); t[300] = t[301] + "\x00" + t[300] }},
		{Name: "all tokens empty", Refused: "token 0 is empty", Crash: throw + " (unordered_map::at: no byte token, when tokenizing)",
			Edit: func(m *Model) {
				t := m.Tokens()
				for i := range t {
					t[i] = ""
				}
			}},
		{Name: "tokens as a uint32 array", Refused: "tokenizer.ggml.tokens is a uint32 array, want a string array", Crash: abort + " (type == GGUF_TYPE_STRING)",
			Edit: func(m *Model) { m.Set(gguf.KeyTokens, make([]uint32, len(m.Tokens()))) }},
		{Name: "short scores", Refused: "tokenizer.ggml.scores has", Crash: "loads, reading scores past the end of the array",
			Edit: func(m *Model) { s := m.Scores(); m.Set(gguf.KeyScores, s[:len(s)-5]) }},

		{Name: "head_count 0", Refused: "llama.attention.head_count is 0", Crash: clean,
			Edit: set("llama.attention.head_count", uint32(0))},
		{Name: "head_count not dividing the embedding", Refused: "is not a multiple of the 3 heads", Crash: clean,
			Edit: func(m *Model) {
				m.Set("llama.attention.head_count", uint32(3))
				m.Set("llama.attention.head_count_kv", uint32(3))
			}},
		{Name: "head_count_kv above head_count", Refused: "llama.attention.head_count_kv is 8, more than the 4 heads", Crash: clean,
			Edit: set("llama.attention.head_count_kv", uint32(8))},
		{Name: "head_count_kv not dividing head_count", Refused: "does not divide the 4 heads", Crash: clean,
			Edit: set("llama.attention.head_count_kv", uint32(3))},
		{Name: "head_count varies by layer", Refused: "differs between layers", Crash: "loads, every layer sized by layer 0's",
			Edit: set("llama.attention.head_count", []int32{4, 2})},
		{Name: "head_count as a float32 array", Refused: "llama.attention.head_count is a float32 array", Crash: abort + " (get_arr's type assertion)",
			Edit: set("llama.attention.head_count", []float32{4, 4})},
		{Name: "feed_forward_length 0", Refused: "llama.feed_forward_length is 0", Crash: clean,
			Edit: set("llama.feed_forward_length", uint32(0))},
		{Name: "context_length 0", Refused: "llama.context_length is 0, want 1 to 16777216", Crash: "loads; no prompt fits the context",
			Edit: set("llama.context_length", uint32(0))},
		{Name: "context_length absurd", Refused: "llama.context_length is 4294967295", Crash: "loads",
			Edit: set("llama.context_length", uint32(math.MaxUint32))},
		{Name: "no rms epsilon", Refused: "llama.attention.layer_norm_rms_epsilon is missing", Crash: clean,
			Edit: func(m *Model) { m.Delete("llama.attention.layer_norm_rms_epsilon") }},
		{Name: "rope dimensions other than the head width", Refused: "llama.rope.dimension_count is 8, want the head width 16", Crash: clean,
			Edit: set("llama.rope.dimension_count", uint32(8))},
		{Name: "unknown rope scaling", Refused: `llama.rope.scaling.type is "cubic"`, Crash: abort + " (rope_scaling_type_train != UNSPECIFIED)",
			Edit: set("llama.rope.scaling.type", "cubic")},
		{Name: "experts used without experts", Refused: "mixture-of-experts models are not supported", Crash: abort + " (n_expert_used == 0)",
			Edit: set("llama.expert_used_count", uint32(2))},
		{Name: "value heads narrower than key heads", Refused: "the value heads are 8 wide and the key heads 16", Crash: abort + " building the graph (n_embd_head == n_embd_head_k)",
			Edit: func(m *Model) {
				m.Set("llama.attention.value_length", uint32(8))
				m.Reshape("blk.0.attn_v.weight", 64, 32)
				m.Reshape("blk.1.attn_v.weight", 64, 32)
			}},

		{Name: "vocab_size other than the tokens", Refused: "llama.vocab_size is", Crash: "loads",
			Edit: func(m *Model) { m.Set("llama.vocab_size", uint32(len(m.Tokens())+1)) }},
		{Name: "short token types", Refused: "tokenizer.ggml.token_type has", Crash: "loads, reading token types past the end of the array",
			Edit: func(m *Model) { t := m.TokenTypes(); m.Set(gguf.KeyTokenTypes, t[:len(t)-1]) }},
		{Name: "scores as strings", Refused: "tokenizer.ggml.scores is a string array", Crash: "loads, the scores silently 0 (a string array has no data)",
			Edit: func(m *Model) { m.Set(gguf.KeyScores, make([]string, len(m.Tokens()))) }},
		{Name: "token types as uint8", Refused: "tokenizer.ggml.token_type is a uint8 array", Crash: "reads int32 types past the end of a byte array: garbage types",
			Edit: func(m *Model) { m.Set(gguf.KeyTokenTypes, make([]uint8, len(m.Tokens()))) }},
		{Name: "token type 99", Refused: "token 5 has type 99", Crash: "loads, the token's type undefined",
			Edit: func(m *Model) { m.TokenTypes()[5] = 99 }},
		{Name: "byte type on a normal token", Refused: "token 300 is a byte token", Crash: "loads; the token decodes as a garbage byte",
			Edit: func(m *Model) { m.TokenTypes()[300] = gguf.TokenByte }},
		{Name: "missing byte token", Refused: "no token for byte 0xC3", Crash: throw + " when a text holds the byte (é)",
			Edit: func(m *Model) {
				i := 3 + 0xC3 // after <unk>, <s> and </s>
				m.Tokens()[i] = "<nobyte>"
				m.TokenTypes()[i] = gguf.TokenNormal
			}},
		{Name: "empty vocabulary", Refused: "tokenizer.ggml.tokens is empty", Crash: "indexes an empty vocabulary with the default special ids: SIGSEGV",
			Edit: func(m *Model) {
				m.Set(gguf.KeyTokens, []string{})
				m.Delete(gguf.KeyScores)
				m.Delete(gguf.KeyTokenTypes)
			}},
		{Name: "NaN score", Refused: "the score of token 7 is NaN", Crash: "loads; SentencePiece's merge queue compares NaNs",
			Edit: func(m *Model) { m.Scores()[7] = float32(math.NaN()) }},
		{Name: "bos id out of range", Refused: "tokenizer.ggml.bos_token_id is", Crash: "loads with a warning and the default id",
			Edit: func(m *Model) { m.Set(gguf.KeyBOS, uint32(len(m.Tokens()))) }},
		{Name: "eos id 2^32-1", Refused: "tokenizer.ggml.eos_token_id is 4294967295", Crash: "loads with a warning and the default id",
			Edit: set(gguf.KeyEOS, uint32(math.MaxUint32))},
		{Name: "bos id as a string", Refused: "tokenizer.ggml.bos_token_id is a string, want a uint32", Crash: clean,
			Edit: set(gguf.KeyBOS, "1")},
		{Name: "merges of the wrong type for a SentencePiece vocabulary", Refused: "tokenizer.ggml.merges is a uint32 array", Crash: "loads (merges are read for BPE only)",
			Edit: set("tokenizer.ggml.merges", []uint32{1, 2, 3})},
		{Name: "tokenizer gpt2 without merges", Refused: `tokenizer.ggml.model is "gpt2"`, Crash: clean,
			Edit: set(gguf.KeyTokenizerModel, "gpt2")},
		{Name: "architecture other than llama", Refused: `general.architecture is "falcon"`, Crash: clean,
			Edit: set("general.architecture", "falcon")},
		{Name: "split model", Refused: "split.count is 3", Crash: clean,
			Edit: set("split.count", uint16(3))},

		{Name: "empty key", Refused: "has an empty key", Crash: abort + " (!key.empty(), in gguf's reader)",
			Edit: set("", uint32(1))},
		{Name: "NUL key shadowing the tokens", Refused: "holds a NUL byte", Crash: abort + " (strcmp finds the uint32 array first)",
			Edit: func(m *Model) { m.Prepend(gguf.KeyTokens+"\x00", make([]uint32, len(m.Tokens()))) }},
		{Name: "alignment as uint64", Refused: "general.alignment is a uint64, want a uint32", Crash: abort + " (gguf_get_val_u32's type assertion)",
			Edit: set(gguf.KeyAlignment, uint64(32))},
		{Name: "array of arrays", Refused: "is an array of arrays", Crash: clean + " (gguf's reader has no nested arrays)",
			Edit: set("general.tags", []any{[]uint32{1}, []string{"x"}})},
		{Name: "arrays nested 10 deep", Refused: "nested more than 8 deep", Crash: clean,
			Edit: func(m *Model) {
				var v any = []uint8{1}
				for range 10 {
					v = []any{v}
				}
				m.Set("general.deep", v)
			}},
		{Name: "huge string length", Refused: "string of length 4611686018427387904 needs", Crash: clean + " (length_error)",
			Edit: set("general.description", Raw{Type: TypeString, Bytes: u64(1 << 62)})},
		{Name: "huge array", Refused: "array of 1152921504606846976 uint32 values is more than", Crash: clean + " (bad_alloc)",
			Edit: set("general.tags", Raw{Type: TypeArray, Bytes: append(binary.LittleEndian.AppendUint32(nil, TypeUint32), u64(1<<60)...)})},
		{Name: "huge tensor count", Refused: "tensor count 4611686018427387904 is more than", Crash: clean,
			Edit: func(m *Model) { m.TensorCount = 1 << 62 }},
		{Name: "GGUF version 1", Refused: "version 1 is not supported", Crash: clean,
			Edit: func(m *Model) { m.Version = 1 }},

		{Name: "tensor offset past the end", Refused: "run past the end", Crash: clean,
			Edit: func(m *Model) { m.Offsets = map[string]uint64{"blk.1.ffn_up.weight": 1 << 40} }},
		{Name: "overlapping tensors", Refused: `"output_norm.weight" starts at offset 0 of the data section`, Crash: clean,
			Edit: func(m *Model) { m.Offsets = map[string]uint64{"output_norm.weight": 0} }},
		{Name: "tensor dimensions that overflow", Refused: "overflow", Crash: clean,
			Edit: func(m *Model) { m.Reshape("token_embd.weight", 1<<32, 1<<32) }},
		{Name: "tensor dimension 0", Refused: `"output_norm.weight" has a dimension of 0`, Crash: "divides by zero in gguf's reader: SIGFPE",
			Edit: func(m *Model) { m.Reshape("output_norm.weight", 64, 0) }},
		{Name: "missing tensor", Refused: `tensor "blk.1.ffn_up.weight" is missing`, Crash: clean,
			Edit: func(m *Model) { m.Drop("blk.1.ffn_up.weight") }},
		{Name: "wrong tensor shape", Refused: `tensor "blk.0.attn_k.weight" has shape [64 32], want [64 64]`, Crash: clean,
			Edit: func(m *Model) { m.Reshape("blk.0.attn_k.weight", 64, 32) }},
		{Name: "token_embd one token short", Refused: `"token_embd.weight" has shape`, Crash: clean,
			Edit: func(m *Model) { m.Reshape("token_embd.weight", 64, uint64(len(m.Tokens())-1)) }},
		{Name: "output one token long", Refused: `"output.weight" has shape`, Crash: clean,
			Edit: func(m *Model) { m.Reshape("output.weight", 64, uint64(len(m.Tokens())+1)) }},
		{Name: "unknown ggml type", Refused: "unknown ggml type 4", Crash: clean,
			Edit: func(m *Model) { m.Retype("blk.0.attn_q.weight", 4) }},
		{Name: "integer weights", Refused: `"blk.0.attn_q.weight" is of type I8`, Crash: "SIGSEGV at the first decode (no matrix product for I8)",
			Edit: func(m *Model) { m.Retype("blk.0.attn_q.weight", gguf.TypeI8) }},
		{Name: "F16 norm", Refused: `"output_norm.weight" is of type F16, want F32`, Crash: "GGML_ABORT at the first decode (binary_op: unsupported types): SIGABRT",
			Edit: func(m *Model) { m.Retype("output_norm.weight", gguf.TypeF16) }},
		{Name: "extra tensor", Refused: `unexpected tensor "blk.0.attn_rot_embd"`, Crash: clean,
			Edit: func(m *Model) {
				m.Add(gguf.TensorInfo{Name: "blk.0.attn_rot_embd", Dims: []uint64{8}, Type: gguf.TypeF32})
			}},
		{Name: "tensor name of 70 bytes", Refused: "(70 bytes) is longer than ggml's 63 bytes", Crash: clean,
			Edit: func(m *Model) {
				m.Add(gguf.TensorInfo{Name: strings.Repeat("n", 70), Dims: []uint64{8}, Type: gguf.TypeF32})
			}},

		{Name: "vocabulary only: bos id out of range", Mode: gguf.LoadVocab, Refused: "tokenizer.ggml.bos_token_id is", Crash: "loads with a warning",
			Edit: func(m *Model) { m.Set(gguf.KeyBOS, uint32(len(m.Tokens()))) }},

		// Files that must load.
		{Name: "vocabulary only: block_count 0 is not read", Mode: gguf.LoadVocab, Crash: "loads",
			Edit: set("llama.block_count", uint32(0))},
		{Name: "undefined token type 0", Crash: "loads",
			Edit: func(m *Model) { m.TokenTypes()[300] = 0 }},
		{Name: "no output tensor: tied to the embedding", Crash: "loads",
			Edit: func(m *Model) { m.Drop("output.weight") }},
		{Name: "head_count per layer", Crash: "loads",
			Edit: set("llama.attention.head_count", []int32{4, 4})},
		{Name: "no scores", Crash: "loads",
			Edit: func(m *Model) { m.Delete(gguf.KeyScores) }},
		{Name: "linear rope scaling", Crash: "loads",
			Edit: func(m *Model) {
				m.Set("llama.rope.scaling.type", "linear")
				m.Set("llama.rope.scaling.factor", float32(2))
			}},
		{Name: "Q8_0 and Q4_0 weights", Crash: "loads",
			Edit: func(m *Model) {
				m.Retype("blk.0.ffn_up.weight", gguf.TypeQ8_0)
				m.Retype("blk.1.ffn_down.weight", gguf.TypeQ4_0)
			}},
	}
}
