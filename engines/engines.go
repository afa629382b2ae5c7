// Package engines opens a UniNER model from a spec: the one way in, as
// sql.Open is database/sql's. Every command and the stream open their
// model here, so each accepts the same specs:
//
//	PATH.gguf                       a GGUF file, run in this process by llama.cpp
//	synth:PRESET                    a synthetic LLaMA model with random weights (tiny, small, 7b), for tests and benchmarks
//	hf://OWNER/REPO/FILE.gguf[@REV] a Hugging Face file, pulled into the model cache on first use, then run in this process
//	https://HOST/PATH/FILE.gguf     any other download, likewise
//	openai:URL[,URL…]               OpenAI-compatible completions servers (vLLM, llama-server, nerstream serve): a pool of endpoints
//
// [Open] returns a [Model]: the [model.Engine], the name that annotations
// carry, and its Close. A spec that cannot name a model (a missing file, a
// folder, a file that is not GGUF, an unknown preset, a malformed
// reference or URL) is an error that wraps [ErrSpec], so that a command can
// tell bad input (exit 2) from a failure to run it.
//
// [Flags] are the model flags that every command registers, and
// [FromConfig] maps the configuration's model section to a spec and
// options; neither adds anything that Open does not take.
package engines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
)

// ErrSpec is wrapped by every error that says the spec, or the settings
// that go with it (its devices, the backends' folder), name no model it
// could open: the input is at fault, not the engine.
var ErrSpec = errors.New("bad model spec")

// The prefixes of the specs that are not files.
const (
	SynthPrefix  = "synth:"
	OpenAIPrefix = "openai:"
)

// Options configure [Open]. Zero values take the defaults.
type Options struct {
	// Llama configures the in-process engine. Its zero value offloads no
	// layer to a GPU; [FromConfig] and [Flags] default to all of them.
	// Its Device is set for each of Devices.
	Llama llama.Options
	// BackendsDir is the folder of GPU backend modules, loaded before the
	// first in-process model (see [LoadBackends]). Default: "", the
	// [DefaultBackendsDir] when it exists.
	BackendsDir string
	// Devices are where the in-process engine runs, one worker each (see
	// [ResolveDevices]). Default: nil, "auto".
	Devices []string
	// OpenAI configures the engine of an openai: spec; the spec's URLs
	// are added to its Endpoints.
	OpenAI openai.Options
	// Pull is how hf:// and https:// references are pulled into the
	// model cache (its folder, checksum, progress).
	Pull hub.Options
	// Name is what annotations call the model. Default: the file's name,
	// "synthetic-PRESET (…)", or the served model's name (else "openai").
	Name string
	// Status hears each step before it starts ("pulling REF", "loading
	// PATH"), for readiness. Default: none.
	Status func(step string)
	// WrapTransport wraps the openai engine's HTTP transport, to trace
	// its requests. Default: none.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives what the engines log: llama.cpp's lines at debug
	// (see llama.Options.Logger), and where a model came from. Default:
	// none, and llama.cpp's lines go to slog.Default().
	Logger *slog.Logger
}

// Model is an opened model.
type Model struct {
	// Engine answers the prompts.
	Engine model.Engine
	// Name is what annotations call the model.
	Name string
	// Path is the local GGUF file the in-process engine runs; "" for a
	// synthetic or remote model.
	Path string
	// Local is the in-process engine when there is one worker, nil for a
	// remote model or several devices: benchmarks use what only it has.
	Local *llama.Engine
	// Workers are the in-process engines, one per device; nil for a
	// remote model.
	Workers []Worker

	close func() error
}

// Close releases the engine. It is safe to call more than once.
func (m *Model) Close() error {
	if m == nil || m.close == nil {
		return nil
	}
	c := m.close
	m.close = nil
	return c()
}

// Open opens the model that spec names (see the package doc).
func Open(ctx context.Context, spec string, opts Options) (*Model, error) {
	status := opts.Status
	if status == nil {
		status = func(string) {}
	}
	switch {
	case strings.TrimSpace(spec) == "":
		return nil, fmt.Errorf("%w: no model given", ErrSpec)
	case strings.HasPrefix(spec, OpenAIPrefix):
		return openRemote(spec, opts)
	case strings.HasPrefix(spec, SynthPrefix):
		status("loading " + spec)
		return openSynth(strings.TrimPrefix(spec, SynthPrefix), opts)
	case hub.IsRef(spec):
		ref, err := hub.ParseRef(spec)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSpec, err)
		}
		// A reference may be presigned (?X-Amz-Signature=…): readiness
		// and the log get it redacted.
		status("pulling " + ref.Redacted())
		local, err := hub.Resolve(ctx, spec, opts.Pull)
		if err != nil {
			if errors.Is(err, hub.ErrBadRef) || errors.Is(err, hub.ErrBadDigest) || errors.Is(err, hub.ErrBadEndpoint) {
				return nil, fmt.Errorf("%w: %w", ErrSpec, err)
			}
			return nil, err
		}
		if opts.Logger != nil {
			opts.Logger.Info("model: in the cache", "ref", ref.Redacted(), "path", local)
		}
		// The cache's file name may be escaped (sub%2Fm.gguf): the model is
		// named after the source's file.
		opts.Name = cmp.Or(opts.Name, ref.FileName())
		spec = local
	}
	status("loading " + spec)
	return openFile(spec, opts)
}

// openFile loads a GGUF file in this process, after checking in Go that it
// is one (llama.cpp aborts the process on some malformed files): one
// worker on each device of opts.Devices, each with its own context and the
// whole model, behind one engine.
func openFile(path string, opts Options) (*Model, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	lo := opts.Llama
	lo.Logger = cmp.Or(lo.Logger, opts.Logger)
	name := cmp.Or(opts.Name, filepath.Base(path))
	if lo.VocabOnly || lo.Device != "" {
		eng, err := llama.Load(path, lo)
		if err != nil {
			return nil, err
		}
		return &Model{Engine: eng, Name: name, Path: path, Local: eng, Workers: []Worker{{lo.Device, eng}}, close: eng.Close}, nil
	}
	if _, err := LoadBackends(opts.BackendsDir, opts.Logger); err != nil {
		return nil, fmt.Errorf("%w: model.backends_dir: %w", ErrSpec, err)
	}
	devices, err := ResolveDevices(opts.Devices)
	if err != nil {
		return nil, err
	}
	p := &pool{log: opts.Logger}
	m := &Model{Name: name, Path: path}
	for _, d := range devices {
		cells := cmp.Or(lo.Cells, llama.DefaultCells)
		if err := checkRoom(path, d, cells); err != nil {
			p.close()
			return nil, err
		}
		wo := lo
		wo.Device = d.Name
		eng, err := llama.Load(path, wo)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("on %s: %w", d.Name, err)
		}
		p.workers = append(p.workers, &poolWorker{device: d.Name, eng: eng})
		m.Workers = append(m.Workers, Worker{d.Name, eng})
		if opts.Logger != nil {
			opts.Logger.Info("model: loaded", "device", d.Name, "description", d.Description, "path", path)
		}
	}
	if len(m.Workers) == 1 {
		eng := m.Workers[0].Engine
		m.Engine, m.Local, m.close = eng, eng, eng.Close
		return m, nil
	}
	m.Engine, m.close = p, p.close
	return m, nil
}

// checkFile refuses a path that is not a readable GGUF file, as ErrSpec.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%w: %s is a folder, not a GGUF file", ErrSpec, path)
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != "GGUF" {
		return fmt.Errorf("%w: %s is not a GGUF file", ErrSpec, path)
	}
	return nil
}

// openSynth writes a synthetic model of the preset (F16, seed 1) to a
// temporary file and loads it; the file is gone once llama.cpp has read it.
func openSynth(preset string, opts Options) (*Model, error) {
	if _, err := gguf.PresetShapes(preset); err != nil {
		return nil, fmt.Errorf("%w: %s%s: %w", ErrSpec, SynthPrefix, preset, err)
	}
	dir, err := os.MkdirTemp("", "nerstream-synth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // llama.cpp has read the file once loaded
	file := filepath.Join(dir, preset+".gguf")
	if err := gguf.SynthFile(file, gguf.SynthOptions{Preset: preset, Type: gguf.TypeF16, Seed: 1}); err != nil {
		return nil, fmt.Errorf("writing the synthetic model: %w", err)
	}
	opts.Name = cmp.Or(opts.Name, "synthetic-"+preset+" (random weights: entities are meaningless)")
	m, err := openFile(file, opts)
	if err != nil {
		return nil, err
	}
	m.Path = ""
	return m, nil
}

// openRemote opens the engine of an openai: spec.
func openRemote(spec string, opts Options) (*Model, error) {
	o := opts.OpenAI
	for _, u := range strings.Split(strings.TrimPrefix(spec, OpenAIPrefix), ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.Endpoints = append(o.Endpoints, u)
		}
	}
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: %s names no endpoint (openai:http://HOST:PORT/v1)", ErrSpec, OpenAIPrefix)
	}
	if opts.WrapTransport != nil && o.HTTPClient == nil {
		per := cmp.Or(o.MaxInFlightPerEndpoint, openai.DefaultOptions().MaxInFlightPerEndpoint)
		o.HTTPClient = &http.Client{Transport: opts.WrapTransport(openai.NewTransport(per))}
	}
	eng, err := openai.New(o)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if opts.Logger != nil {
		opts.Logger.Info("model: remote", "endpoints", len(o.Endpoints), "dialect", string(o.Dialect))
	}
	return &Model{Engine: eng, Name: cmp.Or(opts.Name, o.Model, "openai"), close: eng.Close}, nil
}

// FromConfig returns the spec and the options that the configuration's
// model section describes: model.path for the llama engine (pulled with
// at most model.pull_max_bytes when it is a reference), or the endpoints
// of model.openai for the openai engine, which is then named after
// model.path's file when that is set.
func FromConfig(m config.Model) (string, Options) {
	opts := Options{Llama: llama.Options{Threads: m.Threads, GPULayers: m.GPULayers}, OpenAI: m.OpenAI,
		BackendsDir: m.BackendsDir, Devices: m.Devices, Pull: hub.Options{MaxBytes: int64(m.PullMaxBytes)}}
	if m.Engine != config.EngineOpenAI {
		return m.Path, opts
	}
	if m.Path != "" {
		opts.Name = filepath.Base(m.Path)
		if r, err := hub.ParseRef(m.Path); err == nil {
			opts.Name = r.FileName() // not the query of a presigned address
		}
	}
	return OpenAIPrefix, opts
}
