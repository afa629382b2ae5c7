package gguf

import (
	"strings"
	"testing"
)

func TestGGMLTypeTraits(t *testing.T) {
	// Checked against ggml.c's type_traits and ggml-common.h's block
	// structures (static_asserts) of the llama.cpp that ollama v0.24.0
	// vendors.
	tests := []struct {
		typ        GGMLType
		name       string
		block, siz uint64
	}{
		{TypeF32, "F32", 1, 4},
		{TypeF16, "F16", 1, 2},
		{TypeQ4_0, "Q4_0", 32, 18},
		{TypeQ4_1, "Q4_1", 32, 20},
		{TypeQ5_0, "Q5_0", 32, 22},
		{TypeQ5_1, "Q5_1", 32, 24},
		{TypeQ8_0, "Q8_0", 32, 34},
		{TypeQ8_1, "Q8_1", 32, 36},
		{TypeQ2_K, "Q2_K", 256, 84},
		{TypeQ3_K, "Q3_K", 256, 110},
		{TypeQ4_K, "Q4_K", 256, 144},
		{TypeQ5_K, "Q5_K", 256, 176},
		{TypeQ6_K, "Q6_K", 256, 210},
		{TypeQ8_K, "Q8_K", 256, 292},
		{TypeIQ2_XXS, "IQ2_XXS", 256, 66},
		{TypeIQ2_XS, "IQ2_XS", 256, 74},
		{TypeIQ3_XXS, "IQ3_XXS", 256, 98},
		{TypeIQ1_S, "IQ1_S", 256, 50},
		{TypeIQ4_NL, "IQ4_NL", 32, 18},
		{TypeIQ3_S, "IQ3_S", 256, 110},
		{TypeIQ2_S, "IQ2_S", 256, 82},
		{TypeIQ4_XS, "IQ4_XS", 256, 136},
		{TypeI8, "I8", 1, 1},
		{TypeI16, "I16", 1, 2},
		{TypeI32, "I32", 1, 4},
		{TypeI64, "I64", 1, 8},
		{TypeF64, "F64", 1, 8},
		{TypeIQ1_M, "IQ1_M", 256, 56},
		{TypeBF16, "BF16", 1, 2},
		{TypeTQ1_0, "TQ1_0", 256, 54},
		{TypeTQ2_0, "TQ2_0", 256, 66},
		{TypeMXFP4, "MXFP4", 32, 17},
		// Removed or never defined.
		{4, "type(4)", 0, 0},
		{5, "type(5)", 0, 0},
		{31, "type(31)", 0, 0},
		{36, "type(36)", 0, 0},
		{40, "type(40)", 0, 0},
		{1 << 31, "type(2147483648)", 0, 0},
	}
	known := 0
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.name {
			t.Errorf("GGMLType(%d).String() = %q, want %q", uint32(tt.typ), got, tt.name)
		}
		if got := tt.typ.BlockSize(); got != tt.block {
			t.Errorf("%s.BlockSize() = %d, want %d", tt.name, got, tt.block)
		}
		if got := tt.typ.TypeSize(); got != tt.siz {
			t.Errorf("%s.TypeSize() = %d, want %d", tt.name, got, tt.siz)
		}
		if tt.typ.Known() != (tt.block != 0) {
			t.Errorf("%s.Known() = %v", tt.name, tt.typ.Known())
		}
		if tt.block != 0 {
			known++
		}
	}
	// Every known type is in the table above.
	n := 0
	for typ := range GGMLType(64) {
		if typ.Known() {
			n++
		}
	}
	if n != known {
		t.Errorf("%d known types, the test lists %d", n, known)
	}
}

func TestFileTypeString(t *testing.T) {
	tests := []struct {
		ft   FileType
		want string
	}{
		{0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"},
		{9, "Q5_1"}, {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},
		{14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},
		{32, "BF16"}, {38, "MXFP4_MOE"},
		{4, "file_type(4)"}, {33, "file_type(33)"}, {999, "file_type(999)"},
		{FileTypeF32, "F32"}, {FileTypeF16, "F16"}, {FileTypeQ8_0, "Q8_0"},
	}
	for _, tt := range tests {
		if got := tt.ft.String(); got != tt.want {
			t.Errorf("FileType(%d).String() = %q, want %q", uint32(tt.ft), got, tt.want)
		}
	}
}

func TestTensorInfoBytes(t *testing.T) {
	tests := []struct {
		name     string
		ti       TensorInfo
		elements uint64
		bytes    uint64
		err      string
	}{
		{"f32 vector", TensorInfo{Dims: []uint64{64}, Type: TypeF32}, 64, 256, ""},
		{"f16 matrix", TensorInfo{Dims: []uint64{64, 10}, Type: TypeF16}, 640, 1280, ""},
		{"q8_0", TensorInfo{Dims: []uint64{4096, 32000}, Type: TypeQ8_0}, 131072000, 139264000, ""},
		{"q4_k", TensorInfo{Dims: []uint64{4096, 11008}, Type: TypeQ4_K}, 45088768, 25362432, ""},
		{"4-d", TensorInfo{Dims: []uint64{32, 2, 3, 4}, Type: TypeQ4_0}, 768, 432, ""},
		{"scalar", TensorInfo{Dims: nil, Type: TypeF32}, 1, 4, ""},
		{"empty", TensorInfo{Dims: []uint64{0, 5}, Type: TypeQ8_0}, 0, 0, ""},
		{"not a block multiple", TensorInfo{Name: "x", Dims: []uint64{31, 2}, Type: TypeQ8_0}, 62, 0, "not a multiple of the Q8_0 block size 32"},
		{"scalar of a block type", TensorInfo{Dims: nil, Type: TypeQ8_0}, 1, 0, "not a multiple"},
		{"unknown type", TensorInfo{Dims: []uint64{4}, Type: 4}, 4, 0, "unknown ggml type 4"},
		{"five dims", TensorInfo{Dims: []uint64{1, 1, 1, 1, 1}, Type: TypeF32}, 1, 0, "5 dimensions"},
		{"overflow", TensorInfo{Dims: []uint64{1 << 32, 1 << 32}, Type: TypeF32}, ^uint64(0), 0, "overflow"},
		{"size overflow", TensorInfo{Dims: []uint64{1 << 31, 1 << 31}, Type: TypeF32}, 1 << 62, 0, "overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ti.Elements(); got != tt.elements {
				t.Errorf("Elements() = %d, want %d", got, tt.elements)
			}
			got, err := tt.ti.Bytes()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Bytes() = %d, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.bytes {
				t.Fatalf("Bytes() = %d, %v; want %d", got, err, tt.bytes)
			}
		})
	}
}
