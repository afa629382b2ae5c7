// Package config holds nerstream's one configuration struct, [Config]: its
// defaults, its loading from YAML, the environment and flags, and
// [Config.Validate], which reports every problem at once, each with its
// field path.
//
// The sections are kafka (brokers and group membership), input (topics and
// decoding), output (topics and the writer), model (prompt, parsing,
// decoding limits), batch (micro-batches and the bound on work in flight),
// retry (model failures) and shutdown_timeout. Every field documents its
// default. The telemetry, http and log sections configure observability:
// traces and metrics, the /healthz, /readyz and /metrics endpoints, and the
// logs.
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
// NERSTREAM_MODEL_DIR, NERSTREAM_REQUIRE_KCAT, NERSTREAM_REQUIRE_PYTHON,
// NERSTREAM_WRITE_PERTURBED and every NERSTREAM_TEST_* variable.
//
// # Secrets
//
// Fields tagged secret:"true" (today telemetry.headers, where vendors'
// API keys go) are hidden by [Config.Redacted], which config print uses:
// a non-empty value becomes "[redacted]"; a map keeps its keys.
package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration of a nerstream process.
type Config struct {
	Kafka  Kafka  `yaml:"kafka"`
	Input  Input  `yaml:"input"`
	Output Output `yaml:"output"`
	Model  Model  `yaml:"model"`
	Batch  Batch  `yaml:"batch"`
	Retry  Retry  `yaml:"retry"`
	// Telemetry configures traces and metrics.
	Telemetry Telemetry `yaml:"telemetry"`
	// HTTP configures the health, readiness and metrics server.
	HTTP HTTP `yaml:"http"`
	// Log configures the process's logs.
	Log Log `yaml:"log"`
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

// Kafka configures the brokers and the consumer group.
type Kafka struct {
	// Brokers are the bootstrap brokers, host:port. Required by run.
	Brokers []string `yaml:"brokers"`
	// GroupID is the consumer group. Members with the same id share the
	// input partitions. Default: "nerstream".
	GroupID string `yaml:"group_id"`
	// ClientID names this process to the brokers. Default: "nerstream".
	ClientID string `yaml:"client_id"`
	// StartOffset is where a partition with no committed offset starts:
	// "earliest" (default: nothing already in the topic is skipped) or
	// "latest".
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before it expels a member and gives its partitions to the others.
	// Default: 30s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often a member heartbeats; a rebalance is
	// noticed within one interval. Default: 3s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin in a rebalance; members finish their work in flight within
	// shutdown_timeout, inside it. Default: 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// TLS encrypts the connections to the brokers.
	TLS KafkaTLS `yaml:"tls"`
	// SASL authenticates this process to the brokers.
	SASL KafkaSASL `yaml:"sasl"`
}

// KafkaTLS configures TLS to the brokers. Every connection (the group's,
// the fetches', the writer's) uses it.
type KafkaTLS struct {
	// Enabled turns TLS on. Default: false (plain text). Setting any file
	// below does not turn it on by itself.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that signed the brokers'
	// certificates. Default: "" (the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's certificate and key, PEM,
	// for brokers that ask for one (mutual TLS). Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must carry.
	// Default: "" (the host of each broker address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate, which lets anyone on the
	// path read and change the stream. Default: false; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// KafkaSASL configures SASL authentication to the brokers.
type KafkaSASL struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". Default:
	// "" (no SASL). PLAIN sends the password as it is: use it with TLS.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user. Required with a mechanism.
	Username string `yaml:"username"`
	// Password is the user's password. Prefer NERSTREAM_KAFKA_SASL_PASSWORD
	// or password_file to writing it here. Default: "".
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is a file that holds the password (a mounted secret);
	// trailing white space is dropped. Default: "". Set it or password,
	// not both.
	PasswordFile string `yaml:"password_file"`
}

// Input configures the input topics and how records are decoded.
type Input struct {
	// Topics are the input topics. Required by run.
	Topics []string `yaml:"topics"`
	// Format is "json" (default: {"id","text","entity_types","metadata"})
	// or "text" (the whole value is the text).
	Format string `yaml:"format"`
	// MaxBytes bounds a record's value, after snappy decompression; a
	// larger one is a dead letter (value_too_large). Default: 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// FetchMaxBytes bounds one fetch from one partition. Default: 1 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxWait is how long the broker may hold a fetch that has no
	// data yet. Default: 250ms.
	FetchMaxWait time.Duration `yaml:"fetch_max_wait"`
}

// Output configures the output topics and the writer.
type Output struct {
	// Topic receives the annotation records. Required by run.
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives bad input with its reason. Required by run.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Compression is "snappy" (default), "none", "gzip", "lz4" or "zstd".
	Compression string `yaml:"compression"`
	// BatchTimeout is how long the writer waits to fill a batch. Default:
	// 2ms (kafka-go's own default of 1s would add a second to every write).
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// CreateTopics lets writes create missing output topics. Default:
	// false, so a typo in a topic name is an error, not a new topic.
	CreateTopics bool `yaml:"create_topics"`
}

// Batch configures micro-batching and the bound on work in flight.
type Batch struct {
	// MaxDocs closes a micro-batch at this many documents. Default: 32.
	MaxDocs int `yaml:"max_docs"`
	// MaxBytes closes a micro-batch at this many bytes of text. Default:
	// 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// Linger closes a micro-batch this long after its first document, so
	// that a quiet stream is not held back. Default: 20ms.
	Linger time.Duration `yaml:"linger"`
	// MaxInFlight bounds the documents fetched but not yet acknowledged,
	// over all partitions; fetching pauses at the bound (back-pressure,
	// bounded memory, and a bound on duplicates after a crash). Default:
	// 256.
	MaxInFlight int `yaml:"max_in_flight"`
	// Workers is how many micro-batches go to the model at once. Default:
	// 2, so that the next batch forms while one runs.
	Workers int `yaml:"workers"`
}

// Retry configures retries of failed model calls.
type Retry struct {
	// MaxAttempts bounds the model calls that fail on one document; after
	// the last, the record becomes a dead letter with reason
	// inference_failed. A call that fails as a whole (the engine or the
	// GPU tier down) does not count: it is retried without end, holding
	// the records uncommitted. Default: 3.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait after the first failure; it doubles up to
	// MaxBackoff. Default: 100ms. Broker failures and whole-model outages
	// use the same back-off but are retried without end: they never
	// become dead letters.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the wait between tries. Default: 5s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Telemetry configures OpenTelemetry traces and metrics. What it leaves
// empty, the standard OTEL_* environment variables fill in
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL, ...); what it
// sets wins over them. Metrics are served at /metrics whatever the
// exporter.
type Telemetry struct {
	// Exporter is where spans and metrics are sent: "none", "stdout",
	// "otlp-grpc" or "otlp-http". Default: "" (OTEL_TRACES_EXPORTER when
	// set, else none: no spans are recorded, and tracing costs nothing;
	// trace context still passes from input to output records).
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP receiver: host:port, or a URL
	// (http://collector:4318). Default: "" (OTEL_EXPORTER_OTLP_ENDPOINT,
	// else localhost:4317 for grpc and localhost:4318 for http).
	Endpoint string `yaml:"endpoint"`
	// Insecure sends OTLP without TLS. Default: false.
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM bundle of the CAs to trust for OTLP over TLS.
	// Default: "" (the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key, PEM,
	// for mutual TLS. Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Headers are sent with every export, such as a vendor's API key.
	// Default: none (OTEL_EXPORTER_OTLP_HEADERS).
	// They are secret: config print redacts them.
	Headers map[string]string `yaml:"headers" secret:"true"`
	// SamplingRatio is the fraction of new traces recorded, 0 to 1. A
	// record whose producer sampled its trace is always followed
	// (parent-based sampling). Default: unset (OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG, else 1: every trace).
	SamplingRatio *float64 `yaml:"sampling_ratio"`
	// ServiceName is the service.name resource attribute. Default: ""
	// (OTEL_SERVICE_NAME, else "nerstream").
	ServiceName string `yaml:"service_name"`
	// ResourceAttributes are added to every span and metric, such as
	// deployment.environment.name. They win over OTEL_RESOURCE_ATTRIBUTES.
	// Default: none.
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	// MetricInterval is how often metrics are pushed to the exporter
	// (/metrics is always current). Default: 0 (OTEL_METRIC_EXPORT_INTERVAL,
	// else 60s).
	MetricInterval time.Duration `yaml:"metric_interval"`
}

// HTTP configures the server of /healthz, /readyz, /metrics and, when
// enabled, /debug/pprof.
type HTTP struct {
	// Address is where the server listens, host:port. Default: ":8080".
	// "" turns the server off.
	Address string `yaml:"address"`
	// Pprof serves Go's profiler under /debug/pprof/. Default: false: it
	// shows the process's internals, and a profile costs CPU while it
	// runs.
	Pprof bool `yaml:"pprof"`
	// ReadinessInterval is how often readiness checks the brokers when no
	// write has shown they work. Default: 5s.
	ReadinessInterval time.Duration `yaml:"readiness_interval"`
}

// Log configures the logs on standard error.
type Log struct {
	// Level is "debug", "info" (default), "warn" or "error". No level
	// above debug logs document text.
	Level string `yaml:"level"`
	// Format is "json" (default: one object per line, with trace_id and
	// span_id when the line belongs to a span) or "text".
	Format string `yaml:"format"`
}

// Model configures the UniNER task and the model that runs it.
type Model struct {
	// Path is the GGUF model file. Required by commands that run a model.
	Path string `yaml:"path"`
	// EntityTypes are asked about when a document names none.
	EntityTypes []string `yaml:"entity_types"`
	// Prompt selects the prompt variant.
	Prompt Prompt `yaml:"prompt"`
	// Parse is how answers are read: "lenient" (default; recovers lists
	// after chatter, cut short or holding non-strings) or "official"
	// (exactly UniNER's evaluation parser).
	Parse string `yaml:"parse"`
	// MaxNewTokens bounds each answer. Default: 256, as the official
	// decoding.
	MaxNewTokens int `yaml:"max_new_tokens"`
	// MaxEntityTypes bounds the types of one document; each costs a
	// prompt. Default: 64.
	MaxEntityTypes int `yaml:"max_entity_types"`
	// WindowTokens caps the text of one prompt in tokens (long documents
	// are split into overlapping windows). Default: 0, the context's
	// room. UniNER was trained on passages of at most 256 tokens.
	WindowTokens int `yaml:"window_tokens"`
	// OverlapTokens is the overlap of neighbouring windows. Default: 64.
	OverlapTokens int `yaml:"overlap_tokens"`
	// Threads is the CPU threads of the engine. Default: 0, all cores.
	Threads int `yaml:"threads"`
	// GPULayers is the layers offloaded to a GPU: -1 (default) all of
	// them when a GPU is present, 0 none.
	GPULayers int `yaml:"gpu_layers"`
	// Engine is where the model runs: "llama" (default: in this process,
	// from model.path) or "openai" (OpenAI-compatible servers, such as
	// vLLM, llama-server or nerstream serve, from model.openai).
	Engine string `yaml:"engine"`
	// OpenAI configures the openai engine.
	OpenAI OpenAI `yaml:"openai"`
}

// OpenAI configures the engine that sends prompts to a pool of
// OpenAI-compatible completions servers (model/openai documents each
// setting further).
type OpenAI struct {
	// Endpoints are the servers' base URLs, like http://gpu-1:8000/v1.
	// Required by the openai engine.
	Endpoints []string `yaml:"endpoints"`
	// Model is the served model's name, sent with each request (vLLM
	// checks it). Default: "" (left out; model.path names the model in
	// the annotations).
	Model string `yaml:"model"`
	// APIKey is sent as a bearer token. Prefer NERSTREAM_MODEL_OPENAI_API_KEY
	// or api_key_file. Default: none.
	APIKey string `yaml:"api_key" secret:"true"`
	// APIKeyFile is a file that holds the API key. Default: none.
	APIKeyFile string `yaml:"api_key_file"`
	// Dialect is the servers' extensions: "llama-server" (llama.cpp's
	// server, and nerstream serve), "vllm", or "" (default: plain OpenAI,
	// and token counts are estimated from bytes, which makes long
	// documents' windows smaller than they need be).
	Dialect string `yaml:"dialect"`
	// Routing is "least-in-flight" (default) or "round-robin".
	Routing string `yaml:"routing"`
	// MaxInFlightPerEndpoint bounds the requests one server has at once.
	// Default: 8.
	MaxInFlightPerEndpoint int `yaml:"max_in_flight_per_endpoint"`
	// Timeout bounds one request. Default: 60s.
	Timeout time.Duration `yaml:"timeout"`
}

// Prompt configures the prompt variant.
type Prompt struct {
	// Variant is "type" (default; UniNER-7B-type and -all),
	// "definition" (UniNER-7B-definition) or "supervised"
	// (UniNER-7B-type-sup).
	Variant string `yaml:"variant"`
	// Dataset is the dataset name that the supervised variant puts
	// before the text. Required for that variant.
	Dataset string `yaml:"dataset"`
	// SupervisedFormat is the supervised variant's first user turn, with
	// {dataset} and {text}. Default: "Dataset: {dataset}\nText: {text}"
	// (the paper never published the exact white space).
	SupervisedFormat string `yaml:"supervised_format"`
	// Definitions maps an entity type to the sentence that defines it,
	// for the definition variant.
	Definitions map[string]string `yaml:"definitions"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		Kafka: Kafka{
			GroupID:           "nerstream",
			ClientID:          "nerstream",
			StartOffset:       "earliest",
			SessionTimeout:    30 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			RebalanceTimeout:  30 * time.Second,
		},
		Input: Input{Format: "json", MaxBytes: 1 << 20, FetchMaxBytes: 1 << 20, FetchMaxWait: 250 * time.Millisecond},
		Output: Output{
			Compression:  "snappy",
			BatchTimeout: 2 * time.Millisecond,
		},
		Model: Model{
			Prompt:         Prompt{Variant: "type", SupervisedFormat: "Dataset: {dataset}\nText: {text}"},
			Parse:          "lenient",
			MaxNewTokens:   256,
			MaxEntityTypes: 64,
			OverlapTokens:  64,
			GPULayers:      -1,
			Engine:         "llama",
			OpenAI:         OpenAI{Routing: "least-in-flight", MaxInFlightPerEndpoint: 8, Timeout: 60 * time.Second},
		},
		Batch:           Batch{MaxDocs: 32, MaxBytes: 1 << 20, Linger: 20 * time.Millisecond, MaxInFlight: 256, Workers: 2},
		Retry:           Retry{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second},
		HTTP:            HTTP{Address: ":8080", ReadinessInterval: 5 * time.Second},
		Log:             Log{Level: "info", Format: "json"},
		ShutdownTimeout: 10 * time.Second,
	}
}

// Problems is every problem that [LoadFrom] or [Config.Validate] found,
// each as "field.path: what is wrong" (a variable's problem starts with
// the variable, "NERSTREAM_BATCH_LINGER (batch.linger): ...", and a
// --set entry's with "--set batch.linger: ...").
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Validate checks the configuration and returns every problem as
// [Problems], or nil.
func (c Config) Validate() error {
	var p Problems
	add := func(path, format string, args ...any) {
		p = append(p, path+": "+fmt.Sprintf(format, args...))
	}
	c.validateStream(add)
	m := c.Model
	switch m.Prompt.Variant {
	case "type", "definition":
	case "supervised":
		if strings.TrimSpace(m.Prompt.Dataset) == "" {
			add("model.prompt.dataset", "required by the supervised variant")
		}
	default:
		add("model.prompt.variant", "%q is not one of type, definition, supervised", m.Prompt.Variant)
	}
	if n := strings.Count(m.Prompt.SupervisedFormat, "{text}"); n != 1 {
		add("model.prompt.supervised_format", "must hold {text} exactly once")
	}
	if m.Parse != "lenient" && m.Parse != "official" {
		add("model.parse", "%q is not one of lenient, official", m.Parse)
	}
	if m.MaxNewTokens <= 0 {
		add("model.max_new_tokens", "must be > 0")
	}
	if m.MaxEntityTypes <= 0 {
		add("model.max_entity_types", "must be > 0")
	}
	if m.WindowTokens < 0 {
		add("model.window_tokens", "must be >= 0")
	}
	if m.OverlapTokens < 0 {
		add("model.overlap_tokens", "must be >= 0")
	}
	if m.Threads < 0 {
		add("model.threads", "must be >= 0")
	}
	if m.GPULayers < -1 {
		add("model.gpu_layers", "must be -1 (all), 0 (none) or a count")
	}
	switch m.Engine {
	case "llama":
	case "openai":
		if len(m.OpenAI.Endpoints) == 0 {
			add("model.openai.endpoints", "required by the openai engine")
		}
	default:
		add("model.engine", "%q is not one of llama, openai", m.Engine)
	}
	for i, e := range m.OpenAI.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			add(fmt.Sprintf("model.openai.endpoints[%d]", i), "%q is not an http:// or https:// URL", e)
		}
	}
	switch m.OpenAI.Dialect {
	case "", "llama-server", "vllm":
	default:
		add("model.openai.dialect", "%q is not one of llama-server, vllm or empty", m.OpenAI.Dialect)
	}
	switch m.OpenAI.Routing {
	case "least-in-flight", "round-robin":
	default:
		add("model.openai.routing", "%q is not one of least-in-flight, round-robin", m.OpenAI.Routing)
	}
	if m.OpenAI.MaxInFlightPerEndpoint <= 0 {
		add("model.openai.max_in_flight_per_endpoint", "must be > 0")
	}
	if m.OpenAI.Timeout <= 0 {
		add("model.openai.timeout", "must be > 0")
	}
	if m.OpenAI.APIKey != "" && m.OpenAI.APIKeyFile != "" {
		add("model.openai.api_key_file", "set model.openai.api_key or model.openai.api_key_file, not both")
	}
	for i, t := range m.EntityTypes {
		if strings.TrimSpace(t) == "" {
			add(fmt.Sprintf("model.entity_types[%d]", i), "must not be empty")
		}
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// validateStream checks the sections that only the streaming processor
// reads; Kafka addresses and topics that run requires are checked by
// [Config.ValidateRun].
func (c Config) validateStream(add func(path, format string, args ...any)) {
	c.validateSecurity(add)
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			add(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if strings.TrimSpace(c.Kafka.GroupID) == "" {
		add("kafka.group_id", "must not be empty")
	}
	if c.Kafka.StartOffset != "earliest" && c.Kafka.StartOffset != "latest" {
		add("kafka.start_offset", "%q is not one of earliest, latest", c.Kafka.StartOffset)
	}
	positive := func(path string, d time.Duration) {
		if d <= 0 {
			add(path, "must be > 0")
		}
	}
	positive("kafka.session_timeout", c.Kafka.SessionTimeout)
	positive("kafka.heartbeat_interval", c.Kafka.HeartbeatInterval)
	positive("kafka.rebalance_timeout", c.Kafka.RebalanceTimeout)
	if c.Kafka.HeartbeatInterval >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0 {
		add("kafka.heartbeat_interval", "must be below kafka.session_timeout")
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout", "must be > 0")
	} else if c.ShutdownTimeout >= c.Kafka.RebalanceTimeout && c.Kafka.RebalanceTimeout > 0 {
		add("shutdown_timeout", "must be below kafka.rebalance_timeout, or a rebalance moves on without this member")
	} else if c.ShutdownTimeout >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0 {
		// A draining member sends no heartbeats.
		add("shutdown_timeout", "must be below kafka.session_timeout, or the coordinator expels a draining member and refuses its commits")
	}
	for i, t := range c.Input.Topics {
		if strings.TrimSpace(t) == "" {
			add(fmt.Sprintf("input.topics[%d]", i), "must not be empty")
		}
	}
	if c.Input.Format != "json" && c.Input.Format != "text" {
		add("input.format", "%q is not one of json, text", c.Input.Format)
	}
	if c.Input.MaxBytes <= 0 {
		add("input.max_bytes", "must be > 0")
	}
	if c.Input.FetchMaxBytes <= 0 {
		add("input.fetch_max_bytes", "must be > 0")
	}
	positive("input.fetch_max_wait", c.Input.FetchMaxWait)
	switch c.Output.Compression {
	case "snappy", "none", "gzip", "lz4", "zstd":
	default:
		add("output.compression", "%q is not one of snappy, none, gzip, lz4, zstd", c.Output.Compression)
	}
	positive("output.batch_timeout", c.Output.BatchTimeout)
	if c.Output.Topic != "" && c.Output.Topic == c.Output.DeadLetterTopic {
		add("output.dead_letter_topic", "must differ from output.topic")
	}
	if slices.Contains(c.Input.Topics, c.Output.Topic) && c.Output.Topic != "" {
		add("output.topic", "%q is also an input topic", c.Output.Topic)
	}
	if c.Batch.MaxDocs <= 0 {
		add("batch.max_docs", "must be > 0")
	}
	if c.Batch.MaxBytes <= 0 {
		add("batch.max_bytes", "must be > 0")
	}
	positive("batch.linger", c.Batch.Linger)
	if c.Batch.MaxInFlight < c.Batch.MaxDocs {
		add("batch.max_in_flight", "must be at least batch.max_docs (%d)", c.Batch.MaxDocs)
	}
	if c.Batch.Workers <= 0 {
		add("batch.workers", "must be > 0")
	}
	if c.Retry.MaxAttempts <= 0 {
		add("retry.max_attempts", "must be > 0")
	}
	positive("retry.initial_backoff", c.Retry.InitialBackoff)
	if c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		add("retry.max_backoff", "must be at least retry.initial_backoff")
	}
	c.validateObservability(add)
}

// validateObservability checks the telemetry, http and log sections.
func (c Config) validateObservability(add func(path, format string, args ...any)) {
	t := c.Telemetry
	switch t.Exporter {
	case "", "none", "stdout", "otlp-grpc", "otlp-http":
	default:
		add("telemetry.exporter", "%q is not one of none, stdout, otlp-grpc, otlp-http", t.Exporter)
	}
	if r := t.SamplingRatio; r != nil && !(*r >= 0 && *r <= 1) {
		add("telemetry.sampling_ratio", "must be between 0 and 1")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("telemetry.key_file", "telemetry.cert_file and telemetry.key_file go together")
	}
	if t.MetricInterval < 0 {
		add("telemetry.metric_interval", "must be >= 0")
	}
	if a := c.HTTP.Address; a != "" && !strings.Contains(a, ":") {
		add("http.address", "%q is not host:port (\":8080\", \"127.0.0.1:8080\")", a)
	}
	if c.HTTP.ReadinessInterval <= 0 {
		add("http.readiness_interval", "must be > 0")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "%q is not one of json, text", c.Log.Format)
	}
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
	if c.Model.Path == "" && c.Model.Engine != "openai" {
		p = append(p, "model.path: required")
	}
	if len(c.Model.EntityTypes) == 0 {
		p = append(p, "model.entity_types: required (documents without their own types are asked about these)")
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// validateSecurity checks kafka.tls and kafka.sasl.
func (c Config) validateSecurity(add func(path, format string, args ...any)) {
	t := c.Kafka.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("kafka.tls.key_file", "kafka.tls.cert_file and kafka.tls.key_file go together")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		add("kafka.tls.enabled", "TLS settings are given but TLS is off: set kafka.tls.enabled: true")
	}
	s := c.Kafka.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			add("kafka.sasl.mechanism", "a SASL user is given but no mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		add("kafka.sasl.mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
	}
	if s.Username == "" {
		add("kafka.sasl.username", "required with a SASL mechanism")
	}
	if s.Password != "" && s.PasswordFile != "" {
		add("kafka.sasl.password_file", "set kafka.sasl.password or kafka.sasl.password_file, not both")
	}
}
