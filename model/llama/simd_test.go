package llama

import (
	"slices"
	"strings"
	"testing"
)

func TestCompareSIMD(t *testing.T) {
	v3 := map[string]bool{"AVX": true, "AVX2": true, "FMA": true, "F16C": true}
	avx512 := map[string]bool{"AVX": true, "AVX2": true, "FMA": true, "F16C": true, "AVX512": true}
	tests := []struct {
		name       string
		cpu, build map[string]bool
		missing    []string
	}{
		{"plain build on an AVX2 CPU", v3, nil, []string{"AVX", "AVX2", "FMA", "F16C"}},
		{"make build on an AVX2 CPU", v3, v3, nil},
		{"make build on an AVX-512 CPU: AVX-512 is not the baseline", avx512, v3, nil},
		{"plain build on an old CPU with AVX only", map[string]bool{"AVX": true}, nil, []string{"AVX"}},
		{"unknown CPU: nothing missing", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := compareSIMD(tt.cpu, tt.build)
			if !slices.Equal(s.Missing, tt.missing) {
				t.Errorf("missing %v, want %v", s.Missing, tt.missing)
			}
			if (tt.cpu == nil) != (s.CPU == nil) || s.Build == nil {
				t.Errorf("CPU %v (nil for unknown), Build %v (never nil)", s.CPU, s.Build)
			}
		})
	}
}

func TestCPUInfoSIMD(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx f16c avx2 fma avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n"
	got := cpuinfoSIMD(strings.NewReader(info))
	for _, name := range simdNames {
		if !got[name] {
			t.Errorf("%s not found in %q", name, info)
		}
	}
	if got := cpuinfoSIMD(strings.NewReader("processor\t: 0\nflags\t\t: fpu sse2\n")); got["AVX"] || got == nil {
		t.Errorf("an SSE2-only CPU: %v", got)
	}
	if got := cpuinfoSIMD(strings.NewReader("Features\t: neon\n")); got != nil {
		t.Errorf("no flags line: %v, want nil (unknown)", got)
	}
}
