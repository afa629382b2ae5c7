package llama

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// DeviceType is the kind of a device.
type DeviceType string

// The device types, as ggml tells them apart.
const (
	DeviceCPU     DeviceType = "CPU"
	DeviceGPU     DeviceType = "GPU"
	DeviceIGPU    DeviceType = "iGPU" // integrated: the host's memory
	DeviceAccel   DeviceType = "accelerator"
	DeviceUnknown DeviceType = "unknown"
)

// Device is a device that a model can run on: the CPU, or one of a loaded
// GPU backend's devices.
type Device struct {
	// Name is ggml's name of the device, what --devices takes: "CPU",
	// "Vulkan0", "CUDA0", ….
	Name string `json:"name"`
	// Description is the device's own name ("NVIDIA H200", "llvmpipe
	// (LLVM 15.0.6, 256 bits)").
	Description string `json:"description"`
	// Backend is the backend that offers it: "CPU", "Vulkan", "CUDA".
	Backend string     `json:"backend"`
	Type    DeviceType `json:"type"`
	// FreeBytes and TotalBytes are its memory, as the backend reports it
	// now.
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
}

// Devices returns every device: the CPU, and the devices of the backends
// that [LoadBackends] loaded. A GPU backend lists only the devices its
// driver shows (ggml-vulkan hides CPU-type Vulkan devices such as Mesa's
// lavapipe unless GGML_VK_VISIBLE_DEVICES names them).
func Devices() []Device {
	var out []Device
	for _, d := range cDevices() {
		free, total := d.memory()
		out = append(out, Device{Name: d.name(), Description: d.description(), Backend: d.backend(), Type: d.kind(), FreeBytes: free, TotalBytes: total})
	}
	return out
}

// Backend is a GPU backend module that [LoadBackends] found.
type Backend struct {
	// Path is the module's file.
	Path string `json:"path"`
	// Name is the backend it registered ("Vulkan", "CUDA"); empty when it
	// failed.
	Name string `json:"name,omitempty"`
	// Err says why it was not loaded; nil when it was.
	Err error `json:"-"`
}

// ErrNoBackends is the error of LoadBackends for a folder that holds no
// backend module.
var ErrNoBackends = errors.New("llama: no GPU backend module")

// backends remembers what LoadBackends loaded: ggml's registry is
// process-wide and a module is loaded once.
var backends struct {
	mu     sync.Mutex
	loaded map[string]Backend // by the module's absolute path
}

// LoadBackends loads every GPU backend module in dir (the files
// libggml-NAME.so, built from the pinned sources with GGML_BACKEND_DL, as
// `make vulkan` and `make cuda` do), so that their devices can run models.
// The CPU backend is compiled in, and libggml-base.so (the modules'
// dependency) and CPU variants in dir are not loaded.
//
// Each module is checked in Go first (a regular file, a shared object for
// this machine's architecture, exporting ggml_backend_init), since what
// dlopen runs cannot be taken back. A module that fails to load is
// reported in its Backend's Err and does not stop the others; the error
// return is for a folder that cannot be read, or that holds no module
// ([ErrNoBackends]). Loading is process-wide and happens once per module:
// a second call returns what the first did.
func LoadBackends(dir string) ([]Backend, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("llama: backends: %w", err)
	}
	var out []Backend
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "libggml-") || !strings.HasSuffix(name, ".so") ||
			strings.HasPrefix(name, "libggml-base") || strings.HasPrefix(name, "libggml-cpu") {
			continue
		}
		path, err := filepath.Abs(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("llama: backends: %w", err)
		}
		out = append(out, loadOnce(path))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s (make vulkan or make cuda builds one)", ErrNoBackends, dir)
	}
	return out, nil
}

func loadOnce(path string) Backend {
	backends.mu.Lock()
	defer backends.mu.Unlock()
	if b, ok := backends.loaded[path]; ok {
		return b
	}
	b := Backend{Path: path}
	if err := checkModule(path); err != nil {
		b.Err = err
	} else if b.Name, err = loadBackend(path); err != nil {
		b.Err = fmt.Errorf("llama: backend %s: %w", filepath.Base(path), err)
	}
	if backends.loaded == nil {
		backends.loaded = map[string]Backend{}
	}
	backends.loaded[path] = b
	return b
}

// elfMachines maps GOARCH to the ELF machine of its shared objects.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkModule refuses a file that cannot be a ggml backend module for this
// process before dlopen sees it.
func checkModule(path string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("llama: backend %s: %s", filepath.Base(path), fmt.Sprintf(format, args...))
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("llama: backend: %w", err)
	}
	if !st.Mode().IsRegular() {
		return bad("not a regular file")
	}
	f, err := elf.Open(path)
	if err != nil {
		return bad("not a shared object (%v)", err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		return bad("not a shared object (ELF type %v)", f.Type)
	}
	if want, ok := elfMachines[runtime.GOARCH]; !ok || f.Machine != want || f.Class != elf.ELFCLASS64 {
		return bad("built for %v, not for this %s machine", f.Machine, runtime.GOARCH)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return bad("no dynamic symbols (%v)", err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool {
		return s.Name == "ggml_backend_init" && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF
	}) {
		return bad("exports no ggml_backend_init: not a ggml backend module")
	}
	return nil
}
