package gguf

import (
	"fmt"
	"math/bits"
)

// GGMLType is the type of a tensor's elements, ggml's enum ggml_type.
type GGMLType uint32

// The ggml tensor types that GGUF files hold. Numbers 4, 5 and 31–33, 36–38
// were removed from ggml and are refused.
const (
	TypeF32     GGMLType = 0  // 32-bit float
	TypeF16     GGMLType = 1  // IEEE 754 half precision
	TypeQ4_0    GGMLType = 2  // 4-bit, blocks of 32 with an f16 scale
	TypeQ4_1    GGMLType = 3  // 4-bit, blocks of 32 with f16 scale and minimum
	TypeQ5_0    GGMLType = 6  // 5-bit, blocks of 32 with an f16 scale
	TypeQ5_1    GGMLType = 7  // 5-bit, blocks of 32 with f16 scale and minimum
	TypeQ8_0    GGMLType = 8  // 8-bit, blocks of 32 with an f16 scale
	TypeQ8_1    GGMLType = 9  // 8-bit, blocks of 32 with f16 scale and sum
	TypeQ2_K    GGMLType = 10 // k-quant, 2-bit, super-blocks of 256
	TypeQ3_K    GGMLType = 11 // k-quant, 3-bit
	TypeQ4_K    GGMLType = 12 // k-quant, 4-bit
	TypeQ5_K    GGMLType = 13 // k-quant, 5-bit
	TypeQ6_K    GGMLType = 14 // k-quant, 6-bit
	TypeQ8_K    GGMLType = 15 // k-quant, 8-bit (intermediate results)
	TypeIQ2_XXS GGMLType = 16 // i-quant, 2.06 bits per weight
	TypeIQ2_XS  GGMLType = 17 // i-quant, 2.31 bits per weight
	TypeIQ3_XXS GGMLType = 18 // i-quant, 3.06 bits per weight
	TypeIQ1_S   GGMLType = 19 // i-quant, 1.56 bits per weight
	TypeIQ4_NL  GGMLType = 20 // i-quant, 4-bit non-linear, blocks of 32
	TypeIQ3_S   GGMLType = 21 // i-quant, 3.44 bits per weight
	TypeIQ2_S   GGMLType = 22 // i-quant, 2.5 bits per weight
	TypeIQ4_XS  GGMLType = 23 // i-quant, 4.25 bits per weight
	TypeI8      GGMLType = 24 // 8-bit integer
	TypeI16     GGMLType = 25 // 16-bit integer
	TypeI32     GGMLType = 26 // 32-bit integer
	TypeI64     GGMLType = 27 // 64-bit integer
	TypeF64     GGMLType = 28 // 64-bit float
	TypeIQ1_M   GGMLType = 29 // i-quant, 1.75 bits per weight
	TypeBF16    GGMLType = 30 // bfloat16
	TypeTQ1_0   GGMLType = 34 // ternary, 1.69 bits per weight
	TypeTQ2_0   GGMLType = 35 // ternary, 2.06 bits per weight
	TypeMXFP4   GGMLType = 39 // microscaling FP4, blocks of 32
)

// ggmlTraits is one row of the type table: name, elements per block and
// bytes per block, as ggml.c's type_traits and ggml-common.h's block
// structures give them.
type ggmlTraits struct {
	name      string
	blockSize uint64
	typeSize  uint64
}

// ggmlTypes is indexed by GGMLType; a zero row is an unknown type.
var ggmlTypes = [...]ggmlTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 18},
	TypeQ4_1:    {"Q4_1", 32, 20},
	TypeQ5_0:    {"Q5_0", 32, 22},
	TypeQ5_1:    {"Q5_1", 32, 24},
	TypeQ8_0:    {"Q8_0", 32, 34},
	TypeQ8_1:    {"Q8_1", 32, 36},
	TypeQ2_K:    {"Q2_K", 256, 84},
	TypeQ3_K:    {"Q3_K", 256, 110},
	TypeQ4_K:    {"Q4_K", 256, 144},
	TypeQ5_K:    {"Q5_K", 256, 176},
	TypeQ6_K:    {"Q6_K", 256, 210},
	TypeQ8_K:    {"Q8_K", 256, 292},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98},
	TypeIQ1_S:   {"IQ1_S", 256, 50},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18},
	TypeIQ3_S:   {"IQ3_S", 256, 110},
	TypeIQ2_S:   {"IQ2_S", 256, 82},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", 256, 56},
	TypeBF16:    {"BF16", 1, 2},
	TypeTQ1_0:   {"TQ1_0", 256, 54},
	TypeTQ2_0:   {"TQ2_0", 256, 66},
	TypeMXFP4:   {"MXFP4", 32, 17},
}

func (t GGMLType) traits() ggmlTraits {
	if uint64(t) < uint64(len(ggmlTypes)) {
		return ggmlTypes[t]
	}
	return ggmlTraits{}
}

// Known reports whether t is a tensor type this package knows.
func (t GGMLType) Known() bool { return t.traits().blockSize != 0 }

// String returns the type's name in upper case, as gguf-py spells it ("F16",
// "Q4_K"), or "type(N)" for an unknown type.
func (t GGMLType) String() string {
	if tr := t.traits(); tr.blockSize != 0 {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize returns the number of elements in one block of the type (1 for
// plain types, 32 or 256 for quantised ones), or 0 for an unknown type.
func (t GGMLType) BlockSize() uint64 { return t.traits().blockSize }

// TypeSize returns the number of bytes in one block of the type, or 0 for an
// unknown type.
func (t GGMLType) TypeSize() uint64 { return t.traits().typeSize }

// MaxDims is the most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
const MaxDims = 4

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor's name, e.g. "blk.0.attn_q.weight".
	Name string
	// Dims are the tensor's dimensions in ggml order: Dims[0] (ne0) is the
	// number of elements in a row, the fastest-varying dimension.
	Dims []uint64
	// Type is the element type.
	Type GGMLType
	// Offset is the start of the tensor's data, relative to the data
	// section ([File.DataOffset]); a multiple of the alignment.
	Offset uint64
}

// Elements returns the number of elements, the product of the dimensions (1
// for a tensor without dimensions). It saturates at the largest uint64 on
// overflow, which [Read] never lets through.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return ^uint64(0)
		}
		n = lo
	}
	return n
}

// Bytes returns the size of the tensor's data. It fails when the type is
// unknown, when the first dimension is not a multiple of the type's block
// size, or when the size overflows 63 bits.
func (t TensorInfo) Bytes() (uint64, error) {
	bs, ts := t.Type.BlockSize(), t.Type.TypeSize()
	if bs == 0 {
		return 0, fmt.Errorf("tensor %s: unknown ggml type %d", quote(t.Name), uint32(t.Type))
	}
	if len(t.Dims) > MaxDims {
		return 0, fmt.Errorf("tensor %s: %d dimensions, more than %d", quote(t.Name), len(t.Dims), MaxDims)
	}
	ne0 := uint64(1)
	if len(t.Dims) > 0 {
		ne0 = t.Dims[0]
	}
	if ne0%bs != 0 {
		return 0, fmt.Errorf("tensor %s: first dimension %d is not a multiple of the %s block size %d", quote(t.Name), ne0, t.Type, bs)
	}
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > maxInt64 {
			return 0, fmt.Errorf("tensor %s: dimensions %v overflow", quote(t.Name), t.Dims)
		}
		n = lo
	}
	hi, size := bits.Mul64(n/bs, ts)
	if hi != 0 || size > maxInt64 {
		return 0, fmt.Errorf("tensor %s: size of %v %s overflows", quote(t.Name), t.Dims, t.Type)
	}
	return size, nil
}

const maxInt64 = 1<<63 - 1

// FileType is llama.cpp's llama_ftype, the general.file_type value that says
// how most of a model's tensors are quantised.
type FileType uint32

// Some llama.cpp file types; [FileType.String] names all of them.
const (
	FileTypeF32  FileType = 0  // LLAMA_FTYPE_ALL_F32
	FileTypeF16  FileType = 1  // LLAMA_FTYPE_MOSTLY_F16
	FileTypeQ4_0 FileType = 2  // LLAMA_FTYPE_MOSTLY_Q4_0
	FileTypeQ8_0 FileType = 7  // LLAMA_FTYPE_MOSTLY_Q8_0
	FileTypeBF16 FileType = 32 // LLAMA_FTYPE_MOSTLY_BF16
)

// fileTypeNames are llama.h's llama_ftype names without LLAMA_FTYPE_ and
// MOSTLY_, the way model files are named (UniNER-7B-type.Q4_K_M.gguf).
var fileTypeNames = map[FileType]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
	15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS",
	20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
	25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
	30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
	38: "MXFP4_MOE", 1024: "GUESSED",
}

// String returns the file type's name ("F16", "Q4_K_M", …), or
// "file_type(N)" for a number llama.cpp does not define.
func (t FileType) String() string {
	if s, ok := fileTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("file_type(%d)", uint32(t))
}

// GGUF metadata value types.
const (
	valUint8   uint32 = 0
	valInt8    uint32 = 1
	valUint16  uint32 = 2
	valInt16   uint32 = 3
	valUint32  uint32 = 4
	valInt32   uint32 = 5
	valFloat32 uint32 = 6
	valBool    uint32 = 7
	valString  uint32 = 8
	valArray   uint32 = 9
	valUint64  uint32 = 10
	valInt64   uint32 = 11
	valFloat64 uint32 = 12
)

// valueSize is the encoded size of a fixed-size value type, 0 for the others.
func valueSize(t uint32) int {
	switch t {
	case valUint8, valInt8, valBool:
		return 1
	case valUint16, valInt16:
		return 2
	case valUint32, valInt32, valFloat32:
		return 4
	case valUint64, valInt64, valFloat64:
		return 8
	}
	return 0
}

// valueTypeName names a value type for error messages.
func valueTypeName(t uint32) string {
	names := [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
		"float32", "bool", "string", "array", "uint64", "int64", "float64"}
	if t < uint32(len(names)) {
		return names[t]
	}
	return fmt.Sprintf("unknown value type %d", t)
}
