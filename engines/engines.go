// Package engines opens a UniNER model from a spec: the one way in, as
// sql.Open is database/sql's. Every command and the stream open their
// model here, so each accepts the same specs:
//
//	PATH.gguf                       a GGUF file, run in this process by llama.cpp
//	NAME.gguf                       a file name alone: the working folder's file, else the model cache's (see hub.Find)
//	synth:PRESET                    a synthetic LLaMA model with random weights (tiny, small, 7b), for tests and benchmarks
//	hf://OWNER/REPO/FILE.gguf[@REV] a Hugging Face file, pulled into the model cache on first use, then run in this process
//	https://HOST/PATH/FILE.gguf     any other download, likewise
//	openai:URL[,URL…]               OpenAI-compatible completions servers (vLLM, llama-server, nerstream serve): a pool of endpoints
//
// [Open] returns a [Model]: the [model.Engine], the name that annotations
// carry, and its Close. A spec that cannot name a model (a missing file, a
// folder, a file that is not GGUF, a GGUF file that the gate of package
// gguf refuses because llama.cpp would abort on it or refuse it, an
// unknown preset, a malformed reference or URL) is an error that wraps
// [ErrSpec], so that a command can tell bad input (exit 2) from a failure
// to run it.
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
	"slices"
	"strings"
	"time"

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
	// "synthetic-PRESET (…)", or the served model's name: OpenAI.Model,
	// else the first model that the servers list at /v1/models when one
	// answers at start, else "openai".
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
	// ident is the model's identity when it is not a file's digest.
	ident string
}

// Identity names the model for the result cache's keys (model.cache): a
// GGUF file's SHA-256 (the pull manifest's, or hashed once now), the
// synthetic preset, or the served model with its endpoints (no key).
func (m *Model) Identity() (string, error) {
	if m.Path != "" {
		sum, err := hub.FileSHA256(m.Path)
		if err != nil {
			return "", fmt.Errorf("model identity: %w", err)
		}
		return "sha256:" + sum, nil
	}
	return cmp.Or(m.ident, "name:"+m.Name), nil
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
		return openRemote(ctx, spec, opts)
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
	case hub.IsBareName(spec):
		// A file name alone: the working folder's file, else the cache's.
		local, err := findBare(spec, opts.Pull)
		if err != nil {
			return nil, err
		}
		if local != spec {
			if opts.Logger != nil {
				opts.Logger.Info("model: in the cache", "name", spec, "path", local)
			}
			opts.Name = cmp.Or(opts.Name, spec)
			spec = local
		}
	}
	status("loading " + spec)
	return openFile(spec, opts)
}

// Check says whether spec names a model that [Open] could open, as far
// as it can tell without loading a model, pulling one or connecting to a
// server: the spec's form, a file's existence and the gate of package
// gguf (which reads the header, not the weights), a preset's name, a
// reference's form, the openai engine's endpoints and options (and its
// tokenizer, the same way). An error wraps [ErrSpec], as Open's would. A
// command calls it before it starts anything that a bad spec would only
// have to stop again: nerstream serve listens only after it.
func Check(spec string, opts Options) error {
	switch {
	case strings.TrimSpace(spec) == "":
		return fmt.Errorf("%w: no model given", ErrSpec)
	case strings.HasPrefix(spec, OpenAIPrefix):
		o, err := remoteOptions(spec, opts.OpenAI)
		if err != nil {
			return err
		}
		if err := openai.Check(o); err != nil {
			return fmt.Errorf("%w: %w", ErrSpec, err)
		}
		if o.Tokenizer != "" && o.LocalTokenizer == nil {
			if strings.HasPrefix(o.Tokenizer, OpenAIPrefix) {
				return fmt.Errorf("%w: the tokenizer %q is not a GGUF model", ErrSpec, o.Tokenizer)
			}
			if err := Check(o.Tokenizer, Options{Llama: llama.Options{VocabOnly: true}}); err != nil {
				return fmt.Errorf("the tokenizer: %w", err)
			}
		}
		return nil
	case strings.HasPrefix(spec, SynthPrefix):
		return checkPreset(strings.TrimPrefix(spec, SynthPrefix))
	case hub.IsRef(spec):
		if _, err := hub.ParseRef(spec); err != nil {
			return fmt.Errorf("%w: %w", ErrSpec, err)
		}
		return nil
	case hub.IsBareName(spec):
		local, err := findBare(spec, opts.Pull)
		if err != nil {
			return err
		}
		spec = local
	}
	return checkFile(spec, opts.Llama.VocabOnly)
}

// findBare is the model a bare file name means (see [hub.Find]); a name
// that the cache lacks, or holds several times or damaged, is [ErrSpec].
func findBare(name string, pull hub.Options) (string, error) {
	local, err := hub.Find(name, pull)
	if errors.Is(err, hub.ErrNotCached) || errors.Is(err, hub.ErrAmbiguous) || errors.Is(err, hub.ErrCorrupt) {
		return "", fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return local, err
}

// openFile loads a GGUF file in this process, after checking in Go that it
// is one that llama.cpp loads safely (it aborts the process on some
// malformed files): one worker on each device of opts.Devices, each with
// its own context and the whole model, behind one engine.
func openFile(path string, opts Options) (*Model, error) {
	if err := checkFile(path, opts.Llama.VocabOnly); err != nil {
		return nil, err
	}
	lo := opts.Llama
	lo.Logger = cmp.Or(lo.Logger, opts.Logger)
	name := cmp.Or(opts.Name, filepath.Base(path))
	if lo.VocabOnly || lo.Device != "" {
		eng, err := llama.Load(path, lo)
		if err != nil {
			return nil, specError(err)
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
			return nil, specError(fmt.Errorf("on %s: %w", d.Name, err))
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

// checkFile refuses, as ErrSpec, a path that is not a GGUF file that
// llama.cpp loads safely: a folder, a file that is not GGUF, or one that
// the gate (gguf.File.CheckLlama) refuses, as a model or, for a
// vocabulary-only load, as a vocabulary. llama.Load checks again, for
// those who call it directly.
func checkFile(path string, vocabOnly bool) error {
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
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != gguf.Magic {
		return fmt.Errorf("%w: %s is not a GGUF file", ErrSpec, path)
	}
	mode := gguf.LoadModel
	if vocabOnly {
		mode = gguf.LoadVocab
	}
	if _, err := gguf.OpenLlama(path, mode); err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return nil
}

// specError makes a load that the gate refused (the file changed since
// checkFile, say), or a vocabulary that cannot write the prompt, an
// ErrSpec, as checkFile's refusals are.
func specError(err error) error {
	if errors.Is(err, gguf.ErrFormat) || errors.Is(err, gguf.ErrModel) || errors.Is(err, llama.ErrVocab) {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return err
}

// openSynth writes a synthetic model of the preset (F16, seed 1) to a
// temporary file and loads it; the file is gone once llama.cpp has read it.
func openSynth(preset string, opts Options) (*Model, error) {
	if err := checkPreset(preset); err != nil {
		return nil, err
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
	m.ident = "synth:" + preset + "/f16/seed=1"
	return m, nil
}

// checkPreset refuses, as ErrSpec, a synthetic model's preset that
// package gguf does not know.
func checkPreset(preset string) error {
	if _, err := gguf.PresetShapes(preset); err != nil {
		return fmt.Errorf("%w: %s%s: %w", ErrSpec, SynthPrefix, preset, err)
	}
	return nil
}

// openRemote opens the engine of an openai: spec, with the local tokenizer
// that opts.OpenAI.Tokenizer names, and probes its servers.
func openRemote(ctx context.Context, spec string, opts Options) (*Model, error) {
	o, err := remoteOptions(spec, opts.OpenAI)
	if err != nil {
		return nil, err
	}
	if opts.WrapTransport != nil && o.HTTPClient == nil {
		per := cmp.Or(o.MaxInFlightPerEndpoint, openai.DefaultOptions().MaxInFlightPerEndpoint)
		o.HTTPClient = &http.Client{Transport: opts.WrapTransport(openai.NewTransport(per))}
	}
	o.Logger = cmp.Or(o.Logger, opts.Logger)
	closeTokenizer := func() error { return nil }
	if o.Tokenizer != "" && o.LocalTokenizer == nil {
		tok, err := OpenTokenizer(ctx, o.Tokenizer, opts)
		if err != nil {
			return nil, err
		}
		o.LocalTokenizer, closeTokenizer = tok.Local, tok.Close
	}
	eng, err := openai.New(o)
	if err != nil {
		closeTokenizer()
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if opts.Logger != nil {
		opts.Logger.Info("model: remote", "endpoints", len(o.Endpoints), "dialect", cmp.Or(string(o.Dialect), "generic"),
			"prompts", map[bool]string{true: "a list per document", false: "one per request"}[o.Dialect.ListPrompts()],
			"token_count", tokenCounting(eng.TokenCounting(), o.Tokenizer), "prompt_tokens_checked", eng.ChecksPromptTokens())
	}
	// One tiny completion first: a server that refuses it (a wrong model
	// name or key, a request shape it does not take) would refuse every
	// document, so the command fails now, in one line. Servers that are
	// not up yet are no error: the stream holds until one answers.
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	perr := eng.Probe(pctx)
	if errors.Is(perr, openai.ErrServerRefuses) {
		eng.Close()
		closeTokenizer()
		return nil, perr
	} else if perr != nil && opts.Logger != nil {
		opts.Logger.Warn("model: no server answers yet; documents wait until one does", "err", perr)
	}
	// Annotations name the served model: the one the requests name, else
	// the one the servers list first (GET /v1/models), else "openai".
	name := cmp.Or(opts.Name, o.Model)
	if name == "" && perr == nil {
		served, err := eng.ServedModel(pctx)
		if err != nil && opts.Logger != nil {
			opts.Logger.Warn("model: the servers do not say their model's name; annotations say \"openai\" (give --served-model)", "err", err)
		}
		name = served
	}
	return &Model{Engine: eng, Name: cmp.Or(name, "openai"), close: func() error {
		return errors.Join(eng.Close(), closeTokenizer())
	}, ident: "openai:" + name + "@" + strings.Join(o.Endpoints, ",")}, nil
}

// remoteOptions are the openai engine's options for an openai: spec: o,
// with the spec's URLs added to its endpoints.
func remoteOptions(spec string, o openai.Options) (openai.Options, error) {
	o.Endpoints = slices.Clone(o.Endpoints)
	for _, u := range strings.Split(strings.TrimPrefix(spec, OpenAIPrefix), ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.Endpoints = append(o.Endpoints, u)
		}
	}
	if len(o.Endpoints) == 0 {
		return o, fmt.Errorf("%w: %s names no endpoint (openai:http://HOST:PORT/v1)", ErrSpec, OpenAIPrefix)
	}
	return o, nil
}

// tokenCounting says in words how an openai engine counts tokens.
func tokenCounting(t openai.Tokenize, tokenizer string) string {
	switch t {
	case openai.TokenizeLocal:
		return "local tokenizer " + tokenizer
	case openai.TokenizeVLLM, openai.TokenizeLlamaServer:
		return "the server's /tokenize (" + string(t) + ")"
	}
	return "estimate: bytes+1, an upper bound (windows smaller than they need be; give a tokenizer for exact counts)"
}

// OpenTokenizer loads the vocabulary of the GGUF model that spec names (a
// file, a reference pulled into the model cache, or synth:PRESET), without
// its weights:
// the openai engine's local tokenizer ([openai.Options.Tokenizer]). Only
// opts.Pull, opts.Status and opts.Logger apply. Close the model when done.
func OpenTokenizer(ctx context.Context, spec string, opts Options) (*Model, error) {
	if strings.HasPrefix(spec, OpenAIPrefix) {
		return nil, fmt.Errorf("%w: the tokenizer %q is not a GGUF model", ErrSpec, spec)
	}
	m, err := Open(ctx, spec, Options{Llama: llama.Options{VocabOnly: true}, Pull: opts.Pull, Status: opts.Status, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("the tokenizer: %w", err)
	}
	return m, nil
}

// probeTimeout bounds the start-up probe of a remote model: a loaded
// server answers one token in well under a second.
const probeTimeout = 30 * time.Second

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
