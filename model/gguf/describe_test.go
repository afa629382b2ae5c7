package gguf

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDescribe(t *testing.T) {
	f, err := readBytes(synthBytes(t, SynthOptions{Preset: "tiny", Type: TypeQ8_0}))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := PresetShapes("tiny")
	var tensorBytes uint64
	for _, ti := range f.Tensors {
		n, _ := ti.Bytes()
		tensorBytes += n
	}
	other := &File{
		KVs: []KV{
			{"general.architecture", "gpt2"},
			{"general.file_type", uint32(15)},
			{"gpt2.embedding_length", uint32(768)},
			{"gpt2.block_count", uint64(12)},
			{"gpt2.attention.head_count", int32(12)},
			{"gpt2.context_length", uint32(1024)},
			{"llama.block_count", uint32(99)}, // another architecture's key
			{"tokenizer.ggml.model", "gpt2"},
			{"tokenizer.ggml.tokens", []string{"a", "b", "c"}},
		},
		Tensors: []TensorInfo{
			{Name: "a", Dims: []uint64{256, 4}, Type: TypeQ4_K},
			{Name: "b", Dims: []uint64{256, 4}, Type: TypeQ6_K},
			{Name: "c", Dims: []uint64{256}, Type: TypeQ4_K},
		},
	}
	tests := []struct {
		name string
		f    *File
		want Info
	}{
		{"synthetic tiny", f, Info{
			Architecture: "llama", Name: "nerstream-synthetic-tiny", FileType: "Q8_0",
			Embedding: 64, Layers: 2, Heads: 4, HeadsKV: 4, FeedForward: 128, Context: 2048,
			VocabSize: s.VocabSize, TokenizerModel: "llama", Parameters: s.Parameters(),
			TensorTypes: map[string]int{"Q8_0": 16, "F32": 5}, TensorBytes: tensorBytes,
		}},
		{"another architecture", other, Info{
			Architecture: "gpt2", FileType: "Q4_K_M", Embedding: 768, Layers: 12, Heads: 12,
			HeadsKV: 12, Context: 1024, VocabSize: 3, TokenizerModel: "gpt2", Parameters: 2304,
			TensorTypes: map[string]int{"Q4_K": 2, "Q6_K": 1}, TensorBytes: 4*144 + 4*210 + 144,
		}},
		{"empty", &File{}, Info{TensorTypes: map[string]int{}}},
	}
	for _, tt := range tests {
		if got := Describe(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Describe =\n %+v\nwant\n %+v", tt.name, got, tt.want)
		}
	}

	js, err := json.Marshal(Describe(other))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"architecture", "name", "file_type", "embedding", "layers", "heads", "heads_kv",
		"feed_forward", "context", "vocab_size", "tokenizer_model", "parameters", "tensor_types", "tensor_bytes"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, js)
		}
	}
	if len(m) != 14 {
		t.Errorf("JSON has %d keys: %s", len(m), js)
	}
}
