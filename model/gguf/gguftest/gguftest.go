// Package gguftest builds GGUF files for tests, hostile ones above all.
//
// [Base] takes apart a valid synthetic model (the tiny preset) into a
// [Model]: its metadata, its tensor descriptions and each tensor's data.
// A test edits the Model freely, and [Model.Encode] puts it back together
// byte by byte, writing whatever it holds: values of the wrong type, keys
// that [gguf.Write] refuses (empty, duplicated, with NUL bytes), offsets
// that lie ([Model.Offsets]), counts that lie, and [Raw] values that claim
// lengths the file does not have. [Cases] is the corpus of hostile files
// that the llama.cpp gate ([gguf.File.CheckLlama]) is tested against, in
// package gguf and, through the real llama.cpp load, in package llama.
package gguftest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nerstream/nerstream/internal/shareddata"
	"github.com/nerstream/nerstream/model/gguf"
)

// Model is a GGUF file taken apart. Encode writes it back.
type Model struct {
	// Version is the GGUF version written; 0 means 3.
	Version uint32
	// KVs are the metadata entries, written in order. A value is any of
	// the Go types of [gguf.KV], or a [Raw].
	KVs []gguf.KV
	// Tensors are the tensor descriptions. Their Offset fields are
	// ignored: Encode lays the data out itself.
	Tensors []gguf.TensorInfo
	// Data are the tensors' data, in order. Encode cuts or pads each with
	// zeros to the size of its tensor, so that a tensor may be reshaped
	// or retyped without touching Data.
	Data [][]byte
	// Offsets, by tensor name, replace the offsets written in the
	// tensor descriptions; the data stays where Encode laid it.
	Offsets map[string]uint64
	// TensorCount, when not 0, is written as the tensor count instead of
	// len(Tensors).
	TensorCount uint64
}

// Raw is a metadata value written as it is: its GGUF type tag, then Bytes.
type Raw struct {
	Type  uint32
	Bytes []byte
}

// GGUF value type tags, for Raw values.
const (
	TypeUint32 uint32 = 4
	TypeString uint32 = 8
	TypeArray  uint32 = 9
)

// base is the tiny synthetic model (F16 weights, seed 1), written once.
var base = sync.OnceValues(func() ([]byte, error) {
	var b bytes.Buffer
	err := gguf.Synth(&b, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1})
	return b.Bytes(), err
})

// Base returns the tiny synthetic model (F16, seed 1), taken apart; each
// call returns a fresh copy to edit.
func Base() (*Model, error) {
	b, err := base()
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(b)
	f, err := gguf.Read(r, int64(len(b)))
	if err != nil {
		return nil, err
	}
	m := &Model{Version: f.Version, KVs: f.KVs, Tensors: f.Tensors}
	for i := range f.Tensors {
		s, err := f.Section(r, i)
		if err != nil {
			return nil, err
		}
		d := make([]byte, s.Size())
		if _, err := s.ReadAt(d, 0); err != nil {
			return nil, err
		}
		m.Data = append(m.Data, d)
	}
	return m, nil
}

// Get returns the value of key, or nil.
func (m *Model) Get(key string) any {
	for _, kv := range m.KVs {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

// Set replaces the value of key, or appends the key.
func (m *Model) Set(key string, v any) {
	for i := range m.KVs {
		if m.KVs[i].Key == key {
			m.KVs[i].Value = v
			return
		}
	}
	m.KVs = append(m.KVs, gguf.KV{Key: key, Value: v})
}

// Prepend puts an entry before all others.
func (m *Model) Prepend(key string, v any) {
	m.KVs = append([]gguf.KV{{Key: key, Value: v}}, m.KVs...)
}

// Delete removes key.
func (m *Model) Delete(key string) {
	for i := range m.KVs {
		if m.KVs[i].Key == key {
			m.KVs = append(m.KVs[:i], m.KVs[i+1:]...)
			return
		}
	}
}

// Tokens returns tokenizer.ggml.tokens, to edit in place.
func (m *Model) Tokens() []string {
	t, _ := m.Get(gguf.KeyTokens).([]string)
	return t
}

// TokenTypes returns tokenizer.ggml.token_type, to edit in place.
func (m *Model) TokenTypes() []int32 {
	t, _ := m.Get(gguf.KeyTokenTypes).([]int32)
	return t
}

// Scores returns tokenizer.ggml.scores, to edit in place.
func (m *Model) Scores() []float32 {
	s, _ := m.Get(gguf.KeyScores).([]float32)
	return s
}

// tensor returns the index of the named tensor; it panics when there is
// none, a mistake in a test's edit.
func (m *Model) tensor(name string) int {
	for i, t := range m.Tensors {
		if t.Name == name {
			return i
		}
	}
	panic("gguftest: no tensor " + name)
}

// Reshape gives the named tensor new dimensions.
func (m *Model) Reshape(name string, dims ...uint64) { m.Tensors[m.tensor(name)].Dims = dims }

// Retype gives the named tensor a new type.
func (m *Model) Retype(name string, t gguf.GGMLType) { m.Tensors[m.tensor(name)].Type = t }

// Drop removes the named tensor.
func (m *Model) Drop(name string) {
	i := m.tensor(name)
	m.Tensors = append(m.Tensors[:i], m.Tensors[i+1:]...)
	m.Data = append(m.Data[:i], m.Data[i+1:]...)
}

// Add appends a tensor with zero data.
func (m *Model) Add(t gguf.TensorInfo) {
	m.Tensors = append(m.Tensors, t)
	m.Data = append(m.Data, nil)
}

// WriteFile encodes the model into the file at path.
func (m *Model) WriteFile(path string) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Encode writes the model as a GGUF file: the header as the Model holds
// it, then each tensor's data at the next multiple of the alignment (the
// numeric general.alignment of any integer type, else 32), padded after.
// A tensor whose size cannot be computed gets no data.
func (m *Model) Encode() ([]byte, error) {
	align := uint64(32)
	if v := m.Get(gguf.KeyAlignment); v != nil {
		if a, ok := uintOf(v); ok && a > 0 && a&(a-1) == 0 && a <= 1<<30 {
			align = a
		}
	}
	sizes := make([]uint64, len(m.Tensors))
	offsets := make([]uint64, len(m.Tensors))
	var off uint64
	for i, t := range m.Tensors {
		n, err := t.Bytes()
		if err != nil || n > 1<<32 {
			n = 0 // a hostile shape: no data
		}
		sizes[i], offsets[i] = n, off
		off = pad(off+n, align)
	}
	e := &encoder{}
	e.raw([]byte(gguf.Magic))
	v := m.Version
	if v == 0 {
		v = gguf.Version
	}
	e.u32(v)
	nt := uint64(len(m.Tensors))
	if m.TensorCount != 0 {
		nt = m.TensorCount
	}
	e.u64(nt)
	e.u64(uint64(len(m.KVs)))
	for _, kv := range m.KVs {
		e.str(kv.Key)
		if err := e.value(kv.Value, true); err != nil {
			return nil, fmt.Errorf("gguftest: %q: %w", kv.Key, err)
		}
	}
	for i, t := range m.Tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		o := offsets[i]
		if lie, ok := m.Offsets[t.Name]; ok {
			o = lie
		}
		e.u64(o)
	}
	e.zeros(pad(uint64(e.b.Len()), align) - uint64(e.b.Len()))
	for i := range m.Tensors {
		d := m.Data[i]
		if uint64(len(d)) > sizes[i] {
			d = d[:sizes[i]]
		}
		e.raw(d)
		e.zeros(sizes[i] - uint64(len(d)))
		e.zeros(pad(sizes[i], align) - sizes[i])
	}
	return e.b.Bytes(), nil
}

func pad(n, a uint64) uint64 { return (n + a - 1) / a * a }

func uintOf(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	return 0, false
}

// encoder writes little-endian values into a buffer.
type encoder struct{ b bytes.Buffer }

func (e *encoder) raw(p []byte) { e.b.Write(p) }
func (e *encoder) zeros(n uint64) {
	for ; n > 0; n-- {
		e.b.WriteByte(0)
	}
}
func (e *encoder) u8(v uint8)   { e.b.WriteByte(v) }
func (e *encoder) u16(v uint16) { e.b.Write(binary.LittleEndian.AppendUint16(nil, v)) }
func (e *encoder) u32(v uint32) { e.b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.b.WriteString(s) }

// value writes v, with its type tag when tagged (an array's elements have
// none, except arrays in an array, which carry their element type).
func (e *encoder) value(v any, tagged bool) error {
	tag := func(t uint32) {
		if tagged {
			e.u32(t)
		}
	}
	switch x := v.(type) {
	case Raw:
		e.u32(x.Type)
		e.raw(x.Bytes)
	case uint8:
		tag(0)
		e.u8(x)
	case int8:
		tag(1)
		e.u8(uint8(x))
	case uint16:
		tag(2)
		e.u16(x)
	case int16:
		tag(3)
		e.u16(uint16(x))
	case uint32:
		tag(4)
		e.u32(x)
	case int32:
		tag(5)
		e.u32(uint32(x))
	case float32:
		tag(6)
		e.u32(math.Float32bits(x))
	case bool:
		tag(7)
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		tag(8)
		e.str(x)
	case uint64:
		tag(10)
		e.u64(x)
	case int64:
		tag(11)
		e.u64(uint64(x))
	case float64:
		tag(12)
		e.u64(math.Float64bits(x))
	case []uint8:
		return array(e, tagged, 0, x)
	case []int8:
		return array(e, tagged, 1, x)
	case []uint16:
		return array(e, tagged, 2, x)
	case []int16:
		return array(e, tagged, 3, x)
	case []uint32:
		return array(e, tagged, 4, x)
	case []int32:
		return array(e, tagged, 5, x)
	case []float32:
		return array(e, tagged, 6, x)
	case []bool:
		return array(e, tagged, 7, x)
	case []string:
		return array(e, tagged, 8, x)
	case []uint64:
		return array(e, tagged, 10, x)
	case []int64:
		return array(e, tagged, 11, x)
	case []float64:
		return array(e, tagged, 12, x)
	case []any:
		if tagged {
			e.u32(TypeArray)
		}
		e.u32(TypeArray)
		e.u64(uint64(len(x)))
		for i, el := range x {
			// Each element is a whole array: element type, count,
			// elements.
			if err := e.nested(el); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("cannot encode a %T", v)
	}
	return nil
}

// nested writes an array inside an array: its element type, count and
// elements, without the outer tag.
func (e *encoder) nested(v any) error {
	switch v.(type) {
	case []any:
		e.u32(TypeArray)
		x := v.([]any)
		e.u64(uint64(len(x)))
		for _, el := range x {
			if err := e.nested(el); err != nil {
				return err
			}
		}
		return nil
	}
	return e.value(v, false)
}

// array writes an array value: its tag when tagged, then the element type,
// the count and the elements.
func array[T any](e *encoder, tagged bool, et uint32, xs []T) error {
	if tagged {
		e.u32(TypeArray)
	}
	e.u32(et)
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		if err := e.value(any(x), false); err != nil {
			return err
		}
	}
	return nil
}

// LLaMAVocabTiny writes the synthetic tiny model (seed 1, weights of type
// typ) with LLaMA's real vocabulary from the shared data, as `nerstream
// model synth --preset tiny --vocab …` does, into t's temporary folder,
// and returns its path: prompts are then tokenized as UniNER's are. It
// fails t when the shared vocabulary is missing (see internal/shareddata).
func LLaMAVocabTiny(t testing.TB, typ gguf.GGMLType) string {
	t.Helper()
	f, err := gguf.Open(shareddata.Vocab(t))
	if err != nil {
		t.Fatal(err)
	}
	v, err := gguf.ReadVocab(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny-llama-vocab.gguf")
	if err := gguf.SynthFile(path, gguf.SynthOptions{Preset: "tiny", Type: typ, Seed: 1, Vocab: v}); err != nil {
		t.Fatal(err)
	}
	return path
}
