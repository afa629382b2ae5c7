package llama

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadBackendsRefuses: what is not a ggml backend module for this
// machine never reaches dlopen, and a folder without one is an error; the
// CPU stays the one device.
func TestLoadBackendsRefuses(t *testing.T) {
	if _, err := LoadBackends(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing folder loaded")
	}
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "libggml-base.so.0"), []byte("the modules' dependency, not a backend"), 0o644)
	os.WriteFile(filepath.Join(empty, "README"), []byte("not a module"), 0o644)
	if _, err := LoadBackends(empty); !errors.Is(err, ErrNoBackends) {
		t.Errorf("a folder without modules: %v", err)
	}

	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("libggml-text.so", []byte("#!/bin/sh\necho not a library\n"))
	write("libggml-empty.so", nil)
	lib, err := os.ReadFile("/lib/x86_64-linux-gnu/libm.so.6")
	if err != nil {
		lib, _ = os.ReadFile(os.Args[0]) // another ELF file, still no backend
	}
	write("libggml-other.so", lib)
	write("libggml-truncated.so", lib[:min(len(lib), 4096)])
	os.Mkdir(filepath.Join(dir, "libggml-folder.so"), 0o755)
	before := len(Devices())
	bs, err := LoadBackends(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 5 {
		t.Fatalf("%d modules considered, want 5: %+v", len(bs), bs)
	}
	for _, b := range bs {
		if b.Err == nil || b.Name != "" || strings.Contains(b.Err.Error(), "\n") {
			t.Errorf("%s: loaded (%q) or a bad error: %v", filepath.Base(b.Path), b.Name, b.Err)
		}
	}
	if n := len(Devices()); n != before {
		t.Errorf("%d devices after refusing every module, %d before", n, before)
	}
}
