package gguf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrModel is wrapped by every error of [File.CheckLlama]: the file is GGUF,
// but llama.cpp would abort on it, read past the end of an array, or refuse
// it.
var ErrModel = errors.New("gguf: not a LLaMA model that llama.cpp can load")

// LoadMode says what llama.cpp will read of a file, and so what
// [File.CheckLlama] checks.
type LoadMode int

const (
	// LoadModel is a whole model: metadata, hyperparameters, vocabulary
	// and tensors.
	LoadModel LoadMode = iota
	// LoadVocab is llama.cpp's vocab_only load: the file's structure,
	// general.* and the vocabulary; hyperparameters and tensors are not
	// read (but the tensor descriptions still are).
	LoadVocab
)

// Limits of the gate, from llama.cpp and ggml where they have one.
const (
	// MaxLayers is llama.cpp's LLAMA_MAX_LAYERS: the per-layer arrays of
	// its hyperparameters hold this many.
	MaxLayers = 512
	// MaxContext bounds {arch}.context_length: 16 Mi tokens, above any
	// released model (the largest are near 10 M).
	MaxContext = 1 << 24
	// MaxTensorName is the longest tensor name ggml holds (GGML_MAX_NAME
	// 64, with its NUL).
	MaxTensorName = 63
)

// Architecture is the only general.architecture the gate accepts: the
// engine runs LLaMA models (UniNER is LLaMA-1 7B).
const Architecture = "llama"

// OpenLlama reads the header of the GGUF file at path and checks it with
// [File.CheckLlama].
func OpenLlama(path string, mode LoadMode) (*File, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	if err := f.CheckLlama(mode); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// CheckLlama checks everything that the pinned llama.cpp's loader reads
// from a LLaMA model (or, with [LoadVocab], from its vocabulary), so that
// llama.cpp never sees a file it would abort on. It reads only the header
// ([Read] has already bounded it); the first problem found comes back as
// one line that wraps [ErrModel]. The package doc lists the checks.
func (f *File) CheckLlama(mode LoadMode) error {
	c := &checker{f: f, kv: make(map[string]any, len(f.KVs))}
	for _, kv := range f.KVs {
		c.kv[kv.Key] = kv.Value
	}
	if err := c.run(mode); err != nil {
		return fmt.Errorf("%w: %w", ErrModel, err)
	}
	return nil
}

// checker holds the file under check and its metadata by key.
type checker struct {
	f  *File
	kv map[string]any
}

func problem(format string, args ...any) error { return fmt.Errorf(format, args...) }

func (c *checker) run(mode LoadMode) error {
	if err := c.structure(); err != nil {
		return err
	}
	if err := c.general(); err != nil {
		return err
	}
	nTokens, err := c.vocab()
	if err != nil {
		return err
	}
	if mode == LoadVocab {
		return nil
	}
	hp, err := c.hparams(nTokens)
	if err != nil {
		return err
	}
	return c.tensors(hp, nTokens)
}

// structure checks what ggml's gguf reader asserts or reads its own way:
// keys, nested arrays, the alignment's type, tensor names, dimensions and
// the layout of the data section.
func (c *checker) structure() error {
	for i, kv := range c.f.KVs {
		if kv.Key == "" {
			return problem("metadata entry %d has an empty key", i) // GGML_ASSERT(!key.empty())
		}
		if strings.IndexByte(kv.Key, 0) >= 0 {
			// C finds keys with strcmp: this one would shadow another.
			return problem("metadata key %s holds a NUL byte", quote(kv.Key))
		}
		if _, nested := kv.Value.([]any); nested {
			return problem("%s is an array of arrays, which llama.cpp does not read", quote(kv.Key))
		}
	}
	if v, ok := c.kv[KeyAlignment]; ok {
		if _, ok := v.(uint32); !ok { // gguf_get_val_u32 asserts the type
			return problem("%s is a %s, want a uint32", KeyAlignment, typeName(v))
		}
	}
	var next uint64 // where the next tensor's data must start
	for _, t := range c.f.Tensors {
		if len(t.Name) > MaxTensorName {
			return problem("tensor name %s is longer than ggml's %d bytes", quote(t.Name), MaxTensorName)
		}
		if strings.IndexByte(t.Name, 0) >= 0 {
			return problem("tensor name %s holds a NUL byte", quote(t.Name))
		}
		ne := [MaxDims]uint64{1, 1, 1, 1}
		copy(ne[:], t.Dims)
		for _, d := range ne {
			if d == 0 {
				// ggml's reader divides by each dimension.
				return problem("tensor %s has a dimension of 0 (shape %v)", quote(t.Name), t.Dims)
			}
		}
		n, err := t.Bytes() // bounds the products below
		if err != nil {
			return err
		}
		// ggml's own bound: the element count stays below 2^63-1.
		if maxInt64/ne[1] <= ne[0] || maxInt64/ne[2] <= ne[0]*ne[1] || maxInt64/ne[3] <= ne[0]*ne[1]*ne[2] {
			return problem("tensor %s has too many elements (shape %v)", quote(t.Name), t.Dims)
		}
		if t.Offset != next {
			// ggml wants each tensor right after the one before it.
			return problem("tensor %s starts at offset %d of the data section, want %d (right after the tensor before it)", quote(t.Name), t.Offset, next)
		}
		next += alignUp(n, c.f.Alignment)
	}
	return nil
}

// general checks the general.* and split.* keys that llama.cpp reads.
func (c *checker) general() error {
	arch, ok, err := c.str("general.architecture")
	switch {
	case err != nil:
		return err
	case !ok:
		return problem("general.architecture is missing")
	case arch != Architecture:
		return problem("general.architecture is %s; only %q is supported", quote(arch), Architecture)
	}
	if _, _, err := c.str("general.name"); err != nil {
		return err
	}
	if _, _, err := c.u32("general.file_type"); err != nil {
		return err
	}
	if v, ok := c.kv["split.count"]; ok {
		n, ok := v.(uint16)
		if !ok {
			return problem("split.count is a %s, want a uint16", typeName(v))
		}
		if n > 1 {
			return problem("split.count is %d: split models are not supported", n)
		}
	}
	return nil
}

// specialKeys are the special-token ids llama.cpp reads, each with the id
// it takes when the key is absent (SentencePiece's defaults), or -1 for
// none.
var specialKeys = []struct {
	key string
	def int64
}{
	{KeyBOS, 1}, {KeyEOS, 2}, {KeyUNK, 0},
	{"tokenizer.ggml.eot_token_id", -1}, {"tokenizer.ggml.eom_token_id", -1},
	{"tokenizer.ggml.seperator_token_id", -1}, {"tokenizer.ggml.padding_token_id", -1},
	{"tokenizer.ggml.mask_token_id", -1},
	{"tokenizer.ggml.fim_pre_token_id", -1}, {"tokenizer.ggml.fim_suf_token_id", -1},
	{"tokenizer.ggml.fim_mid_token_id", -1}, {"tokenizer.ggml.fim_pad_token_id", -1},
	{"tokenizer.ggml.fim_rep_token_id", -1}, {"tokenizer.ggml.fim_sep_token_id", -1},
	{"tokenizer.ggml.prefix_token_id", -1}, {"tokenizer.ggml.suffix_token_id", -1},
	{"tokenizer.ggml.middle_token_id", -1},
}

// vocabBools are the tokenizer flags llama.cpp reads, as bools.
var vocabBools = []string{KeyAddBOS, KeyAddEOS, "tokenizer.ggml.add_sep_token",
	"tokenizer.ggml.add_space_prefix", "tokenizer.ggml.remove_extra_whitespaces"}

// vocab checks the tokenizer.* keys and returns the number of tokens.
func (c *checker) vocab() (int, error) {
	model, ok, err := c.str(KeyTokenizerModel)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, problem("%s is missing", KeyTokenizerModel)
	case model != "llama":
		// Other tokenizers have other ways to abort (BPE's byte
		// tokens, WPM, UGM's charsmap) that the gate does not check,
		// and the engine needs SentencePiece's </s>.
		return 0, problem("%s is %s; only \"llama\" (SentencePiece) is supported", KeyTokenizerModel, quote(model))
	}
	if _, _, err := c.str("tokenizer.ggml.pre"); err != nil {
		return 0, err
	}
	if _, _, err := c.u32("tokenizer.ggml.token_type_count"); err != nil {
		return 0, err
	}
	for _, k := range vocabBools {
		if _, _, err := c.boolean(k); err != nil {
			return 0, err
		}
	}
	v, ok := c.kv[KeyTokens]
	if !ok {
		return 0, problem("%s is missing", KeyTokens)
	}
	tokens, ok := v.([]string)
	if !ok {
		return 0, problem("%s is a %s, want a string array", KeyTokens, typeName(v))
	}
	n := len(tokens)
	if n == 0 {
		return 0, problem("%s is empty", KeyTokens)
	}
	if n > math.MaxInt32 {
		return 0, problem("%s has %d tokens, more than token ids hold", KeyTokens, n)
	}
	ids := make(map[string]int, n)
	for i, tok := range tokens {
		if tok == "" {
			return 0, problem("token %d is empty", i)
		}
		if strings.IndexByte(tok, 0) >= 0 {
			// llama.cpp reads a token's text as a C string: the text
			// would end at the NUL, and could be another token's.
			return 0, problem("token %d holds a NUL byte (%s), where llama.cpp would cut its text", i, quote(tok))
		}
		if j, dup := ids[tok]; dup {
			return 0, problem("tokens %d and %d are both %s", j, i, quote(tok))
		}
		ids[tok] = i
	}
	if v, ok := c.kv[KeyScores]; ok {
		scores, ok := v.([]float32)
		if !ok {
			return 0, problem("%s is a %s, want a float32 array", KeyScores, typeName(v))
		}
		if len(scores) != n {
			return 0, problem("%s has %d entries for %d tokens", KeyScores, len(scores), n)
		}
		for i, s := range scores {
			if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
				return 0, problem("the score of token %d is %v", i, s)
			}
		}
	}
	if v, ok := c.kv[KeyTokenTypes]; ok {
		types, ok := v.([]int32)
		if !ok {
			return 0, problem("%s is a %s, want an int32 array", KeyTokenTypes, typeName(v))
		}
		if len(types) != n {
			return 0, problem("%s has %d entries for %d tokens", KeyTokenTypes, len(types), n)
		}
		for i, typ := range types {
			if typ < 0 || typ > TokenByte {
				return 0, problem("token %d has type %d, want 0 to %d", i, typ, TokenByte)
			}
			if typ == TokenByte && !isByteToken(tokens[i]) {
				// llama.cpp reads the byte from the text's 4th and
				// 5th characters.
				return 0, problem("token %d is a byte token, but its text %s is not <0xHH>", i, quote(tokens[i]))
			}
		}
	}
	// SentencePiece falls back to byte tokens for any text it has no
	// piece for, and llama.cpp throws, past its own catch, when one is
	// missing.
	for b := range 256 {
		_, hex := ids[fmt.Sprintf("<0x%02X>", b)]
		_, raw := ids[string([]byte{byte(b)})]
		if !hex && !raw {
			return 0, problem("the vocabulary has no token for byte 0x%02X (<0x%02X>), which SentencePiece needs", b, b)
		}
	}
	for _, s := range specialKeys {
		id, ok, err := c.u32(s.key)
		if err != nil {
			return 0, err
		}
		switch {
		case ok && int64(id) >= int64(n):
			return 0, problem("%s is %d, but there are %d tokens", s.key, id, n)
		case !ok && s.def >= int64(n):
			return 0, problem("%s is missing and its default %d is not a token of the %d", s.key, s.def, n)
		}
	}
	if v, ok := c.kv["tokenizer.ggml.merges"]; ok {
		if _, ok := v.([]string); !ok {
			return 0, problem("tokenizer.ggml.merges is a %s, want a string array", typeName(v))
		}
	}
	// A model named like Phi-3 gets attributes set on these tokens,
	// looked up with at(), which throws when one is missing.
	if name, _, _ := c.str("general.name"); strings.Contains(strings.ToLower(name), "phi-3") || strings.Contains(strings.ToLower(name), "phi3") {
		for _, tok := range []string{"</s>", "<unk>", "<s>", "<|endoftext|>"} {
			if _, ok := ids[tok]; !ok {
				return 0, problem("general.name %s names a Phi-3 model, whose token %s the vocabulary lacks", quote(name), quote(tok))
			}
		}
	}
	return n, nil
}

// isByteToken reports whether a byte token's text is <0xHH>.
func isByteToken(s string) bool {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return false
	}
	_, err := strconv.ParseUint(s[3:5], 16, 8)
	return err == nil
}

// hparams are a LLaMA model's hyperparameters, as llama.cpp derives them.
type hparams struct {
	embd, layers, heads, headsKV, ff uint64
	headK, headV                     uint64 // the width of a key and of a value head
	longrope                         bool
}

// ropeTypes are the values of {arch}.rope.scaling.type that llama.cpp
// knows; it asserts on any other.
var ropeTypes = map[string]bool{"none": true, "linear": true, "yarn": true, "longrope": true}

// hparams checks the {arch}.* keys llama.cpp reads for a LLaMA model.
func (c *checker) hparams(nTokens int) (hparams, error) {
	var hp hparams
	k := func(s string) string { return Architecture + "." + s }
	var err error
	if _, err = c.u32Range(k("context_length"), true, 1, MaxContext); err != nil {
		return hp, err
	}
	if hp.embd, err = c.u32Range(k("embedding_length"), true, 1, math.MaxInt32); err != nil {
		return hp, err
	}
	if hp.layers, err = c.u32Range(k("block_count"), true, 1, MaxLayers); err != nil {
		return hp, err
	}
	for _, e := range []string{"expert_count", "expert_used_count", "expert_group_count", "expert_group_used_count"} {
		n, ok, err := c.u32(k(e))
		if err != nil {
			return hp, err
		}
		if ok && n != 0 {
			return hp, problem("%s is %d: mixture-of-experts models are not supported", k(e), n)
		}
	}
	if hp.ff, err = c.perLayer(k("feed_forward_length"), hp.layers, 0); err != nil {
		return hp, err
	}
	if hp.heads, err = c.perLayer(k("attention.head_count"), hp.layers, 0); err != nil {
		return hp, err
	}
	if hp.headsKV, err = c.perLayer(k("attention.head_count_kv"), hp.layers, hp.heads); err != nil {
		return hp, err
	}
	switch {
	case hp.headsKV > hp.heads:
		return hp, problem("%s is %d, more than the %d heads", k("attention.head_count_kv"), hp.headsKV, hp.heads)
	case hp.heads%hp.headsKV != 0:
		return hp, problem("%s is %d, which does not divide the %d heads", k("attention.head_count_kv"), hp.headsKV, hp.heads)
	case hp.embd%hp.heads != 0:
		return hp, problem("%s %d is not a multiple of the %d heads", k("embedding_length"), hp.embd, hp.heads)
	}
	hp.headK, hp.headV = hp.embd/hp.heads, hp.embd/hp.heads
	if v, ok, err := c.u32(k("attention.key_length")); err != nil {
		return hp, err
	} else if ok {
		hp.headK = uint64(v)
	}
	if v, ok, err := c.u32(k("attention.value_length")); err != nil {
		return hp, err
	} else if ok {
		hp.headV = uint64(v)
	}
	switch {
	case hp.headK == 0 || hp.headK%2 != 0:
		return hp, problem("the key heads are %d wide, want an even width", hp.headK)
	case hp.headV != hp.headK:
		// llama.cpp's LLaMA graph sizes the output projection by the
		// key width.
		return hp, problem("the value heads are %d wide and the key heads %d: LLaMA wants them equal", hp.headV, hp.headK)
	case hp.headK*hp.heads > math.MaxInt32:
		return hp, problem("%d heads of %d are too wide", hp.heads, hp.headK)
	}
	if rot, ok, err := c.u32(k("rope.dimension_count")); err != nil {
		return hp, err
	} else if ok && uint64(rot) != hp.headK {
		return hp, problem("%s is %d, want the head width %d", k("rope.dimension_count"), rot, hp.headK)
	}
	if _, _, err := c.boolean(k("rope.scaling.finetuned")); err != nil {
		return hp, err
	}
	if _, err := c.u32Range(k("rope.scaling.original_context_length"), false, 1, math.MaxUint32); err != nil {
		return hp, err
	}
	if typ, ok, err := c.str(k("rope.scaling.type")); err != nil {
		return hp, err
	} else if ok && !ropeTypes[typ] {
		return hp, problem("%s is %s, want none, linear, yarn or longrope", k("rope.scaling.type"), quote(typ))
	} else {
		hp.longrope = typ == "longrope"
	}
	for _, f := range []struct {
		key      string
		required bool
		zero     bool // 0 allowed
	}{
		{k("attention.layer_norm_rms_epsilon"), true, false},
		{k("rope.freq_base"), false, false},
		{k("rope.scaling.factor"), false, true},
		{k("rope.scale_linear"), false, true},
		{k("rope.scaling.attn_factor"), false, false},
	} {
		if err := c.positive(f.key, f.required, f.zero); err != nil {
			return hp, err
		}
	}
	if v, ok := c.kv[k("classifier.output_labels")]; ok {
		if _, ok := v.([]string); !ok {
			return hp, problem("%s is a %s, want a string array", k("classifier.output_labels"), typeName(v))
		}
	}
	if n, ok, err := c.u32(k("vocab_size")); err != nil {
		return hp, err
	} else if ok && int64(n) != int64(nTokens) {
		return hp, problem("%s is %d, but %s holds %d tokens", k("vocab_size"), n, KeyTokens, nTokens)
	}
	return hp, nil
}

// tensorWant is a tensor the LLaMA loader creates: its shape, whether it
// may be absent, and whether it is a vector (norms, biases, rope factors:
// F32) or a matrix (a weight type ggml multiplies).
type tensorWant struct {
	dims     []uint64
	optional bool
	matrix   bool
}

// weightTypes are the types of matrices that ggml's CPU backend both
// multiplies and looks rows up in: the float and quantised types, without
// the intermediate Q8_1 and Q8_K nor the integer types.
var weightTypes = map[GGMLType]bool{
	TypeF32: true, TypeF16: true, TypeBF16: true,
	TypeQ4_0: true, TypeQ4_1: true, TypeQ5_0: true, TypeQ5_1: true, TypeQ8_0: true,
	TypeQ2_K: true, TypeQ3_K: true, TypeQ4_K: true, TypeQ5_K: true, TypeQ6_K: true,
	TypeIQ2_XXS: true, TypeIQ2_XS: true, TypeIQ3_XXS: true, TypeIQ1_S: true, TypeIQ4_NL: true,
	TypeIQ3_S: true, TypeIQ2_S: true, TypeIQ4_XS: true, TypeIQ1_M: true,
	TypeTQ1_0: true, TypeTQ2_0: true, TypeMXFP4: true,
}

// llamaWants returns the tensors of a LLaMA model with these
// hyperparameters, by name, as llama.cpp's load_tensors creates them.
func llamaWants(hp hparams, nTokens int) map[string]tensorWant {
	e, v, ff := hp.embd, uint64(nTokens), hp.ff
	q, kv := hp.headK*hp.heads, hp.headK*hp.headsKV
	vec := func(n uint64, optional bool) tensorWant { return tensorWant{dims: []uint64{n}, optional: optional} }
	mat := func(a, b uint64, optional bool) tensorWant {
		return tensorWant{dims: []uint64{a, b}, optional: optional, matrix: true}
	}
	w := make(map[string]tensorWant, 4+16*hp.layers)
	w["token_embd.weight"] = mat(e, v, false)
	w["output_norm.weight"] = vec(e, false)
	w["output.weight"] = mat(e, v, true) // else tied to token_embd
	if hp.longrope {
		w["rope_factors_long.weight"] = vec(hp.headK/2, true)
		w["rope_factors_short.weight"] = vec(hp.headK/2, true)
	} else {
		w["rope_freqs.weight"] = vec(hp.headK/2, true)
	}
	for i := range hp.layers {
		p := "blk." + strconv.FormatUint(i, 10) + "."
		w[p+"attn_norm.weight"] = vec(e, false)
		w[p+"attn_q.weight"] = mat(e, q, false)
		w[p+"attn_k.weight"] = mat(e, kv, false)
		w[p+"attn_v.weight"] = mat(e, kv, false)
		w[p+"attn_output.weight"] = mat(q, e, false)
		w[p+"ffn_norm.weight"] = vec(e, false)
		w[p+"ffn_gate.weight"] = mat(e, ff, false)
		w[p+"ffn_down.weight"] = mat(ff, e, false)
		w[p+"ffn_up.weight"] = mat(e, ff, false)
		if q == e {
			// llama.cpp sizes the query and output biases by the
			// embedding, so they fit the graph only when the heads
			// fill it.
			w[p+"attn_q.bias"] = vec(e, true)
			w[p+"attn_output.bias"] = vec(e, true)
		}
		w[p+"attn_k.bias"] = vec(kv, true)
		w[p+"attn_v.bias"] = vec(kv, true)
		w[p+"ffn_gate.bias"] = vec(ff, true)
		w[p+"ffn_down.bias"] = vec(e, true)
		w[p+"ffn_up.bias"] = vec(ff, true)
	}
	return w
}

// tensors checks the tensors against the ones a LLaMA model of these
// hyperparameters has: no other, none missing, each of its shape, and of
// a type ggml computes with.
func (c *checker) tensors(hp hparams, nTokens int) error {
	wants := llamaWants(hp, nTokens)
	for _, t := range c.f.Tensors {
		w, ok := wants[t.Name]
		if !ok {
			return problem("unexpected tensor %s: not one of a LLaMA model's", quote(t.Name))
		}
		if !sameShape(t.Dims, w.dims) {
			return problem("tensor %s has shape %v, want %v", quote(t.Name), t.Dims, w.dims)
		}
		switch {
		case w.matrix && !weightTypes[t.Type]:
			return problem("tensor %s is of type %s, which ggml does not compute with as a weight", quote(t.Name), t.Type)
		case !w.matrix && t.Type != TypeF32:
			return problem("tensor %s is of type %s, want F32", quote(t.Name), t.Type)
		}
	}
	// In a fixed order, so that the first missing tensor is the one
	// named.
	for _, name := range requiredOrder(hp) {
		if _, ok := c.f.Tensor(name); !ok {
			return problem("tensor %s is missing", quote(name))
		}
	}
	return nil
}

// requiredOrder lists the required tensors in the order llama.cpp creates
// them.
func requiredOrder(hp hparams) []string {
	names := []string{"token_embd.weight", "output_norm.weight"}
	for i := range hp.layers {
		p := "blk." + strconv.FormatUint(i, 10) + "."
		for _, s := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"} {
			names = append(names, p+s+".weight")
		}
	}
	return names
}

// sameShape compares dimensions as ggml does: trailing 1s do not count.
func sameShape(a, b []uint64) bool {
	for i := range MaxDims {
		x, y := uint64(1), uint64(1)
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

// str returns a string-valued key; a key of another type is a problem.
func (c *checker) str(key string) (string, bool, error) {
	v, ok := c.kv[key]
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, problem("%s is a %s, want a string", key, typeName(v))
	}
	return s, true, nil
}

// u32 returns a uint32-valued key, the only integer type llama.cpp's
// get_key takes for these keys.
func (c *checker) u32(key string) (uint32, bool, error) {
	v, ok := c.kv[key]
	if !ok {
		return 0, false, nil
	}
	u, ok := v.(uint32)
	if !ok {
		return 0, false, problem("%s is a %s, want a uint32", key, typeName(v))
	}
	return u, true, nil
}

// u32Range returns a uint32-valued key that must lie in lo..hi (0 when it
// is absent and not required).
func (c *checker) u32Range(key string, required bool, lo, hi uint64) (uint64, error) {
	u, ok, err := c.u32(key)
	switch {
	case err != nil:
		return 0, err
	case !ok && required:
		return 0, problem("%s is missing", key)
	case ok && (uint64(u) < lo || uint64(u) > hi):
		return 0, problem("%s is %d, want %d to %d", key, u, lo, hi)
	}
	return uint64(u), nil
}

func (c *checker) boolean(key string) (bool, bool, error) {
	v, ok := c.kv[key]
	if !ok {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, false, problem("%s is a %s, want a bool", key, typeName(v))
	}
	return b, true, nil
}

// positive checks a float32-valued key: finite, and above 0 (or 0 when
// zero is set).
func (c *checker) positive(key string, required, zero bool) error {
	v, ok := c.kv[key]
	if !ok {
		if required {
			return problem("%s is missing", key)
		}
		return nil
	}
	x, ok := v.(float32)
	if !ok {
		return problem("%s is a %s, want a float32", key, typeName(v))
	}
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || (f == 0 && !zero) {
		return problem("%s is %v, want a positive number", key, x)
	}
	return nil
}

// perLayer reads a hyperparameter that llama.cpp takes as one uint32 or as
// an array of one per layer, which must then all be equal (llama.cpp sizes
// the tensors by layer 0's). It must be positive; when absent it is def,
// or missing when def is 0.
func (c *checker) perLayer(key string, layers, def uint64) (uint64, error) {
	v, ok := c.kv[key]
	if !ok {
		if def == 0 {
			return 0, problem("%s is missing", key)
		}
		return def, nil
	}
	var vals []int64
	switch x := v.(type) {
	case uint32:
		vals = []int64{int64(x)}
	case []uint32:
		for _, e := range x {
			vals = append(vals, int64(e))
		}
	case []int32:
		for _, e := range x {
			vals = append(vals, int64(e))
		}
	default:
		return 0, problem("%s is a %s, want a uint32 or an array of one per layer", key, typeName(v))
	}
	if _, scalar := v.(uint32); !scalar && uint64(len(vals)) != layers {
		return 0, problem("%s has %d entries for %d layers", key, len(vals), layers)
	}
	for _, e := range vals {
		if e != vals[0] {
			return 0, problem("%s differs between layers (%d and %d), which llama.cpp's LLaMA does not support", key, vals[0], e)
		}
	}
	if vals[0] <= 0 || vals[0] > math.MaxInt32 {
		return 0, problem("%s is %d, want 1 to %d", key, vals[0], math.MaxInt32)
	}
	return uint64(vals[0]), nil
}

// typeName names the GGUF type of a value, for messages.
func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "array of arrays"
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32,
		[]bool, []string, []uint64, []int64, []float64:
		return fmt.Sprintf("%T", v)[2:] + " array"
	}
	if t, err := valueTypeOf(v, 0); err == nil {
		return valueTypeName(t)
	}
	return fmt.Sprintf("%T", v)
}

// maxQuoted bounds the bytes of a name or value quoted in a message.
const maxQuoted = 64

// quote quotes s for a one-line message, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// short formats a value for a one-line message, cut to maxQuoted bytes.
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) <= maxQuoted && !strings.ContainsAny(s, "\n\r") {
		return s
	}
	return quote(s)
}
