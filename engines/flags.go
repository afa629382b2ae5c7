package engines

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
)

// Flags are the model flags of every command that runs a model, declared
// once. Register them on a command's flag set, parse, then call
// [Flags.Open] (or [Flags.Spec] and [Flags.Options]).
type Flags struct {
	// Model is the spec (--model); see the package doc. With --engine
	// openai it is the served model's name instead, as earlier versions
	// took it, unless ServedModel is given.
	Model string
	// Engine is "llama" (any spec) or "openai" (--endpoint URLs, the
	// same as --model openai:URL,…).
	Engine    string
	Endpoints []string
	// Dialect, APIKeyFile and Timeout configure the openai engine.
	Dialect    string
	APIKeyFile string
	Timeout    time.Duration
	// ServedModel is the served model's name that the openai engine sends
	// (--served-model); Tokenizer is a GGUF model whose vocabulary counts
	// its tokens here (--tokenizer).
	ServedModel string
	Tokenizer   string
	// Threads and GPULayers configure the in-process engine; BackendsDir
	// and Devices where it runs.
	Threads, GPULayers int
	BackendsDir        string
	Devices            string // comma-separated
	// MaxNewTokens bounds each answer.
	MaxNewTokens int
}

// Register declares the flags on fs; modelHelp describes --model for the
// command. --model and --max-new-tokens default to f's values, --engine to
// llama, --request-timeout to the openai engine's 60s and --gpu-layers to
// model.gpu_layers' default, -1 (all). A flag that fs defines already is the command's own and is
// left alone (nerstream serve's --request-timeout bounds a whole request).
func (f *Flags) Register(fs *flag.FlagSet, modelHelp string) {
	define := func(name string, def func()) {
		if fs.Lookup(name) == nil {
			def()
		}
	}
	define("model", func() {
		fs.StringVar(&f.Model, "model", f.Model, modelHelp+": a GGUF file, synth:PRESET, hf://OWNER/REPO/FILE.gguf, https://…/FILE.gguf or openai:URL[,URL…]")
	})
	define("engine", func() {
		fs.StringVar(&f.Engine, "engine", cmp.Or(f.Engine, "llama"), "llama (any --model) or openai (servers at --endpoint; --model then names the served model)")
	})
	define("endpoint", func() {
		fs.Func("endpoint", "an OpenAI-compatible server's base URL, like http://gpu-1:8000/v1; repeatable, for a pool (the same as --model openai:URL)", func(s string) error {
			f.Endpoints = append(f.Endpoints, s)
			return nil
		})
	})
	define("dialect", func() {
		fs.StringVar(&f.Dialect, "dialect", f.Dialect, "openai engine: the servers' kind: llama-server (and nerstream serve), vllm, ollama, openai (plain OpenAI, one string prompt per request), or empty (plain OpenAI, a list of prompts per document)")
	})
	define("served-model", func() {
		fs.StringVar(&f.ServedModel, "served-model", f.ServedModel, "openai engine: the served model's name, sent as \"model\" (vLLM's --served-model-name, Ollama's model; llama-server takes any)")
	})
	define("tokenizer", func() {
		fs.StringVar(&f.Tokenizer, "tokenizer", f.Tokenizer, "openai engine: a GGUF model (file or hf:// reference) whose vocabulary counts tokens here, loaded without its weights: for servers without /tokenize (Ollama), and to check that the server got each prompt whole")
	})
	define("api-key-file", func() {
		fs.StringVar(&f.APIKeyFile, "api-key-file", f.APIKeyFile, "openai engine: a file holding the API key (else $OPENAI_API_KEY)")
	})
	define("request-timeout", func() {
		fs.DurationVar(&f.Timeout, "request-timeout", cmp.Or(f.Timeout, openai.DefaultOptions().Timeout), "openai engine: the longest one request may take before it is retried")
	})
	define("threads", func() {
		fs.IntVar(&f.Threads, "threads", f.Threads, "CPU threads of the in-process engine (default 0: before each decode, the CPUs nothing else is running on)")
	})
	define("gpu-layers", func() {
		fs.IntVar(&f.GPULayers, "gpu-layers", config.Default().Model.GPULayers, "layers to offload to a GPU: -1 all, 0 none")
	})
	define("backends-dir", func() {
		fs.StringVar(&f.BackendsDir, "backends-dir", f.BackendsDir, "the folder of the GPU backend modules (make vulkan, make cuda); default: $NERSTREAM_HOME/backends or ~/.local/share/nerstream/backends, when it exists")
	})
	define("devices", func() {
		fs.StringVar(&f.Devices, "devices", cmp.Or(f.Devices, config.DevicesAuto), "where the in-process engine runs, comma-separated, one worker each: auto (every GPU, else the CPU), CPU, Vulkan0, CUDA0, … (nerstream devices lists them)")
	})
	define("max-new-tokens", func() {
		fs.IntVar(&f.MaxNewTokens, "max-new-tokens", f.MaxNewTokens, "most tokens per answer")
	})
}

// Spec is the spec that the flags name.
func (f *Flags) Spec() (string, error) {
	switch f.Engine {
	case "", "llama":
		if len(f.Endpoints) > 0 {
			return "", errors.New("--endpoint needs --engine openai (or give --model openai:URL)")
		}
		return f.Model, nil
	case "openai":
		if len(f.Endpoints) == 0 {
			return "", errors.New("--engine openai needs at least one --endpoint")
		}
		return OpenAIPrefix + strings.Join(f.Endpoints, ","), nil
	}
	return "", fmt.Errorf("--engine %q is not one of llama, openai", f.Engine)
}

// Options are the options that the flags set.
func (f *Flags) Options() (Options, error) {
	if f.Timeout < 0 || f.MaxNewTokens < 0 || f.Threads < 0 || f.GPULayers < -1 {
		return Options{}, errors.New("--request-timeout, --max-new-tokens and --threads must be >= 0, and --gpu-layers -1 (all) or more")
	}
	o := Options{
		Llama:       llama.Options{Threads: f.Threads, GPULayers: f.GPULayers},
		BackendsDir: f.BackendsDir,
		Devices:     splitDevices(f.Devices),
		OpenAI: openai.Options{
			Dialect:    openai.Dialect(f.Dialect),
			APIKeyFile: f.APIKeyFile,
			Timeout:    f.Timeout,
			Model:      f.ServedModel,
			Tokenizer:  f.Tokenizer,
		},
	}
	if f.APIKeyFile == "" {
		o.OpenAI.APIKey = os.Getenv("OPENAI_API_KEY")
	}
	if f.Engine == "openai" && f.ServedModel == "" {
		o.OpenAI.Model = f.Model
	}
	if f.Engine == "openai" && f.ServedModel != "" && f.Model != "" && f.Model != f.ServedModel {
		return Options{}, fmt.Errorf("--model %q and --served-model %q name two served models: give one", f.Model, f.ServedModel)
	}
	return o, nil
}

// splitDevices reads --devices: names, comma-separated.
func splitDevices(s string) []string {
	var out []string
	for d := range strings.SplitSeq(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}
