// Package gputest is what the GPU tests share: the folder of the GPU
// backend module they run and the device they run on. CI runs them on the
// Vulkan module with Mesa's lavapipe, a Vulkan driver on the CPU, where
// there is no GPU; scripts/gpu-check runs them on the CUDA module and a
// real GPU.
package gputest

import (
	"cmp"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Module is a GPU backend module under test.
type Module struct {
	// Dir is the backends folder that holds it.
	Dir string
	// Backend is ggml's name for it: "Vulkan" or "CUDA".
	Backend string
	// Device is the name of its first device: "Vulkan0" or "CUDA0".
	Device string
}

// Find returns the module that the environment names:
// NERSTREAM_TEST_GPU_BACKEND ("Vulkan", the default, or "CUDA") in the
// folder NERSTREAM_TEST_BACKENDS_DIR (make vulkan, make cuda). Without
// one the test skips, unless NERSTREAM_REQUIRE_VULKAN=1 (CI) or
// NERSTREAM_REQUIRE_CUDA=1 (scripts/gpu-check) asks for that backend, when
// it fails. For Vulkan it makes ggml-vulkan show CPU-type devices such as
// lavapipe (GGML_VK_VISIBLE_DEVICES=0), which it hides by default; the
// variable is read once, when the module loads.
func Find(t testing.TB) Module {
	t.Helper()
	backend := cmp.Or(os.Getenv("NERSTREAM_TEST_GPU_BACKEND"), "Vulkan")
	var lib string
	switch backend {
	case "Vulkan":
		lib = "libggml-vulkan.so"
	case "CUDA":
		lib = "libggml-cuda.so"
	default:
		t.Fatalf("NERSTREAM_TEST_GPU_BACKEND=%q: want Vulkan or CUDA", backend)
	}
	dir := os.Getenv("NERSTREAM_TEST_BACKENDS_DIR")
	if _, err := os.Stat(filepath.Join(dir, lib)); dir == "" || err != nil {
		if require := "NERSTREAM_REQUIRE_" + strings.ToUpper(backend); os.Getenv(require) == "1" {
			t.Fatalf("%s is set, but NERSTREAM_TEST_BACKENDS_DIR (%q) holds no %s (make %s builds it)", require, dir, lib, strings.ToLower(backend))
		}
		t.Skipf("no %s module: set NERSTREAM_TEST_BACKENDS_DIR to the folder of `make %s`", backend, strings.ToLower(backend))
	}
	if backend == "Vulkan" && os.Getenv("GGML_VK_VISIBLE_DEVICES") == "" {
		os.Setenv("GGML_VK_VISIBLE_DEVICES", "0")
	}
	return Module{Dir: dir, Backend: backend, Device: backend + "0"}
}
