package gguf

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// patternData writes tensor i's bytes as (i+j) mod 251, for checking later.
func patternData(tensors []TensorInfo) func(i int, w io.Writer) error {
	return func(i int, w io.Writer) error {
		n, err := tensors[i].Bytes()
		if err != nil {
			return err
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte((i + j) % 251)
		}
		_, err = w.Write(p)
		return err
	}
}

func TestWriteRoundTrip(t *testing.T) {
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.name", "round ▁trip"},
		{"u8", uint8(255)}, {"i8", int8(-128)}, {"u16", uint16(65535)}, {"i16", int16(-32768)},
		{"u32", uint32(1 << 31)}, {"i32", int32(-7)}, {"f32", float32(math.Pi)}, {"bool", false},
		{"empty", ""}, {"u64", uint64(math.MaxUint64)}, {"i64", int64(math.MinInt64)},
		{"f64", math.Inf(-1)},
		{"a.u8", []uint8{0, 1, 255}}, {"a.i8", []int8{-1, 2}}, {"a.u16", []uint16{9}},
		{"a.i16", []int16{-9, 9}}, {"a.u32", []uint32{1, 2, 3}}, {"a.i32", []int32{-1, 1 << 30}},
		{"a.f32", []float32{0.25, -0}}, {"a.bool", []bool{true, false, true}},
		{"a.string", []string{"<unk>", "", "▁the", "\x00\xff"}},
		{"a.u64", []uint64{1 << 63}}, {"a.i64", []int64{-1}}, {"a.f64", []float64{1e300}},
		{"a.nested", []any{[]string{"a", "b"}, []float32{1}, []any{[]int8{3}}, []any{}}},
		{"a.empty", []int32{}},
	}
	tensors := []TensorInfo{
		{Name: "token_embd.weight", Dims: []uint64{64, 10}, Type: TypeQ8_0},
		{Name: "norm", Dims: []uint64{7}, Type: TypeF32},
		{Name: "k", Dims: []uint64{256, 2}, Type: TypeQ4_K},
		{Name: "f16", Dims: []uint64{3, 5, 1}, Type: TypeF16},
		{Name: "empty", Dims: []uint64{0}, Type: TypeF32},
		{Name: "last", Dims: []uint64{1}, Type: TypeI8},
	}
	for _, align := range []uint32{0, 1, 64, 4096} {
		kvs := kvs
		wantAlign := uint64(DefaultAlignment)
		if align != 0 {
			kvs = append([]KV{{KeyAlignment, align}}, kvs...)
			wantAlign = uint64(align)
		}
		var buf bytes.Buffer
		if err := Write(&buf, kvs, tensors, patternData(tensors)); err != nil {
			t.Fatal(err)
		}
		f, err := readBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("alignment %d: %v", align, err)
		}
		if f.Version != 3 || f.Alignment != wantAlign || f.DataOffset%int64(wantAlign) != 0 {
			t.Errorf("alignment %d: version %d, alignment %d, data offset %d", align, f.Version, f.Alignment, f.DataOffset)
		}
		if !reflect.DeepEqual(f.KVs, kvs) {
			t.Errorf("alignment %d: KVs\n got %#v\nwant %#v", align, f.KVs, kvs)
		}
		var end uint64
		for i, ti := range f.Tensors {
			want := tensors[i]
			if ti.Name != want.Name || !reflect.DeepEqual(ti.Dims, want.Dims) || ti.Type != want.Type {
				t.Errorf("tensor %d = %+v, want %+v", i, ti, want)
			}
			if ti.Offset != alignUp(end, wantAlign) {
				t.Errorf("alignment %d: tensor %q at %d, want %d", align, ti.Name, ti.Offset, alignUp(end, wantAlign))
			}
			n, _ := ti.Bytes()
			end = ti.Offset + n
			got, _ := io.ReadAll(io.NewSectionReader(bytes.NewReader(buf.Bytes()), f.DataOffset+int64(ti.Offset), int64(n)))
			var want2 bytes.Buffer
			if err := patternData(tensors)(i, &want2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want2.Bytes()) {
				t.Errorf("tensor %q: data differs", ti.Name)
			}
		}
		if size := int64(alignUp(end, wantAlign)) + f.DataOffset; size != int64(buf.Len()) {
			t.Errorf("alignment %d: file of %d bytes, want %d", align, buf.Len(), size)
		}
	}
}

// TestWriteLayout compares Write's bytes with a file written by hand from
// the format's description.
func TestWriteLayout(t *testing.T) {
	var buf bytes.Buffer
	tensors := []TensorInfo{{Name: "a", Dims: []uint64{2}, Type: TypeF32}, {Name: "b", Dims: []uint64{1}, Type: TypeF16}}
	err := Write(&buf, []KV{{"k", []string{"x"}}, {"n", uint32(5)}}, tensors, func(i int, w io.Writer) error {
		_, err := w.Write(bytes.Repeat([]byte{byte(i + 1)}, []int{8, 2}[i]))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := header(3, 2, 2)
	b.kv("k", valArray).u32(valString).u64(1).str("x")
	b.kv("n", valUint32).u32(5)
	b.tensor("a", TypeF32, 0, 2).tensor("b", TypeF16, 32, 1).padTo(32)
	b.raw(1, 1, 1, 1, 1, 1, 1, 1).padTo(32).raw(2, 2).padTo(32)
	if !bytes.Equal(buf.Bytes(), b.b) {
		t.Errorf("Write:\n got % x\nwant % x", buf.Bytes(), b.b)
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestWriteRefuses(t *testing.T) {
	f32 := []TensorInfo{{Name: "t", Dims: []uint64{4}, Type: TypeF32}}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		kvs     []KV
		tensors []TensorInfo
		data    func(int, io.Writer) error
		want    string
	}{
		{"int", []KV{{"k", 1}}, nil, nil, "unsupported value type int"},
		{"[]int", []KV{{"k", []int{1}}}, nil, nil, "unsupported value type []int"},
		{"map", []KV{{"k", map[string]int{}}}, nil, nil, "unsupported value type map"},
		{"nil", []KV{{"k", nil}}, nil, nil, "unsupported value type <nil>"},
		{"[]any of a scalar", []KV{{"k", []any{[]int8{1}, "x"}}}, nil, nil, "element 1: an []any must hold arrays, not string"},
		{"[]any of []int", []KV{{"k", []any{[]int{1}}}}, nil, nil, "element 0: unsupported value type []int"},
		{"deep", []KV{{"k", []any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{[]int8{}}}}}}}}}}}}, nil, nil, "nested more than 8 deep"},
		{"empty key", []KV{{"", "x"}}, nil, nil, "empty key"},
		{"duplicate key", []KV{{"k", "x"}, {"k", "y"}}, nil, nil, `duplicate metadata key "k"`},
		{"alignment int64", []KV{{KeyAlignment, int64(32)}}, nil, nil, "want a uint32 power of two"},
		{"alignment 48", []KV{{KeyAlignment, uint32(48)}}, nil, nil, "want a uint32 power of two"},
		{"unknown type", nil, []TensorInfo{{Name: "t", Dims: []uint64{4}, Type: 5}}, patternData(nil), "unknown ggml type 5"},
		{"not a block multiple", nil, []TensorInfo{{Name: "t", Dims: []uint64{4}, Type: TypeQ4_0}}, patternData(nil), "not a multiple"},
		{"duplicate tensor", nil, append(f32, f32...), patternData(nil), `duplicate tensor name "t"`},
		{"no data function", nil, f32, nil, "without a data function"},
		{"short data", nil, f32, func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 15)); return err }, `tensor "t": data wrote 15 bytes, want 16`},
		{"long data", nil, f32, func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 17)); return err }, "data wrote 17 bytes, want 16"},
		{"data error", nil, f32, func(int, io.Writer) error { return boom }, `tensor "t": boom`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(io.Discard, tt.kvs, tt.tensors, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write: %v, want an error with %q", err, tt.want)
			}
		})
	}
	err := Write(io.Discard, nil, f32, func(int, io.Writer) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("the data function's error is not wrapped: %v", err)
	}
	// Errors of the underlying writer come back, at any point.
	var full bytes.Buffer
	if err := Write(&full, []KV{{"k", "v"}}, f32, patternData(f32)); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{0, 10, full.Len() - 1} {
		err := Write(&failingWriter{after: after}, []KV{{"k", "v"}}, f32, patternData(f32))
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("writer failing after %d bytes: %v", after, err)
		}
	}
}
