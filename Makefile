# nerstream's build and test entry points. CI (.ci/run) and the README use
# these targets, so that the flags they set (and, with the llama.cpp engine,
# the SIMD flags of the cgo build) are the same everywhere.

GO ?= go

# llama.cpp and ggml compile through cgo. A plain cgo build has no SIMD;
# -O3 with AVX2 (x86-64-v3) made prefill 4.5x faster. MARCH=native tunes for
# this machine instead (the binary then may not run on older CPUs).
MARCH ?= x86-64-v3
ifeq ($(shell uname -m),x86_64)
SIMD := -march=$(MARCH)
endif
# -Wno-stringop-overflow quiets a known false positive of GCC in ggml-cpu's
# repack.cpp.
export CGO_CFLAGS ?= -O3 $(SIMD)
export CGO_CXXFLAGS ?= -O3 $(SIMD) -Wno-stringop-overflow

.PHONY: all build test vet fmt-check bench fuzz ci vulkan cuda gpu-kit

all: build

# The version nerstream version prints: git describe of the checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X github.com/nerstream/nerstream/engines.buildVersion=$(VERSION))

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/nerstream ./cmd/nerstream

# The README's test command.
test:
	$(GO) test ./...

vet:
	$(GO) vet ./...

# Fails on any file gofmt would change.
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Parsing and alignment benchmarks on one core, as BENCHMARKS.md quotes them.
bench:
	$(GO) test ./model/ -run '^$$' -bench . -cpu 1 -benchtime 2s -count 3

# A short fuzzing pass over the parsers and the aligner.
fuzz:
	$(GO) test ./model/ -run '^$$' -fuzz FuzzAligner -fuzztime 60s
	$(GO) test ./model/ -run '^$$' -fuzz FuzzParse -fuzztime 30s

ci: vet fmt-check test

# GPU backend modules, loaded at run time (model.backends_dir): built with
# CMake from the pinned module's sources (backends/build.sh) into
# BACKENDS_DIR, by default $$NERSTREAM_HOME/backends, else
# ~/.local/share/nerstream/backends, where nerstream looks for them. Builds
# are cached by their inputs: a second make vulkan copies the cached module.
BACKENDS_DIR ?=
# CUDA_ARCHS: the GPU architectures of make cuda (90 for Hopper, H100/H200);
# "native" builds for the GPUs of this machine.
CUDA_ARCHS ?= native

vulkan:
	backends/build.sh vulkan $(BACKENDS_DIR)

cuda:
	CUDA_ARCHS=$(CUDA_ARCHS) backends/build.sh cuda $(BACKENDS_DIR)

# The binaries of scripts/gpu-check --kit, for a GPU machine without Go: the
# program and the test binaries of the packages with GPU tests, with this
# Makefile's cgo flags.
KIT ?= .gpu-kit/bin
gpu-kit: build
	mkdir -p $(KIT)
	cp bin/nerstream $(KIT)/
	$(GO) test -c -o $(KIT)/llama.test ./model/llama
	$(GO) test -c -o $(KIT)/cmd.test ./cmd/nerstream
	$(GO) test -c -o $(KIT)/stream.test ./stream
