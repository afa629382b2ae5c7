package llama

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
)

// Why the build is checked (issue 22). cgo compiles llama.cpp and ggml
// with CGO_CFLAGS and CGO_CXXFLAGS, which a plain `go build` or `go
// install` leaves at -O2 with no -march: ggml's CPU backend then has no
// AVX2, FMA or F16C code, whatever the CPU offers, and decodes about seven
// times slower. A #cgo directive applies only to the package that holds
// it, so nerstream cannot set the flags of the vendored ggml package
// itself; it can only tell the user.

// SIMD is what the CPU offers and what ggml's CPU backend was built with,
// among the x86 extensions that decide its speed.
type SIMD struct {
	// CPU and Build list the extensions (AVX, AVX2, FMA, F16C, AVX512)
	// that the processor has and that the build was compiled with. CPU
	// is nil where the system does not say (not Linux, not x86).
	CPU   []string `json:"cpu"`
	Build []string `json:"build"`
	// Missing are the extensions of `make build`'s baseline
	// (x86-64-v3: AVX, AVX2, FMA, F16C) that the CPU has and the build
	// lacks: each costs speed. AVX-512 is never missing: the baseline
	// leaves it out, so that one binary runs on every x86-64-v3 CPU.
	Missing []string `json:"missing,omitempty"`
}

// simdNames are the extensions SIMD reports, in order.
var simdNames = [...]string{"AVX", "AVX2", "FMA", "F16C", "AVX512"}

// baselineSIMD are the extensions of x86-64-v3, `make build`'s -march.
var baselineSIMD = map[string]bool{"AVX": true, "AVX2": true, "FMA": true, "F16C": true}

// DetectSIMD compares the CPU's extensions with the build's.
func DetectSIMD() SIMD {
	var cpu map[string]bool
	if runtime.GOARCH == "amd64" {
		if f, err := os.Open("/proc/cpuinfo"); err == nil {
			cpu = cpuinfoSIMD(f)
			f.Close()
		}
	}
	return compareSIMD(cpu, buildSIMD())
}

// compareSIMD builds a SIMD from the CPU's extensions (nil: unknown) and
// the build's.
func compareSIMD(cpu, build map[string]bool) SIMD {
	var s SIMD
	for _, name := range simdNames {
		if cpu != nil && cpu[name] {
			s.CPU = append(s.CPU, name)
		}
		if build[name] {
			s.Build = append(s.Build, name)
		}
		if cpu[name] && !build[name] && baselineSIMD[name] {
			s.Missing = append(s.Missing, name)
		}
	}
	if cpu != nil && s.CPU == nil {
		s.CPU = []string{}
	}
	if s.Build == nil {
		s.Build = []string{}
	}
	return s
}

// cpuinfoSIMD reads the extensions of the first processor's "flags" line
// of /proc/cpuinfo.
func cpuinfoSIMD(r io.Reader) map[string]bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		has := map[string]bool{}
		for _, f := range strings.Fields(value) {
			has[f] = true
		}
		return map[string]bool{"AVX": has["avx"], "AVX2": has["avx2"], "FMA": has["fma"], "F16C": has["f16c"], "AVX512": has["avx512f"]}
	}
	return nil
}

// BuildFlagsHint is how to build with the SIMD flags, for messages.
const BuildFlagsHint = `build with "make build", or for go install set CGO_CFLAGS="-O3 -march=x86-64-v3" CGO_CXXFLAGS="-O3 -march=x86-64-v3"`

var simdWarning sync.Once

// warnSIMD logs, once per process, that the build lacks extensions the
// CPU has.
func warnSIMD(log *slog.Logger) {
	simdWarning.Do(func() {
		s := DetectSIMD()
		if len(s.Missing) == 0 {
			return
		}
		if log == nil {
			log = slog.Default()
		}
		log.Warn("llama.cpp was compiled without SIMD extensions this CPU has, so the CPU engine runs several times slower (a plain go build measured 7 times slower); "+BuildFlagsHint,
			"missing", strings.Join(s.Missing, ","))
	})
}

// LlamaCppCommit is the llama.cpp commit of the pinned sources (the
// module github.com/ollama/ollama v0.24.0 vendors it; its
// llama/build-info.cpp says the same, which TestLlamaCppCommit checks).
const LlamaCppCommit = "ec98e2002"
