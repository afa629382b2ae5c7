package gguf

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Info summarises a model file, for `nerstream model info`.
type Info struct {
	Architecture   string         `json:"architecture"`    // general.architecture, e.g. "llama"
	Name           string         `json:"name"`            // general.name
	FileType       string         `json:"file_type"`       // general.file_type by name, e.g. "Q4_K_M"
	Embedding      int            `json:"embedding"`       // {arch}.embedding_length
	Layers         int            `json:"layers"`          // {arch}.block_count
	Heads          int            `json:"heads"`           // {arch}.attention.head_count
	HeadsKV        int            `json:"heads_kv"`        // {arch}.attention.head_count_kv (default Heads)
	FeedForward    int            `json:"feed_forward"`    // {arch}.feed_forward_length
	Context        int            `json:"context"`         // {arch}.context_length, the training context
	VocabSize      int            `json:"vocab_size"`      // {arch}.vocab_size, else the number of tokens
	TokenizerModel string         `json:"tokenizer_model"` // tokenizer.ggml.model, e.g. "llama"
	Parameters     uint64         `json:"parameters"`      // the number of weights, over all tensors
	TensorTypes    map[string]int `json:"tensor_types"`    // the number of tensors of each type, by name
	TensorBytes    uint64         `json:"tensor_bytes"`    // the size of all tensor data
}

// Describe summarises f: general.architecture, general.name,
// general.file_type (by name), the {arch}.* hyperparameters of whatever
// architecture it names, the tokenizer, and the tensors (weights, bytes, and
// how many tensors of each type). Absent keys leave zero values.
func Describe(f *File) Info {
	in := Info{TensorTypes: make(map[string]int)}
	in.Architecture, _ = f.String("general.architecture")
	in.Name, _ = f.String("general.name")
	if ft, ok := f.Uint("general.file_type"); ok && ft <= 1<<32-1 {
		in.FileType = FileType(ft).String()
	}
	num := func(key string) int {
		if in.Architecture == "" {
			return 0
		}
		u, ok := f.Uint(in.Architecture + "." + key)
		if !ok || u > 1<<31-1 {
			return 0
		}
		return int(u)
	}
	in.Embedding = num("embedding_length")
	in.Layers = num("block_count")
	in.Heads = num("attention.head_count")
	in.HeadsKV = num("attention.head_count_kv")
	if in.HeadsKV == 0 {
		in.HeadsKV = in.Heads // llama.cpp's default
	}
	in.FeedForward = num("feed_forward_length")
	in.Context = num("context_length")
	in.VocabSize = num("vocab_size")
	if v, ok := f.KV(KeyTokens); ok && in.VocabSize == 0 {
		if toks, ok := v.([]string); ok {
			in.VocabSize = len(toks)
		}
	}
	in.TokenizerModel, _ = f.String(KeyTokenizerModel)
	for _, t := range f.Tensors {
		in.Parameters += t.Elements()
		in.TensorTypes[t.Type.String()]++
		if n, err := t.Bytes(); err == nil {
			in.TensorBytes += n
		}
	}
	return in
}

// WriteText writes the description as `nerstream model info` prints it: a
// line per fact, file first.
func (i Info) WriteText(w io.Writer, file string) error {
	var types []string
	for t, n := range i.TensorTypes {
		types = append(types, fmt.Sprintf("%s×%d", t, n))
	}
	sort.Strings(types)
	_, err := fmt.Fprintf(w, `file:          %s
architecture:  %s
name:          %s
shapes:        embedding %d, %d layers, %d heads (%d kv), feed-forward %d
context:       %d tokens
vocabulary:    %d tokens (%s)
quantisation:  %s (tensors: %s)
parameters:    %d (%.2f B)
tensor data:   %.1f MiB
`, file, i.Architecture, i.Name, i.Embedding, i.Layers, i.Heads, i.HeadsKV, i.FeedForward, i.Context,
		i.VocabSize, i.TokenizerModel, i.FileType, strings.Join(types, ", "), i.Parameters, float64(i.Parameters)/1e9,
		float64(i.TensorBytes)/(1<<20))
	return err
}
