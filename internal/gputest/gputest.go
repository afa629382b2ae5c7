// Package gputest is what the GPU tests share: the folder of the Vulkan
// backend module they run, on Mesa's lavapipe (a Vulkan driver on the CPU)
// where there is no GPU.
package gputest

import (
	"os"
	"path/filepath"
	"testing"
)

// VulkanDir returns the folder of the Vulkan module (make vulkan), from
// NERSTREAM_TEST_BACKENDS_DIR. Without one the test skips, unless
// NERSTREAM_REQUIRE_VULKAN=1 (CI), when it fails. It makes ggml-vulkan show
// CPU-type devices such as lavapipe (GGML_VK_VISIBLE_DEVICES=0), which it
// hides by default; the variable is read once, when the module loads.
func VulkanDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NERSTREAM_TEST_BACKENDS_DIR")
	if _, err := os.Stat(filepath.Join(dir, "libggml-vulkan.so")); dir == "" || err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_VULKAN") == "1" {
			t.Fatalf("NERSTREAM_REQUIRE_VULKAN is set, but NERSTREAM_TEST_BACKENDS_DIR (%q) holds no libggml-vulkan.so (make vulkan builds it)", dir)
		}
		t.Skip("no Vulkan module: set NERSTREAM_TEST_BACKENDS_DIR to the folder of `make vulkan`")
	}
	if os.Getenv("GGML_VK_VISIBLE_DEVICES") == "" {
		os.Setenv("GGML_VK_VISIBLE_DEVICES", "0")
	}
	return dir
}
