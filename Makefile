# nerstream's build and test entry points. CI (.ci/run) and the README use
# these targets, so that the flags they set (and, with the llama.cpp engine,
# the SIMD flags of the cgo build) are the same everywhere.

GO ?= go

.PHONY: all build test vet fmt-check bench fuzz ci

all: build

build:
	$(GO) build -o bin/nerstream ./cmd/nerstream

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
