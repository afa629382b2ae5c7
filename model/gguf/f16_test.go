package gguf

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func TestFloat32ToF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"0.1", 0.1, 0x2e66},
		{"one third", 1.0 / 3, 0x3555},
		{"0.02", 0.02, 0x251f},
		{"largest", 65504, 0x7bff},
		{"rounds down to largest", 65519, 0x7bff},
		{"tie above largest rounds to even: infinity", 65520, 0x7c00},
		{"overflow", 1e10, 0x7c00},
		{"negative overflow", -1e10, 0xfc00},
		{"infinity", float32(math.Inf(1)), 0x7c00},
		{"minus infinity", float32(math.Inf(-1)), 0xfc00},
		{"tie to even, down", 1 + 1.0/2048, 0x3c00},
		{"tie to even, up", 1 + 3.0/2048, 0x3c02},
		{"above the tie", 1 + 1.0/2048 + 1.0/65536, 0x3c01},
		{"mantissa carry", 2 - 1.0/4096, 0x4000},
		{"smallest normal", 1.0 / (1 << 14), 0x0400},
		{"largest subnormal", 1023.0 / (1 << 24), 0x03ff},
		{"subnormal rounds up to normal", 1023.5 / (1 << 24), 0x0400},
		{"smallest subnormal", 1.0 / (1 << 24), 0x0001},
		{"negative subnormal", -3.0 / (1 << 24), 0x8003},
		{"half the smallest subnormal: tie to zero", 1.0 / (1 << 25), 0x0000},
		{"above half the smallest subnormal", 1.5 / (1 << 25), 0x0001},
		{"subnormal tie to even, up", 2.5 / (1 << 24), 0x0002},
		{"subnormal tie to even, up (odd)", 3.5 / (1 << 24), 0x0004},
		{"tiny", 1e-8, 0x0000},
		{"negative tiny", -1e-8, 0x8000},
		{"float32 subnormal", math.SmallestNonzeroFloat32, 0x0000},
	}
	for _, tt := range tests {
		if got := Float32ToF16(tt.in); got != tt.want {
			t.Errorf("%s: Float32ToF16(%g) = %#04x, want %#04x", tt.name, tt.in, got, tt.want)
		}
	}
	nan := Float32ToF16(float32(math.NaN()))
	if nan&0x7c00 != 0x7c00 || nan&0x3ff == 0 {
		t.Errorf("NaN became %#04x", nan)
	}
}

// f16Value is the exact value of a half, computed independently.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestF16ToFloat32AllValues(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got, want := F16ToFloat32(h), f16Value(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Errorf("F16ToFloat32(%#04x) = %g, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Errorf("F16ToFloat32(%#04x) = %g, want %g", h, got, want)
		}
		if back := Float32ToF16(got); back != h {
			t.Errorf("Float32ToF16(F16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

// TestFloat32ToF16Nearest checks random values against the definition:
// the nearest half, ties to the even one.
func TestFloat32ToF16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := Float32ToF16(f)
		got := f16Value(h)
		// The neighbours of h, towards and away from zero.
		err := math.Abs(float64(f) - got)
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7fff > 0x7bff || (h&0x7fff == 0 && n&0x7fff != 1) {
				continue
			}
			ne := math.Abs(float64(f) - f16Value(n))
			if ne < err || (ne == err && h&1 == 1) {
				t.Fatalf("Float32ToF16(%g) = %#04x (%g), but %#04x (%g) is nearer or even", f, h, got, n, f16Value(n))
			}
		}
	}
}

func TestAppendQ8_0(t *testing.T) {
	// amax 2.54, so d = 0.02 (the half 0x251f), and each value is x/0.02
	// rounded half away from zero.
	x := make([]float32, 32)
	copy(x, []float32{-2.54, 1, 0.5, 0.1, 0, -0.033, 0.011, 0.009, 2.54, -1.001})
	want := []byte{0x1f, 0x25, byte(0x100 - 127), 50, 25, 5, 0, byte(0x100 - 2), 1, 0, 127, byte(0x100 - 50)}
	want = append(want, make([]byte, 22)...)
	if got := AppendQ8_0(nil, x); !bytes.Equal(got, want) {
		t.Errorf("AppendQ8_0:\n got % x\nwant % x", got, want)
	}

	tests := []struct {
		name string
		in   []float32
		want []byte
	}{
		{"zeros", make([]float32, 32), make([]byte, 34)},
		{"empty", nil, nil},
		// One value 1: d = 1/127 (the half 0x2008), q = 127; a partial
		// block is padded with zeros.
		{"partial", []float32{1}, append([]byte{0x08, 0x20, 127}, make([]byte, 31)...)},
		// Two blocks, scaled independently.
		{"two blocks", append(append([]float32{-4}, make([]float32, 31)...), 1),
			append(append([]byte{0x08, 0x28, 0x81}, make([]byte, 31)...), append([]byte{0x08, 0x20, 127}, make([]byte, 31)...)...)},
	}
	for _, tt := range tests {
		if got := AppendQ8_0(nil, tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, tt.want)
		}
	}
	// It appends.
	if got := AppendQ8_0([]byte{9}, make([]float32, 32)); len(got) != 35 || got[0] != 9 {
		t.Errorf("AppendQ8_0 does not append: % x", got)
	}
}
