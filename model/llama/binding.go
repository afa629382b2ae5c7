package llama

/*
#cgo CFLAGS: -std=c11
#include <stdlib.h>
#include "llama_decl.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	// Compiles llama.cpp and ggml (CPU backend) through cgo.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

// backend is llama.cpp's process-wide state: started once, logs routed once.
var backend struct {
	once    sync.Once
	mu      sync.Mutex
	lastErr string // the last error llama.cpp logged
}

func initBackend() {
	backend.once.Do(func() {
		C.nerstream_route_logs()
		C.llama_backend_init()
	})
}

// lastLlamaError returns (and forgets) the last error line llama.cpp logged.
func lastLlamaError() string {
	backend.mu.Lock()
	defer backend.mu.Unlock()
	s := backend.lastErr
	backend.lastErr = ""
	return s
}

//export nerstreamLog
func nerstreamLog(level C.int, text *C.char, _ unsafe.Pointer) {
	msg := strings.TrimSpace(C.GoString(text))
	if msg == "" {
		return
	}
	if level == 4 { // GGML_LOG_LEVEL_ERROR
		backend.mu.Lock()
		backend.lastErr = msg
		backend.mu.Unlock()
	}
	slog.Log(context.Background(), slog.LevelDebug, "llama.cpp", "level", int(level), "msg", msg)
}

// SupportsGPU reports whether a GPU backend is loaded.
func SupportsGPU() bool {
	initBackend()
	return bool(C.llama_supports_gpu_offload())
}

// SystemInfo returns llama.cpp's description of the CPU features it uses.
func SystemInfo() string {
	initBackend()
	return C.GoString(C.llama_print_system_info())
}

// vocab is the tokenizer half of a loaded model.
type vocab struct {
	v       *C.struct_llama_vocab
	n       int
	bos     int32
	eos     int32
	addBOS  bool
	special map[string]int32 // special tokens the prompt uses, by text
}

var errInvalidUTF8 = errors.New("text is not valid UTF-8")

// tokenize returns the tokens of text, taken literally (no special tokens
// parsed, no BOS).
func (v *vocab) tokenize(text string) ([]int32, error) {
	return v.tokenizeMode(text, false)
}

func (v *vocab) tokenizeMode(text string, parseSpecial bool) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, errInvalidUTF8
	}
	if len(text) > 1<<28 {
		return nil, fmt.Errorf("text of %d bytes is too long to tokenize", len(text))
	}
	if text == "" {
		return nil, nil
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// SentencePiece and BPE make at most one token per byte, plus a
	// space prefix.
	max := len(text) + 2
	buf := make([]C.llama_token, max)
	n := C.llama_tokenize(v.v, ctext, C.int32_t(len(text)), &buf[0], C.int32_t(max), false, C.bool(parseSpecial))
	if n < 0 {
		return nil, fmt.Errorf("tokenizer needs %d tokens for %d bytes", -n, len(text))
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(buf[i])
	}
	return out, nil
}

// piece returns the text of a token (empty for control tokens).
func (v *vocab) piece(tok int32) []byte {
	var buf [64]C.char
	n := C.llama_token_to_piece(v.v, C.llama_token(tok), &buf[0], C.int32_t(len(buf)), 0, false)
	if n < 0 {
		big := make([]C.char, -n)
		n = C.llama_token_to_piece(v.v, C.llama_token(tok), &big[0], C.int32_t(len(big)), 0, false)
		return C.GoBytes(unsafe.Pointer(&big[0]), n)
	}
	return C.GoBytes(unsafe.Pointer(&buf[0]), n)
}
