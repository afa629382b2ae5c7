package gguf

import "math"

// Float32ToF16 converts f to IEEE 754 half precision, rounding to the nearest
// value (ties to even). Values too large for half precision become
// infinities, values too small become signed zeros or subnormals, and a NaN
// stays a (quiet) NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // the half-precision biased exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// A subnormal half, m × 2^-24: shift the 24-bit significand (with
		// its implicit bit) right by 14-e, rounding.
		if e < -10 {
			return sign // below half the smallest subnormal: zero
		}
		return sign | uint16(roundShift(mant|0x800000, uint32(14-e)))
	}
	// A normal half. A carry out of the mantissa correctly bumps the
	// exponent, up to infinity.
	return sign | uint16(uint32(e)<<10+roundShift(mant, 13))
}

// roundShift returns m >> s rounded to the nearest integer, ties to even.
func roundShift(m, s uint32) uint32 {
	r := m >> s
	rem := m & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return r
}

// F16ToFloat32 converts an IEEE 754 half-precision value to float32, exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal: mant × 2^-24, exact in float32.
		f := float32(mant) / (1 << 24)
		return math.Float32frombits(sign | math.Float32bits(f))
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// Q8BlockSize is the number of values in a Q8_0 block.
const Q8BlockSize = 32

// AppendQ8_0 appends src quantised as Q8_0 blocks to dst: for each block of
// 32 values, the scale d = max|x|/127 as a half, then 32 int8 values
// round(x/d), rounded half away from zero (all zero when d is 0), as ggml's
// reference quantize_row_q8_0 does. A partial last block is padded with
// zeros.
func AppendQ8_0(dst []byte, src []float32) []byte {
	for len(src) > 0 {
		var blk [Q8BlockSize]float32
		n := copy(blk[:], src)
		src = src[n:]
		var amax float32
		for _, x := range blk {
			amax = max(amax, abs32(x))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		h := Float32ToF16(d)
		dst = append(dst, byte(h), byte(h>>8))
		for _, x := range blk {
			dst = append(dst, byte(int8(math.Round(float64(x*id)))))
		}
	}
	return dst
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
