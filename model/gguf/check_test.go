package gguf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// headerOf returns the header of the file that Synth writes for opts, and that file's size, without the tensor data
// (the 7b preset's file is 13 GB). Read needs only the header, and checks
// the data's extent against the size.
func headerOf(t testing.TB, opts SynthOptions) ([]byte, int64) {
	t.Helper()
	kvs, tensors, err := synthHeader(opts)
	if err != nil {
		t.Fatal(err)
	}
	offsets := make([]uint64, len(tensors))
	var off uint64
	for i, ti := range tensors {
		n, err := ti.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		offsets[i] = off
		off = alignUp(off+n, DefaultAlignment)
	}
	var b bytes.Buffer
	if err := writeHeader(&b, kvs, tensors, offsets, DefaultAlignment); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), int64(b.Len()) + int64(off)
}

// TestPresetsPassTheGate: every synthetic preset, of every weight type,
// passes the gate, as a model and as a vocabulary.
func TestPresetsPassTheGate(t *testing.T) {
	for _, preset := range Presets() {
		for _, typ := range []GGMLType{TypeF32, TypeF16, TypeQ8_0} {
			hdr, size := headerOf(t, SynthOptions{Preset: preset, Type: typ})
			f, err := Read(bytes.NewReader(hdr), size)
			if err != nil {
				t.Fatalf("%s %s: %v", preset, typ, err)
			}
			for _, mode := range []LoadMode{LoadModel, LoadVocab} {
				if err := f.CheckLlama(mode); err != nil {
					t.Errorf("%s %s, mode %d: %v", preset, typ, mode, err)
				}
			}
		}
	}
	// The tiny preset whole, through OpenLlama.
	path := t.TempDir() + "/tiny.gguf"
	if err := SynthFile(path, SynthOptions{Preset: "tiny", Type: TypeF16}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLlama(path, LoadModel); err != nil {
		t.Fatal(err)
	}
}

// TestRealVocabularyPassesTheGate: LLaMA's vocabulary (a file with no
// tensors) passes as a vocabulary and is refused as a model, for its
// missing tensors; a synthetic model with that vocabulary passes.
func TestRealVocabularyPassesTheGate(t *testing.T) {
	f := openSharedVocab(t)
	if err := f.CheckLlama(LoadVocab); err != nil {
		t.Fatalf("as a vocabulary: %v", err)
	}
	err := f.CheckLlama(LoadModel)
	if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), `tensor "token_embd.weight" is missing`) {
		t.Errorf("as a model: %v, want the missing token_embd.weight", err)
	}
	v, err := ReadVocab(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, preset := range Presets() {
		hdr, size := headerOf(t, SynthOptions{Preset: preset, Type: TypeF16, Vocab: v})
		g, err := Read(bytes.NewReader(hdr), size)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.CheckLlama(LoadModel); err != nil {
			t.Errorf("%s with LLaMA's vocabulary: %v", preset, err)
		}
	}
}

// TestHeaderBound: a header that runs past MaxHeaderBytes is refused, so
// that reading it takes bounded memory whatever the file's size.
func TestHeaderBound(t *testing.T) {
	hdr, size := headerOf(t, SynthOptions{Preset: "tiny", Type: TypeF16})
	defer func(old int64) { maxHeader = old }(maxHeader)
	maxHeader = int64(len(hdr)) // the header fits exactly
	if _, err := Read(bytes.NewReader(hdr), size); err != nil {
		t.Fatalf("a header within the bound: %v", err)
	}
	maxHeader = int64(len(hdr)) / 2
	_, err := Read(bytes.NewReader(hdr), size)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "bound on a header") {
		t.Errorf("a header past the bound: %v", err)
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct{ in, want string }{
		{"a\nb", `"a\nb"`},
		{"tokenizer.ggml.tokens\x00", `"tokenizer.ggml.tokens\x00"`},
		{long, `"` + strings.Repeat("é", 32) + `"… (200 bytes)`},
	} {
		if got := quote(c.in); got != c.want {
			t.Errorf("quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := typeName([]any{}); got != "array of arrays" {
		t.Errorf("typeName([]any) = %q", got)
	}
	if got := typeName([]int32{}); got != "int32 array" {
		t.Errorf("typeName([]int32) = %q", got)
	}
	if got := typeName(uint64(1)); got != "uint64" {
		t.Errorf("typeName(uint64) = %q", got)
	}
}

// BenchmarkGate7b measures the gate on the 7b preset's header (LLaMA-7B's
// shapes and 32,000 tokens, F16; the file would be 13 GB): reading the
// header, and checking it.
func BenchmarkGate7b(b *testing.B) {
	hdr, size := headerOf(b, SynthOptions{Preset: "7b", Type: TypeF16})
	b.Logf("header %d bytes, file %d bytes", len(hdr), size)
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(hdr)))
		for b.Loop() {
			if _, err := Read(bytes.NewReader(hdr), size); err != nil {
				b.Fatal(err)
			}
		}
	})
	f, err := Read(bytes.NewReader(hdr), size)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if err := f.CheckLlama(LoadModel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+check", func(b *testing.B) {
		for b.Loop() {
			f, err := Read(bytes.NewReader(hdr), size)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.CheckLlama(LoadModel); err != nil {
				b.Fatal(err)
			}
		}
	})
}
