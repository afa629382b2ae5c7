package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/shareddata"
)

// builder writes GGUF bytes by hand, to test the reader against the format
// rather than against the writer.
type builder struct{ b []byte }

func header(version uint32, tensors, kvs uint64) *builder {
	b := &builder{b: []byte(Magic)}
	return b.u32(version).u64(tensors).u64(kvs)
}

func (b *builder) u32(v uint32) *builder {
	b.b = binary.LittleEndian.AppendUint32(b.b, v)
	return b
}

func (b *builder) u64(v uint64) *builder {
	b.b = binary.LittleEndian.AppendUint64(b.b, v)
	return b
}

func (b *builder) str(s string) *builder { return b.u64(uint64(len(s))).raw([]byte(s)...) }

func (b *builder) raw(p ...byte) *builder {
	b.b = append(b.b, p...)
	return b
}

// kv starts a metadata entry: its key and value type.
func (b *builder) kv(key string, typ uint32) *builder { return b.str(key).u32(typ) }

// tensor writes a tensor description.
func (b *builder) tensor(name string, typ GGMLType, offset uint64, dims ...uint64) *builder {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(uint32(typ)).u64(offset)
}

func (b *builder) padTo(a int) *builder {
	for len(b.b)%a != 0 {
		b.b = append(b.b, 0)
	}
	return b
}

func (b *builder) zeros(n int) *builder { return b.raw(make([]byte, n)...) }

func readBytes(p []byte) (*File, error) { return Read(bytes.NewReader(p), int64(len(p))) }

// handFile is a small valid file with every kind of value and two tensors.
func handFile() (*builder, *File) {
	b := header(3, 2, 16)
	b.kv("general.architecture", valString).str("llama")
	b.kv("u8", valUint8).raw(200)
	b.kv("i8", valInt8).raw(0xff)
	b.kv("u16", valUint16).raw(0x34, 0x12)
	b.kv("i16", valInt16).raw(0xfe, 0xff)
	b.kv("u32", valUint32).u32(70000)
	b.kv("i32", valInt32).u32(math.MaxUint32)
	b.kv("f32", valFloat32).u32(math.Float32bits(1e-6))
	b.kv("bool", valBool).raw(1)
	b.kv("u64", valUint64).u64(1 << 40)
	b.kv("i64", valInt64).u64(math.MaxUint64 - 1)
	b.kv("f64", valFloat64).u64(math.Float64bits(-2.5))
	b.kv("strings", valArray).u32(valString).u64(3).str("<s>").str("").str("▁héllo")
	b.kv("floats", valArray).u32(valFloat32).u64(2).u32(math.Float32bits(-1)).u32(math.Float32bits(0.5))
	b.kv("bools", valArray).u32(valBool).u64(2).raw(0, 1)
	b.kv("nested", valArray).u32(valArray).u64(2).
		u32(valInt32).u64(1).u32(7).
		u32(valString).u64(1).str("x")
	b.tensor("w", TypeQ8_0, 0, 32, 2) // 2 blocks of 34 bytes: 68, padded to 96
	b.tensor("n", TypeF32, 96, 3)     // 12 bytes
	dataOffset := int64(len(b.padTo(32).b))
	b.zeros(96 + 12)
	want := &File{
		Version: 3,
		KVs: []KV{
			{"general.architecture", "llama"},
			{"u8", uint8(200)},
			{"i8", int8(-1)},
			{"u16", uint16(0x1234)},
			{"i16", int16(-2)},
			{"u32", uint32(70000)},
			{"i32", int32(-1)},
			{"f32", float32(1e-6)},
			{"bool", true},
			{"u64", uint64(1 << 40)},
			{"i64", int64(-2)},
			{"f64", float64(-2.5)},
			{"strings", []string{"<s>", "", "▁héllo"}},
			{"floats", []float32{-1, 0.5}},
			{"bools", []bool{false, true}},
			{"nested", []any{[]int32{7}, []string{"x"}}},
		},
		Tensors: []TensorInfo{
			{Name: "w", Dims: []uint64{32, 2}, Type: TypeQ8_0, Offset: 0},
			{Name: "n", Dims: []uint64{3}, Type: TypeF32, Offset: 96},
		},
		Alignment:  32,
		DataOffset: dataOffset,
		Size:       int64(len(b.b)),
	}
	return b, want
}

func TestReadHandFile(t *testing.T) {
	b, want := handFile()
	f, err := readBytes(b.b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Read:\n got %#v\nwant %#v", f, want)
	}
	// Version 2 has the same layout.
	b.b[4] = 2
	f, err = readBytes(b.b)
	if err != nil || f.Version != 2 {
		t.Errorf("version 2: %v, %v", f, err)
	}
}

func TestFileLookups(t *testing.T) {
	b, _ := handFile()
	f, err := readBytes(b.b)
	if err != nil {
		t.Fatal(err)
	}
	uints := []struct {
		key  string
		want uint64
		ok   bool
	}{
		{"u8", 200, true}, {"u16", 0x1234, true}, {"u32", 70000, true}, {"u64", 1 << 40, true},
		{"i8", 0, false}, {"i32", 0, false}, {"i64", 0, false}, // negative
		{"f32", 0, false}, {"general.architecture", 0, false}, {"absent", 0, false},
	}
	for _, tt := range uints {
		got, ok := f.Uint(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Uint(%q) = %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	f.KVs = append(f.KVs, KV{"pos", int16(5)})
	if got, ok := f.Uint("pos"); got != 5 || !ok {
		t.Errorf("Uint of a positive int16 = %d, %v", got, ok)
	}
	floats := []struct {
		key  string
		want float64
		ok   bool
	}{
		{"f32", float64(float32(1e-6)), true}, {"f64", -2.5, true}, {"u32", 70000, true},
		{"i32", -1, true}, {"bool", 0, false}, {"absent", 0, false},
	}
	for _, tt := range floats {
		got, ok := f.Float(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Float(%q) = %v, %v; want %v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	if s, ok := f.String("general.architecture"); s != "llama" || !ok {
		t.Errorf("String = %q, %v", s, ok)
	}
	if _, ok := f.String("u8"); ok {
		t.Error("String of a uint8 is ok")
	}
	if v, ok := f.Bool("bool"); !v || !ok {
		t.Errorf("Bool = %v, %v", v, ok)
	}
	if _, ok := f.KV("absent"); ok {
		t.Error("KV of an absent key is ok")
	}
	if ti, ok := f.Tensor("n"); !ok || ti.Offset != 96 {
		t.Errorf("Tensor(n) = %+v, %v", ti, ok)
	}
	if _, ok := f.Tensor("absent"); ok {
		t.Error("Tensor of an absent name is ok")
	}
	sr, err := f.Section(bytes.NewReader(b.b), 1)
	if err != nil || sr.Size() != 12 {
		t.Errorf("Section(1) = %v, %v", sr, err)
	}
	if _, err := f.Section(bytes.NewReader(b.b), 2); err == nil {
		t.Error("Section(2) of 2 tensors: no error")
	}
}

func TestReadRefuses(t *testing.T) {
	valid, _ := handFile()
	// tensorFile is a file with one tensor description, for the tensor cases.
	tensorFile := func(name string, typ GGMLType, offset uint64, dataBytes int, dims ...uint64) []byte {
		b := header(3, 1, 0).tensor(name, typ, offset, dims...).padTo(32)
		return b.zeros(dataBytes).b
	}
	tests := []struct {
		name string
		data []byte
		size int64 // the size passed to Read; 0 means len(data)
		want string
	}{
		{"empty", nil, 0, "magic needs 4 bytes"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), 0, `magic "GGML"`},
		{"version 1", header(1, 0, 0).b, 0, "version 1 is not supported"},
		{"version 4", header(4, 0, 0).b, 0, "unsupported GGUF version 4"},
		{"big-endian", []byte("GGUF\x00\x00\x00\x03"), 0, "big-endian"},
		{"no counts", []byte("GGUF\x03\x00\x00\x00"), 0, "tensor count needs 8 bytes"},
		{"huge metadata count", header(3, 0, 1<<60).b, 0, "metadata count 1152921504606846976 is more than"},
		{"huge tensor count", header(3, 1<<62, 0).b, 0, "tensor count"},
		{"huge key length", header(3, 0, 1).u64(1 << 62).zeros(16).b, 0, "key of length 4611686018427387904 needs"},
		{"key past the end", header(3, 0, 1).u64(20).raw('a', 'b').zeros(11).b, 0, "key of length 20"},
		{"unknown value type", header(3, 0, 1).kv("k", 13).u64(0).b, 0, `("k"): unknown value type 13`},
		{"string value too long", header(3, 0, 1).kv("k", valString).u64(100).zeros(20).b, 0, "string of length 100"},
		{"truncated value", header(3, 0, 1).kv("k", valUint64).raw(1, 2).b, 0, "uint64 needs 8 bytes"},
		{"bool 2", header(3, 0, 1).kv("k", valBool).raw(2).b, 0, "bool value 2"},
		{"bool array 7", header(3, 0, 1).kv("k", valArray).u32(valBool).u64(2).raw(1, 7).b, 0, "element 1: bool value 7"},
		{"huge array", header(3, 0, 1).kv("k", valArray).u32(valFloat32).u64(1 << 61).zeros(64).b, 0, "array of 2305843009213693952 float32 values"},
		{"huge string array", header(3, 0, 1).kv("k", valArray).u32(valString).u64(100).zeros(400).b, 0, "array of 100 string values"},
		{"array of unknown type", header(3, 0, 1).kv("k", valArray).u32(99).u64(0).b, 0, "array of unknown value type 99"},
		{"deep arrays", func() []byte {
			b := header(3, 0, 1).kv("k", valArray)
			for range 12 {
				b.u32(valArray).u64(1)
			}
			return b.u32(valUint8).u64(0).b
		}(), 0, "nested more than 8 deep"},
		{"duplicate key", header(3, 0, 2).kv("k", valUint8).raw(1).kv("k", valUint8).raw(2).b, 0, `duplicate key "k"`},
		{"alignment 3", header(3, 0, 1).kv(KeyAlignment, valUint32).u32(3).b, 0, "general.alignment is 3"},
		{"alignment 0", header(3, 0, 1).kv(KeyAlignment, valUint32).u32(0).b, 0, "general.alignment is 0"},
		{"alignment string", header(3, 0, 1).kv(KeyAlignment, valString).str("32").b, 0, "general.alignment is 32 (string)"},
		{"five dims", tensorFile("t", TypeF32, 0, 4, 1, 1, 1, 1, 1), 0, `tensor 0 ("t"): 5 dimensions`},
		{"unknown ggml type", tensorFile("t", 4, 0, 64, 32), 0, "unknown ggml type 4"},
		{"type 40", tensorFile("t", 40, 0, 64, 32), 0, "unknown ggml type 40"},
		{"not a block multiple", tensorFile("t", TypeQ8_0, 0, 64, 31), 0, "not a multiple of the Q8_0 block size"},
		{"dims overflow", tensorFile("t", TypeF32, 0, 0, 1<<32, 1<<32), 0, "overflow"},
		{"misaligned offset", tensorFile("t", TypeF32, 4, 64, 4), 0, "offset 4 is not a multiple of the alignment 32"},
		{"data past the end", tensorFile("t", TypeF32, 0, 15, 4), 0, "its 16 bytes of data at offset 0"},
		{"offset past the end", tensorFile("t", TypeF32, 1<<40, 16, 4), 0, "run past the end"},
		{"offset near 2^64", tensorFile("t", TypeF32, 1<<64-32, 16, 4), 0, "run past the end"},
		{"huge tensor", tensorFile("t", TypeF32, 0, 16, 1<<40, 1<<20), 0, "run past the end"},
		{"duplicate tensor", header(3, 2, 0).tensor("t", TypeF32, 0, 4).tensor("t", TypeF32, 32, 4).padTo(32).zeros(64).b, 0, `duplicate name "t"`},
		{"truncated tensor info", header(3, 1, 0).str("t").u32(1).u64(4).u32(0).raw(0, 0).zeros(20).b, 0, ""},
		{"reader shorter than size", valid.b[:100], 1000, "key length at offset 99: the data ends before the declared size of 1000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = int64(len(tt.data))
			}
			f, err := Read(bytes.NewReader(tt.data), size)
			if err == nil {
				t.Fatalf("Read = %+v, want an error", f)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestReadTruncated reads every prefix of a valid file: each must fail
// with ErrFormat, the header's prefixes for lack of bytes and the others
// because tensor data would lie past the end.
func TestReadTruncated(t *testing.T) {
	b, _ := handFile()
	for n := range len(b.b) {
		if _, err := readBytes(b.b[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d of %d bytes: %v, want an ErrFormat error", n, len(b.b), err)
		}
	}
}

type failingReaderAt struct{ err error }

func (r failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }

func TestReadIOError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := Read(failingReaderAt{boom}, 100)
	if !errors.Is(err, boom) || errors.Is(err, ErrFormat) {
		t.Errorf("Read with a failing reader: %v, want the reader's error and not ErrFormat", err)
	}
	if _, err := Read(bytes.NewReader(nil), -1); !errors.Is(err, ErrFormat) {
		t.Errorf("negative size: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of an absent file: %v", err)
	}
}

func TestOpen(t *testing.T) {
	b, want := handFile()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, b.b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil || !reflect.DeepEqual(f, want) {
		t.Fatalf("Open = %v, %v", f, err)
	}
	if err := os.WriteFile(path, b.b[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a truncated file: %v, want ErrFormat naming the path", err)
	}
}

// openSharedVocab opens LLaMA's vocabulary in ../shared/data, beside the
// checkout (see package shareddata for when it skips).
func openSharedVocab(t *testing.T) *File {
	t.Helper()
	f, err := Open(shareddata.Vocab(t))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestReadVocabLLaMA(t *testing.T) {
	f := openSharedVocab(t)
	v, err := ReadVocab(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 32000 || len(v.Scores) != 32000 || len(v.Types) != 32000 {
		t.Fatalf("%d tokens, %d scores, %d types; want 32000 each", len(v.Tokens), len(v.Scores), len(v.Types))
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"model", v.Model, "llama"},
		{"token 0", v.Tokens[0], "<unk>"},
		{"token 1", v.Tokens[1], "<s>"},
		{"token 2", v.Tokens[2], "</s>"},
		{"token 3", v.Tokens[3], "<0x00>"},
		{"type 1", v.Types[1], TokenControl},
		{"type 3", v.Types[3], TokenByte},
		{"BOS", v.BOS, uint32(1)},
		{"EOS", v.EOS, uint32(2)},
		{"UNK", v.UNK, uint32(0)},
		{"AddBOS", v.AddBOS, true},
		{"AddEOS", v.AddEOS, false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// A model written with it carries it over.
	var buf bytes.Buffer
	if err := Synth(&buf, SynthOptions{Preset: "tiny", Type: TypeQ8_0, Vocab: v}); err != nil {
		t.Fatal(err)
	}
	g, err := readBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ReadVocab(g)
	if err != nil || !reflect.DeepEqual(v2, v) {
		t.Errorf("vocabulary after Synth differs (%v)", err)
	}
	if n, _ := g.Uint("llama.vocab_size"); n != 32000 {
		t.Errorf("llama.vocab_size = %d", n)
	}
}

// FuzzRead checks that Read never panics, and never allocates much more
// than the input's size, whatever the input.
func FuzzRead(f *testing.F) {
	b, _ := handFile()
	f.Add(b.b)
	var buf bytes.Buffer
	if err := Synth(&buf, SynthOptions{Preset: "tiny", Type: TypeQ8_0, Vocab: &Vocab{
		Model: "llama", Tokens: []string{"<unk>", "<s>", "</s>", "a"}, BOS: 1, EOS: 2,
	}}); err != nil {
		f.Fatal(err)
	}
	// The header alone (the data is irrelevant beyond its size).
	g, err := readBytes(buf.Bytes())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes()[:g.DataOffset])
	f.Add(header(3, 0, 1).kv("k", valArray).u32(valArray).u64(2).u32(valString).u64(1).str("x").u32(valUint8).u64(0).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		file, err := readBytes(data)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(64*len(data))+1<<20 {
			t.Fatalf("Read allocated %d bytes for a %d-byte input", alloc, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		// What Read accepts, Describe takes, and every tensor's data lies
		// inside the input.
		Describe(file)
		for i := range file.Tensors {
			sr, err := file.Section(bytes.NewReader(data), i)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, sr); err != nil || n != sr.Size() {
				t.Fatalf("tensor %d: read %d of %d bytes: %v", i, n, sr.Size(), err)
			}
		}
	})
}
