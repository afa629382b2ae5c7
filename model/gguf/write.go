package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Write writes a GGUF version 3 file to w: the metadata kvs, the tensor
// descriptions, and each tensor's data, which data(i, w) writes for
// tensors[i], in order.
//
// Write lays the data out itself: the Offset fields of tensors are ignored
// (and left unchanged), and each tensor starts at the next multiple of the
// alignment, 32 or the uint32 value of a general.alignment entry in kvs.
// data must write exactly the tensor's [TensorInfo.Bytes]; Write pads after
// each tensor, as ggml does, so the file ends aligned. Values must be of the
// Go types that [KV] lists; anything else (int, say) is refused.
func Write(w io.Writer, kvs []KV, tensors []TensorInfo, data func(i int, w io.Writer) error) error {
	align := uint64(DefaultAlignment)
	keys := make(map[string]bool, len(kvs))
	for i, kv := range kvs {
		if kv.Key == "" {
			return fmt.Errorf("gguf: metadata entry %d has an empty key", i)
		}
		if keys[kv.Key] {
			return fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		keys[kv.Key] = true
		if _, err := valueTypeOf(kv.Value, 0); err != nil {
			return fmt.Errorf("gguf: metadata %q: %w", kv.Key, err)
		}
		if kv.Key == KeyAlignment {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
				return fmt.Errorf("gguf: %s is %v (%T), want a uint32 power of two", KeyAlignment, kv.Value, kv.Value)
			}
			align = uint64(a)
		}
	}
	if len(tensors) > 0 && data == nil {
		return errors.New("gguf: tensors without a data function")
	}
	sizes := make([]uint64, len(tensors))
	offsets := make([]uint64, len(tensors))
	names := make(map[string]bool, len(tensors))
	var off uint64
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		n, err := t.Bytes()
		if err != nil {
			return fmt.Errorf("gguf: %w", err)
		}
		offsets[i] = off
		sizes[i] = n
		off = alignUp(off+n, align)
		if off > maxInt64 {
			return errors.New("gguf: tensor data exceeds 2^63 bytes")
		}
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	if err := writeHeader(bw, kvs, tensors, offsets, align); err != nil {
		return err
	}
	tw := &countingWriter{w: bw}
	for i, t := range tensors {
		tw.n = 0
		if err := data(i, tw); err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if uint64(tw.n) != sizes[i] {
			return fmt.Errorf("gguf: tensor %q: data wrote %d bytes, want %d", t.Name, tw.n, sizes[i])
		}
		if err := pad(bw, sizes[i], align); err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// writeHeader writes the header of a file, checked by Write, through the
// padding before the data section: the magic, the counts, kvs, and the
// tensor descriptions with the given offsets.
func writeHeader(w io.Writer, kvs []KV, tensors []TensorInfo, offsets []uint64, align uint64) error {
	cw := &countingWriter{w: w}
	e := &encoder{w: cw}
	e.raw([]byte(Magic))
	e.u32(Version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		typ, _ := valueTypeOf(kv.Value, 0)
		e.u32(typ)
		e.value(kv.Value)
	}
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(offsets[i])
	}
	if e.err != nil {
		return fmt.Errorf("gguf: writing header: %w", e.err)
	}
	if err := pad(cw, uint64(cw.n), align); err != nil {
		return fmt.Errorf("gguf: writing header: %w", err)
	}
	return nil
}

// pad writes the zeros that take position n to a multiple of align.
func pad(w io.Writer, n, align uint64) error {
	var zeros [64]byte
	for k := alignUp(n, align) - n; k > 0; {
		c := min(k, uint64(len(zeros)))
		if _, err := w.Write(zeros[:c]); err != nil {
			return err
		}
		k -= c
	}
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// valueTypeOf returns the GGUF value type of a Go value, checking arrays of
// arrays all the way down.
func valueTypeOf(v any, depth int) (uint32, error) {
	switch x := v.(type) {
	case uint8:
		return valUint8, nil
	case int8:
		return valInt8, nil
	case uint16:
		return valUint16, nil
	case int16:
		return valInt16, nil
	case uint32:
		return valUint32, nil
	case int32:
		return valInt32, nil
	case float32:
		return valFloat32, nil
	case bool:
		return valBool, nil
	case string:
		return valString, nil
	case uint64:
		return valUint64, nil
	case int64:
		return valInt64, nil
	case float64:
		return valFloat64, nil
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32,
		[]bool, []string, []uint64, []int64, []float64:
		if depth >= maxDepth {
			return 0, fmt.Errorf("arrays nested more than %d deep", maxDepth)
		}
		return valArray, nil
	case []any:
		if depth >= maxDepth {
			return 0, fmt.Errorf("arrays nested more than %d deep", maxDepth)
		}
		for i, e := range x {
			t, err := valueTypeOf(e, depth+1)
			if err != nil {
				return 0, fmt.Errorf("element %d: %w", i, err)
			}
			if t != valArray {
				return 0, fmt.Errorf("element %d: an []any must hold arrays, not %T", i, e)
			}
		}
		return valArray, nil
	}
	return 0, fmt.Errorf("unsupported value type %T", v)
}

// encoder writes little-endian values, keeping the first error.
type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u8(v uint8) { e.buf[0] = v; e.raw(e.buf[:1]) }

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.raw(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// value writes a value checked by valueTypeOf (without its type).
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.bool(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		e.arrayHead(valUint8, len(x))
		e.raw(x)
	case []int8:
		writeArray(e, valInt8, x, func(v int8) { e.u8(uint8(v)) })
	case []uint16:
		writeArray(e, valUint16, x, e.u16)
	case []int16:
		writeArray(e, valInt16, x, func(v int16) { e.u16(uint16(v)) })
	case []uint32:
		writeArray(e, valUint32, x, e.u32)
	case []int32:
		writeArray(e, valInt32, x, func(v int32) { e.u32(uint32(v)) })
	case []float32:
		writeArray(e, valFloat32, x, func(v float32) { e.u32(math.Float32bits(v)) })
	case []bool:
		writeArray(e, valBool, x, e.bool)
	case []string:
		writeArray(e, valString, x, e.str)
	case []uint64:
		writeArray(e, valUint64, x, e.u64)
	case []int64:
		writeArray(e, valInt64, x, func(v int64) { e.u64(uint64(v)) })
	case []float64:
		writeArray(e, valFloat64, x, func(v float64) { e.u64(math.Float64bits(v)) })
	case []any:
		writeArray(e, valArray, x, e.value)
	}
}

// arrayHead writes an array's element type and length. In an array of
// arrays, each element is a whole array value: its own element type, length
// and elements.
func (e *encoder) arrayHead(et uint32, n int) {
	e.u32(et)
	e.u64(uint64(n))
}

func writeArray[T any](e *encoder, et uint32, xs []T, put func(T)) {
	e.arrayHead(et, len(xs))
	for _, x := range xs {
		put(x)
	}
}
