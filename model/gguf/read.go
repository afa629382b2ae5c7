package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
)

// ErrFormat is wrapped by every error that [Read] and [Open] return for a
// file that is not a valid GGUF file.
var ErrFormat = errors.New("gguf: invalid file")

// Magic is the four bytes that start every GGUF file.
const Magic = "GGUF"

// Version is the GGUF version that [Write] writes. [Read] also accepts
// version 2, which has the same layout.
const Version = 3

// DefaultAlignment is the alignment of tensor data when general.alignment is
// absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the alignment of tensor data.
const KeyAlignment = "general.alignment"

// maxDepth bounds the nesting of arrays of arrays.
const maxDepth = 8

// MaxHeaderBytes bounds the header (the metadata and the tensor
// descriptions): [Read] refuses a file whose header runs past it, so that
// the memory a header takes is bounded whatever the size of the file. Real
// headers take a few megabytes (LLaMA-7B's, with its 32,000 tokens, 0.7
// MB; a 256,000-token vocabulary with its merges about 20 MB).
const MaxHeaderBytes = 256 << 20

// maxHeader is MaxHeaderBytes, a variable so that tests can lower it.
var maxHeader int64 = MaxHeaderBytes

// KV is one metadata entry: a key and its value.
//
// Values are Go values of the GGUF value types: uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64 and float64; an array
// is a slice of one of these ([]string, []float32, []int32, …), and an array
// of arrays is an []any of such slices.
type KV struct {
	Key   string
	Value any
}

// File is the header of a GGUF file: its metadata and tensor descriptions.
type File struct {
	// Version is the GGUF version, 2 or 3.
	Version uint32
	// KVs are the metadata entries, in file order.
	KVs []KV
	// Tensors are the tensor descriptions, in file order.
	Tensors []TensorInfo
	// Alignment is the alignment of tensor data: general.alignment, or
	// [DefaultAlignment].
	Alignment uint64
	// DataOffset is where the data section starts, from the start of the
	// file; tensor offsets are relative to it.
	DataOffset int64
	// Size is the size of the file in bytes.
	Size int64
}

// KV returns the value of the metadata key, and whether it is present.
func (f *File) KV(key string) (any, bool) {
	for _, kv := range f.KVs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// String returns the value of a string-valued key.
func (f *File) String(key string) (string, bool) {
	v, _ := f.KV(key)
	s, ok := v.(string)
	return s, ok
}

// Uint returns the value of an integer-valued key of any integer type, if it
// is present and not negative.
func (f *File) Uint(key string) (uint64, bool) {
	v, _ := f.KV(key)
	return asUint(v)
}

// Float returns the value of a number-valued key (a float, or an integer) as
// a float64.
func (f *File) Float(key string) (float64, bool) {
	v, _ := f.KV(key)
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if u, ok := asUint(v); ok {
		return float64(u), true
	}
	if i, ok := v.(int64); ok {
		return float64(i), true
	}
	if i, ok := v.(int32); ok {
		return float64(i), true
	}
	return 0, false
}

// Bool returns the value of a bool-valued key.
func (f *File) Bool(key string) (bool, bool) {
	v, _ := f.KV(key)
	b, ok := v.(bool)
	return b, ok
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// Section returns a reader of tensor i's data in r, the file that f was read
// from.
func (f *File) Section(r io.ReaderAt, i int) (*io.SectionReader, error) {
	if i < 0 || i >= len(f.Tensors) {
		return nil, fmt.Errorf("gguf: no tensor %d (the file has %d)", i, len(f.Tensors))
	}
	t := f.Tensors[i]
	n, err := t.Bytes()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return io.NewSectionReader(r, f.DataOffset+int64(t.Offset), int64(n)), nil
}

// asUint converts a value of any integer type to uint64, refusing negative
// numbers.
func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return nonNegative(int64(x))
	case int16:
		return nonNegative(int64(x))
	case int32:
		return nonNegative(int64(x))
	case int64:
		return nonNegative(x)
	}
	return 0, false
}

func nonNegative(x int64) (uint64, bool) {
	if x < 0 {
		return 0, false
	}
	return uint64(x), true
}

// Open reads the header of the GGUF file at path.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// formatError is a defect of the file, turned into an [ErrFormat] error by
// [Read] with the context of where it was found.
type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

func bad(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// Read reads the header of a GGUF file of size bytes from r. It reads no
// tensor data, and bounds every allocation by the size of the file.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrFormat, size)
	}
	d := &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10), size: size, limit: min(size, maxHeader)}
	f, err := d.file()
	if err != nil {
		var fe *formatError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%w: %s", ErrFormat, err.Error())
		}
		return nil, fmt.Errorf("gguf: reading header: %w", err)
	}
	return f, nil
}

// decoder reads little-endian values, keeping count of the bytes left
// before the end of the header's room: the end of the file, or
// MaxHeaderBytes.
type decoder struct {
	r     *bufio.Reader
	pos   int64
	size  int64 // the file's size
	limit int64 // where the header must end: min(size, maxHeader)
	buf   [8]byte
	sbuf  []byte // str's buffer for short strings
}

func (d *decoder) left() int64 { return d.limit - d.pos }

// need fails unless n bytes are left.
func (d *decoder) need(n uint64, what string) error {
	if n > uint64(d.left()) {
		if d.limit < d.size && n <= uint64(d.size-d.pos) {
			return bad("%s needs %d bytes at offset %d, past the %d-byte bound on a header", what, n, d.pos, d.limit)
		}
		return bad("%s needs %d bytes at offset %d, but the file has %d left", what, n, d.pos, d.size-d.pos)
	}
	return nil
}

// fixed reads n ≤ 8 bytes.
func (d *decoder) fixed(n int, what string) ([]byte, error) {
	if err := d.need(uint64(n), what); err != nil {
		return nil, err
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, d.readErr(err, what)
	}
	d.pos += int64(n)
	return b, nil
}

// readErr turns a short read inside the declared size into a format error
// (the reader is shorter than it claimed); other errors stay I/O errors.
func (d *decoder) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return bad("%s at offset %d: the data ends before the declared size of %d bytes", what, d.pos, d.size)
	}
	return err
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.fixed(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.fixed(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// lengthOf names the length of a string for messages, without an
// allocation for the usual ones (str runs once per token).
func lengthOf(what string) string {
	switch what {
	case "string":
		return "string length"
	case "key":
		return "key length"
	case "tensor name":
		return "tensor name length"
	}
	return what + " length"
}

// str reads a GGUF string: a uint64 length and that many bytes.
func (d *decoder) str(what string) (string, error) {
	n, err := d.u64(lengthOf(what))
	if err != nil {
		return "", err
	}
	if n > uint64(d.left()) {
		return "", d.need(n, fmt.Sprintf("%s of length %d", what, n))
	}
	// Short strings (tokens, keys) go through one reused buffer, so that
	// each costs one allocation, the string's own.
	var b []byte
	if n <= uint64(cap(d.sbuf)) {
		b = d.sbuf[:n]
	} else if n <= 256 {
		d.sbuf = make([]byte, 256)
		b = d.sbuf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		return "", d.readErr(err, what)
	}
	d.pos += int64(n)
	return string(b), nil
}

func (d *decoder) file() (*File, error) {
	b, err := d.fixed(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(b) != Magic {
		return nil, bad("magic %q, want %q", b, Magic)
	}
	f := &File{Alignment: DefaultAlignment, Size: d.size}
	if f.Version, err = d.u32("version"); err != nil {
		return nil, err
	}
	switch {
	case f.Version == 1:
		return nil, bad("GGUF version 1 is not supported (only 2 and 3)")
	case f.Version != 2 && f.Version != 3:
		if bits.ReverseBytes32(f.Version) <= 3 {
			return nil, bad("version %#x: a big-endian GGUF file is not supported", f.Version)
		}
		return nil, bad("unsupported GGUF version %d (only 2 and 3)", f.Version)
	}
	nt, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// A metadata entry takes at least 13 bytes, a tensor description 24.
	if nkv > uint64(d.left())/13 {
		return nil, bad("metadata count %d is more than the %d bytes left can hold", nkv, d.left())
	}
	if nt > uint64(d.left())/24 {
		return nil, bad("tensor count %d is more than the %d bytes left can hold", nt, d.left())
	}

	f.KVs = make([]KV, 0, nkv)
	keys := make(map[string]bool, nkv)
	for i := range nkv {
		key, err := d.str("key")
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d: %w", i, err)
		}
		if keys[key] {
			return nil, bad("metadata entry %d: duplicate key %s", i, quote(key))
		}
		keys[key] = true
		typ, err := d.u32("value type")
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d (%s): %w", i, quote(key), err)
		}
		v, err := d.value(typ, 0)
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d (%s): %w", i, quote(key), err)
		}
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}
	if v, ok := f.KV(KeyAlignment); ok {
		a, ok := asUint(v)
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return nil, bad("%s is %s (%T), want a power of two", KeyAlignment, short(v), v)
		}
		f.Alignment = a
	}

	f.Tensors = make([]TensorInfo, 0, nt)
	names := make(map[string]bool, nt)
	for i := range nt {
		t, err := d.tensorInfo(f.Alignment)
		if err != nil {
			if t.Name != "" {
				return nil, fmt.Errorf("tensor %d (%s): %w", i, quote(t.Name), err)
			}
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if names[t.Name] {
			return nil, bad("tensor %d: duplicate name %s", i, quote(t.Name))
		}
		names[t.Name] = true
		f.Tensors = append(f.Tensors, t)
	}

	f.DataOffset = int64(alignUp(uint64(d.pos), f.Alignment))
	for i, t := range f.Tensors {
		n, _ := t.Bytes() // checked by tensorInfo
		start := uint64(f.DataOffset) + t.Offset
		if t.Offset > maxInt64 || start < t.Offset || start > uint64(d.size) || n > uint64(d.size)-start {
			return nil, bad("tensor %d (%s): its %d bytes of data at offset %d of the data section (which starts at %d) run past the end of the %d-byte file",
				i, quote(t.Name), n, t.Offset, f.DataOffset, d.size)
		}
	}
	return f, nil
}

// alignUp rounds n up to a multiple of a, a power of two; n is at most 2^63.
func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func (d *decoder) tensorInfo(align uint64) (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = d.str("tensor name"); err != nil {
		return t, err
	}
	nd, err := d.u32("dimension count")
	if err != nil {
		return t, err
	}
	if nd > MaxDims {
		return t, bad("%d dimensions, more than %d", nd, MaxDims)
	}
	t.Dims = make([]uint64, nd)
	for j := range t.Dims {
		if t.Dims[j], err = d.u64("dimension"); err != nil {
			return t, err
		}
	}
	typ, err := d.u32("tensor type")
	if err != nil {
		return t, err
	}
	t.Type = GGMLType(typ)
	if !t.Type.Known() {
		return t, bad("unknown ggml type %d", typ)
	}
	if t.Offset, err = d.u64("tensor offset"); err != nil {
		return t, err
	}
	if _, err := t.Bytes(); err != nil {
		return t, bad("%v", err)
	}
	if t.Offset%align != 0 {
		return t, bad("data offset %d is not a multiple of the alignment %d", t.Offset, align)
	}
	return t, nil
}

// value reads a value of type typ; depth counts the enclosing arrays.
func (d *decoder) value(typ uint32, depth int) (any, error) {
	switch typ {
	case valString:
		return d.str("string")
	case valArray:
		return d.array(depth + 1)
	}
	sz := valueSize(typ)
	if sz == 0 {
		return nil, bad("unknown value type %d", typ)
	}
	b, err := d.fixed(sz, valueTypeName(typ))
	if err != nil {
		return nil, err
	}
	return scalar(typ, b)
}

// scalar decodes a fixed-size value.
func scalar(typ uint32, b []byte) (any, error) {
	le := binary.LittleEndian
	switch typ {
	case valUint8:
		return b[0], nil
	case valInt8:
		return int8(b[0]), nil
	case valBool:
		if b[0] > 1 {
			return nil, bad("bool value %d, want 0 or 1", b[0])
		}
		return b[0] == 1, nil
	case valUint16:
		return le.Uint16(b), nil
	case valInt16:
		return int16(le.Uint16(b)), nil
	case valUint32:
		return le.Uint32(b), nil
	case valInt32:
		return int32(le.Uint32(b)), nil
	case valFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case valUint64:
		return le.Uint64(b), nil
	case valInt64:
		return int64(le.Uint64(b)), nil
	case valFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	return nil, bad("unknown value type %d", typ)
}

// array reads an array: element type, count and elements, into a typed slice
// (an []any for an array of arrays).
func (d *decoder) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, bad("arrays nested more than %d deep", maxDepth)
	}
	et, err := d.u32("array element type")
	if err != nil {
		return nil, err
	}
	n, err := d.u64("array length")
	if err != nil {
		return nil, err
	}
	// The least space an element takes bounds the count by the bytes left.
	minSize := uint64(valueSize(et))
	switch et {
	case valString:
		minSize = 8
	case valArray:
		minSize = 12
	}
	if minSize == 0 {
		return nil, bad("array of unknown value type %d", et)
	}
	if n > uint64(d.left())/minSize {
		return nil, bad("array of %d %s values is more than the %d bytes left can hold", n, valueTypeName(et), d.left())
	}
	switch et {
	case valString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = d.str("string"); err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		return out, nil
	case valArray:
		out := make([]any, n)
		for i := range out {
			if out[i], err = d.array(depth + 1); err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		return out, nil
	}
	le := binary.LittleEndian
	switch et {
	case valUint8:
		return readSlice(d, n, 1, func(b []byte) uint8 { return b[0] })
	case valInt8:
		return readSlice(d, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case valUint16:
		return readSlice(d, n, 2, le.Uint16)
	case valInt16:
		return readSlice(d, n, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case valUint32:
		return readSlice(d, n, 4, le.Uint32)
	case valInt32:
		return readSlice(d, n, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case valFloat32:
		return readSlice(d, n, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case valUint64:
		return readSlice(d, n, 8, le.Uint64)
	case valInt64:
		return readSlice(d, n, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case valFloat64:
		return readSlice(d, n, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	}
	// valBool: each byte must be 0 or 1.
	out := make([]bool, n)
	for i := range out {
		b, err := d.fixed(1, "bool")
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		if b[0] > 1 {
			return nil, bad("array element %d: bool value %d, want 0 or 1", i, b[0])
		}
		out[i] = b[0] == 1
	}
	return out, nil
}

// readSlice reads n values of sz bytes each, decoding them with dec.
func readSlice[T any](d *decoder, n uint64, sz int, dec func([]byte) T) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		b, err := d.fixed(sz, "array element")
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		out[i] = dec(b)
	}
	return out, nil
}
