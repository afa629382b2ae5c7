// Package config composes nerstream's configuration, [Config], from the
// options of its components, and loads it from YAML, the environment and
// flags. [Config.Validate] reports every problem at once, each with its
// field path.
//
// Each section is its component's own options type, declared beside the
// component with its YAML keys, its doc comments, its defaults and its
// validation, as Redpanda Connect keeps a component's spec beside it:
// kafka and input are consumers', output producers', batch and retry
// pipeline's, telemetry, http and log telemetry's; the model section is
// the recognizer's options (model) inline, the openai engine's options
// (model/openai), and the in-process engine's few settings, declared here.
// This package adds what lies between sections (shutdown_timeout against
// the group's timers, an output topic that is also an input) and what run
// requires ([Config.ValidateRun]). The README's reference is generated from
// the same structs and doc comments.
//
// # Layers
//
// [LoadFrom] starts from [Default] and lays three sources over it, each
// winning over the ones before: a YAML file, the environment, and --set
// flags. Every field has a default but kafka.brokers, input.topics, the
// output topics, model.path and model.entity_types, which run requires
// ([Config.ValidateRun]). Durations are written with a unit, 20ms or 5s
// (a bare number other than 0 is a problem: 20 could be either).
//
// Loading does not stop at the first problem: unknown keys (with a "did
// you mean" hint), values of the wrong form and bad variables or flags
// are all collected as [Problems], and the values that did decode are
// kept, so that Validate adds its own problems to the same list.
//
// # Environment
//
// Each field has a variable ([EnvVar], [Fields]): NERSTREAM_ and the
// field's path in upper case, the dots between the keys and the
// underscores within them both becoming underscores:
//
//	kafka.brokers         NERSTREAM_KAFKA_BROKERS
//	batch.max_docs        NERSTREAM_BATCH_MAX_DOCS
//	model.prompt.variant  NERSTREAM_MODEL_PROMPT_VARIANT
//
// Values take the forms of --set: scalars as YAML reads them (5s, 64,
// true, 0.5; strings verbatim), lists comma-separated
// (NERSTREAM_KAFKA_BROKERS=a:9092,b:9092, items trimmed), maps as
// k=v,k2=v2. An empty value is an empty list or map, and unsets
// telemetry.sampling_ratio; a list or map replaces the file's whole. A
// list item or map value cannot hold a comma: put those in the file.
//
// A NERSTREAM_* variable that names no field is a problem, except those
// that other parts of nerstream read (see reservedEnv): NERSTREAM_HOME,
// NERSTREAM_MODEL_DIR, NERSTREAM_WRITE_PERTURBED, the GPU build scripts'
// NERSTREAM_BUILD_CACHE, NERSTREAM_GGML_SOURCES, NERSTREAM_GPU_KIT and
// NERSTREAM_CI_CACHE, and every NERSTREAM_REQUIRE_* and NERSTREAM_TEST_*
// variable.
//
// # Secrets
//
// Fields tagged secret:"true" (kafka.sasl.password, model.openai.api_key,
// telemetry.headers) are hidden by [Config.Redacted], which config print
// uses: a non-empty value becomes "[redacted]"; a map keeps its keys.
// Every other value is shown with the user information and query values
// of the addresses in it REDACTED (model.openai.endpoints,
// telemetry.endpoint, a presigned model.path).
package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/model/openai"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/producers"
	"github.com/nerstream/nerstream/telemetry"
)

// Config is the whole configuration of a nerstream process. Each section
// is its component's own options type, with its defaults and its
// validation: [consumers.KafkaConfig], [consumers.InputConfig],
// [producers.OutputConfig], [pipeline.Batch], [pipeline.Retry],
// [telemetry.Options], [telemetry.HTTPConfig] and [telemetry.LogConfig];
// the model section holds [model.RecognizerOptions] and
// [openai.Options], and the settings of the in-process engine.
type Config struct {
	Kafka  consumers.KafkaConfig  `yaml:"kafka"`
	Input  consumers.InputConfig  `yaml:"input"`
	Output producers.OutputConfig `yaml:"output"`
	Model  Model                  `yaml:"model"`
	Batch  pipeline.Batch         `yaml:"batch"`
	Retry  pipeline.Retry         `yaml:"retry"`
	// Telemetry configures traces and metrics. What it leaves empty, the
	// standard OTEL_* environment variables fill in.
	Telemetry telemetry.Options `yaml:"telemetry"`
	// HTTP configures the health, readiness and metrics server.
	HTTP telemetry.HTTPConfig `yaml:"http"`
	// Log configures the process's logs.
	Log telemetry.LogConfig `yaml:"log"`
	// ShutdownTimeout bounds a graceful stop (SIGTERM, SIGINT) and the
	// hand-over of partitions in a rebalance: work in flight gets this
	// long to be written and committed, then it is abandoned (uncommitted,
	// so redelivered). Default: 10s. It must stay below
	// kafka.rebalance_timeout, or the group moves on without this member,
	// and below kafka.session_timeout, since a draining member sends no
	// heartbeats. A stop takes at most this plus 5s (last commits, leaving
	// the group, closing the writer).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Model configures the UniNER task and the engine that runs it. The task's
// settings (entity types, prompt, parsing, decoding limits, windows) are
// [model.RecognizerOptions]'s; the engine's are below.
type Model struct {
	// Path is the model: a GGUF file, synth:PRESET (a synthetic model
	// with random weights), or a reference (hf://OWNER/REPO/FILE.gguf,
	// https://…) pulled into the model cache on first use. A file name
	// alone (no folder) is the working folder's file, else the model
	// cache's of that name. Required by run with the llama engine.
	Path string `yaml:"path"`

	model.RecognizerOptions `yaml:",inline"`

	// PullMaxBytes is the largest model that a reference in path may
	// download, in bytes: a larger Content-Length is refused before the
	// download starts, and a body that grows past it is cut off and
	// deleted. Default: 34359738368 (32 GiB, room for any 7B model, F32
	// included; nerstream model pull --max-bytes says the same).
	PullMaxBytes int `yaml:"pull_max_bytes"`

	// Threads is the CPU threads of the engine. Default: 0, chosen before each decode: the CPUs nothing else is running on, up to GOMAXPROCS and the physical cores.
	Threads int `yaml:"threads"`
	// GPULayers is the layers offloaded to a GPU: -1 (default) all of
	// them when a GPU is present, 0 none.
	GPULayers int `yaml:"gpu_layers"`
	// BackendsDir is the folder of the GPU backend modules
	// (libggml-vulkan.so, libggml-cuda.so, which make vulkan and make cuda
	// build), all loaded at start. Default: "" ($NERSTREAM_HOME/backends,
	// else ~/.local/share/nerstream/backends, when it exists).
	BackendsDir string `yaml:"backends_dir"`
	// Devices are where the in-process engine runs: "auto" (default: every
	// GPU of the loaded backends, else the CPU) or device names ("CPU",
	// "Vulkan0", "CUDA0"; nerstream devices lists them). Each device runs
	// an engine worker of its own with the whole model, and batches go to
	// the worker with the least work queued.
	Devices []string `yaml:"devices"`
	// Engine is where the model runs: "llama" (default: in this process,
	// from model.path) or "openai" (OpenAI-compatible servers, such as
	// vLLM, llama-server or nerstream serve, from model.openai).
	Engine string `yaml:"engine"`
	// OpenAI configures the openai engine.
	OpenAI openai.Options `yaml:"openai"`
}

// DevicesAuto in [Model.Devices] takes every GPU of the loaded backends,
// else the CPU.
const DevicesAuto = "auto"

// The engines of [Model.Engine].
const (
	EngineLlama  = "llama"
	EngineOpenAI = "openai"
)

// Default returns the configuration with every default filled in, each
// taken from its component.
func Default() Config {
	return Config{
		Kafka:  consumers.DefaultKafkaConfig(),
		Input:  consumers.DefaultInputConfig(),
		Output: producers.DefaultOutputConfig(),
		Model: Model{
			RecognizerOptions: model.DefaultRecognizerOptions(),
			PullMaxBytes:      int(hub.DefaultMaxBytes),
			GPULayers:         -1,
			Devices:           []string{DevicesAuto},
			Engine:            EngineLlama,
			OpenAI:            openai.DefaultOptions(),
		},
		Batch:           pipeline.DefaultBatch(),
		Retry:           pipeline.DefaultRetry(),
		HTTP:            telemetry.DefaultHTTPConfig(),
		Log:             telemetry.DefaultLogConfig(),
		ShutdownTimeout: pipeline.DefaultDrainTimeout,
	}
}

// Problems is every problem that [LoadFrom] or [Config.Validate] found,
// each as "field.path: what is wrong" (a variable's problem starts with
// the variable, "NERSTREAM_BATCH_LINGER (batch.linger): ...", and a
// --set entry's with "--set batch.linger: ...").
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Validate checks the configuration and returns every problem as
// [Problems], or nil: each section's own, and those between sections.
func (c Config) Validate() error {
	var p problems.List
	p.Add("kafka", c.Kafka.Validate())
	p.Add("input", c.Input.Validate())
	p.Add("output", c.Output.Validate())
	p.Add("model", c.Model.RecognizerOptions.Validate())
	p.Add("model.openai", c.Model.OpenAI.Validate())
	p.Add("batch", c.Batch.Validate())
	p.Add("retry", c.Retry.Validate())
	p.Add("telemetry", c.Telemetry.Validate())
	p.Add("http", c.HTTP.Validate())
	p.Add("log", c.Log.Validate())
	switch {
	case c.ShutdownTimeout <= 0:
		p.Addf("shutdown_timeout", "must be > 0")
	case c.ShutdownTimeout >= c.Kafka.RebalanceTimeout && c.Kafka.RebalanceTimeout > 0:
		p.Addf("shutdown_timeout", "must be below kafka.rebalance_timeout, or a rebalance moves on without this member")
	case c.ShutdownTimeout >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0:
		// A draining member sends no heartbeats.
		p.Addf("shutdown_timeout", "must be below kafka.session_timeout, or the coordinator expels a draining member and refuses its commits")
	}
	if c.Output.Mode == producers.ModeEnrich && c.Input.Format != consumers.FormatJSON {
		p.Addf("output.mode", "enrich needs input.format json: a text value has no fields to add entities to")
	}
	if slices.Contains(c.Input.Topics, c.Output.Topic) && c.Output.Topic != "" {
		p.Addf("output.topic", "%q is also an input topic", c.Output.Topic)
	}
	m := c.Model
	if m.Threads < 0 {
		p.Addf("model.threads", "must be >= 0")
	}
	if m.PullMaxBytes <= 0 {
		p.Addf("model.pull_max_bytes", "must be > 0")
	}
	if m.GPULayers < -1 {
		p.Addf("model.gpu_layers", "must be -1 (all), 0 (none) or a count")
	}
	if len(m.Devices) == 0 {
		p.Addf("model.devices", "must name a device, or auto")
	}
	for i, d := range m.Devices {
		switch {
		case strings.TrimSpace(d) == "":
			p.Addf(fmt.Sprintf("model.devices[%d]", i), "must not be empty")
		case d == DevicesAuto && len(m.Devices) > 1:
			p.Addf(fmt.Sprintf("model.devices[%d]", i), "auto stands alone")
		case slices.Contains(m.Devices[:i], d):
			p.Addf(fmt.Sprintf("model.devices[%d]", i), "%q is named twice", d)
		}
	}
	switch m.Engine {
	case EngineLlama:
	case EngineOpenAI:
		if len(m.OpenAI.Endpoints) == 0 {
			p.Addf("model.openai.endpoints", "required by the openai engine")
		}
	default:
		p.Addf("model.engine", "%q is not one of llama, openai", m.Engine)
	}
	return toProblems(p)
}

// toProblems turns the components' problems into [Problems], or nil.
func toProblems(l problems.List) error {
	if len(l) == 0 {
		return nil
	}
	p := make(Problems, len(l))
	for i, x := range l {
		p[i] = x.Path + ": " + x.Text
	}
	return p
}

// ValidateRun is [Config.Validate] plus what the streaming processor
// needs: brokers, input topics, both output topics and a model.
func (c Config) ValidateRun() error {
	var p Problems
	if err := c.Validate(); err != nil {
		p = append(p, err.(Problems)...)
	}
	if len(c.Kafka.Brokers) == 0 {
		p = append(p, "kafka.brokers: required")
	}
	if len(c.Input.Topics) == 0 {
		p = append(p, "input.topics: required")
	}
	if c.Output.Topic == "" {
		p = append(p, "output.topic: required")
	}
	if c.Output.DeadLetterTopic == "" {
		p = append(p, "output.dead_letter_topic: required")
	}
	if c.Model.Path == "" && c.Model.Engine != EngineOpenAI {
		p = append(p, "model.path: required")
	}
	if len(c.Model.Types) == 0 {
		p = append(p, "model.entity_types: required (documents without their own types are asked about these)")
	}
	if len(p) == 0 {
		return nil
	}
	return p
}
