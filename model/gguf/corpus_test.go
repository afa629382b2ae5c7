package gguf_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
)

// maxErrorLen bounds a refusal's message: one line, that a terminal shows
// whole.
const maxErrorLen = 400

// TestCorpus runs every hostile file of gguftest.Cases through Read and
// CheckLlama: each that must be refused is, by one of the two, in one line
// that says what is wrong and wraps ErrFormat (Read) or ErrModel (the
// gate); each that must load passes. Package llama runs the same corpus
// through llama.cpp.
func TestCorpus(t *testing.T) {
	cases := gguftest.Cases()
	if len(cases) < 25 {
		t.Fatalf("%d cases, want at least 25", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Fatalf("two cases named %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			m, err := c.Build()
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			err = check(b, c.Mode)
			if c.Refused == "" {
				if err != nil {
					t.Fatalf("refused: %v; want it accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want it refused with %q", c.Refused)
			}
			if !errors.Is(err, gguf.ErrFormat) && !errors.Is(err, gguf.ErrModel) {
				t.Errorf("%v wraps neither ErrFormat nor ErrModel", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.Refused) {
				t.Errorf("refused with %q; want it to say %q", msg, c.Refused)
			}
			if strings.ContainsAny(msg, "\n\r") || len(msg) > maxErrorLen {
				t.Errorf("the refusal is not one short line (%d bytes): %q", len(msg), msg)
			}
			t.Log(msg)
		})
	}
}

// check reads a file's header and runs the gate, as OpenLlama does.
func check(b []byte, mode gguf.LoadMode) error {
	f, err := gguf.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	return f.CheckLlama(mode)
}

// TestEncodeFaithful: the corpus's base, taken apart and put back, is the
// synthetic file byte for byte, so that each case differs from a valid
// model by its edit alone.
func TestEncodeFaithful(t *testing.T) {
	var want bytes.Buffer
	if err := gguf.Synth(&want, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := gguftest.Base()
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("Encode(Base()) is %d bytes, differing from the %d of Synth", len(got), want.Len())
	}
	if err := check(got, gguf.LoadModel); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheck: no bytes make Read or the gate panic, whatever they hold;
// the seeds are the corpus. (go test -fuzz FuzzCheck ./model/gguf)
func FuzzCheck(f *testing.F) {
	for _, c := range gguftest.Cases()[:8] {
		m, err := c.Build()
		if err != nil {
			f.Fatal(err)
		}
		// The header and a little data: the fuzzer mutates it faster
		// than a whole model.
		m.Tensors, m.Data = m.Tensors[:2], m.Data[:2]
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mode := range []gguf.LoadMode{gguf.LoadModel, gguf.LoadVocab} {
			if err := check(b, mode); err != nil && strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("a refusal of more than one line: %q", err)
			}
		}
	})
}
