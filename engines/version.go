package engines

import (
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/nerstream/nerstream/model/llama"
)

// buildVersion is set at link time by make build (-ldflags -X, from git
// describe); empty in other builds, which take the module version.
var buildVersion string

// Build describes this binary and what its engine can use: what
// `nerstream version` prints.
type Build struct {
	// Version is nerstream's module version: a release tag when built
	// with go install …@vX, else what the Go command derived from the
	// checkout.
	Version string `json:"version"`
	// Revision is the commit built, with "+dirty" for uncommitted
	// changes; empty where the build did not record it.
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go"`
	// LlamaCpp is the llama.cpp commit, and GGMLSource the module that
	// vendors it.
	LlamaCpp   string `json:"llama_cpp"`
	GGMLSource string `json:"ggml_source"`
	// SIMD compares the CPU with the build of ggml's CPU backend.
	SIMD llama.SIMD `json:"simd"`
	// BackendsDir is the folder GPU backend modules were looked for in,
	// Backends what it held, and Devices the devices they offer (the CPU
	// included).
	BackendsDir string         `json:"backends_dir,omitempty"`
	Backends    []BuildBackend `json:"gpu_backends"`
	Devices     []llama.Device `json:"devices"`
}

// BuildBackend is one GPU backend module found.
type BuildBackend struct {
	llama.Backend
	Error string `json:"error,omitempty"`
}

// Describe reports the build, loading the GPU backend modules of dir (""
// for [DefaultBackendsDir]) to list them and their devices. A module that
// does not load is reported, not an error; an explicit dir that holds none
// is.
func Describe(dir string, log *slog.Logger) (Build, error) {
	b := Build{Version: "(unknown)", GoVersion: runtime.Version(), LlamaCpp: llama.LlamaCppCommit, SIMD: llama.DetectSIMD(), Backends: []BuildBackend{}}
	if info, ok := debug.ReadBuildInfo(); ok {
		b.Version = info.Main.Version
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Revision != "" {
			b.Revision += "+dirty"
		}
		if buildVersion != "" {
			b.Version = buildVersion
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/ollama/ollama" {
				b.GGMLSource = d.Path + " " + d.Version
			}
		}
	}
	b.BackendsDir = dir
	if dir == "" {
		b.BackendsDir = DefaultBackendsDir()
	}
	bs, err := LoadBackends(dir, log)
	if err != nil {
		return b, err
	}
	for _, be := range bs {
		e := BuildBackend{Backend: be}
		if be.Err != nil {
			e.Error = be.Err.Error()
		}
		b.Backends = append(b.Backends, e)
	}
	b.Devices = llama.Devices()
	return b, nil
}
