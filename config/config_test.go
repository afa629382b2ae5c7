package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/consumers"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	cases := []struct {
		name, yaml string
		check      func(Config) bool
		err        string
	}{
		{"empty keeps defaults", "", func(c Config) bool { return c.Model.MaxNewTokens == 256 && c.Model.Parse == "lenient" }, ""},
		{"model settings", "model:\n  path: m.gguf\n  entity_types: [person, organization]\n  parse: official\n  prompt:\n    variant: definition\n    definitions: {person: a human}\n",
			func(c Config) bool {
				return c.Model.Path == "m.gguf" && slices.Equal(c.Model.Types, []string{"person", "organization"}) &&
					c.Model.Parse == "official" && c.Model.Prompt.Definitions["person"] == "a human" &&
					c.Model.MaxNewTokens == 256 // untouched default
			}, ""},
		{"unknown key", "model:\n  pth: m.gguf\n", nil, "pth"},
		{"wrong type", "model:\n  max_new_tokens: lots\n", nil, `model.max_new_tokens: "lots" is not an integer`},
		{"min_score", "model:\n  min_score: 0.35\n", func(c Config) bool { return c.Model.MinScore == 0.35 }, ""},
		{"min_score not a number", "model:\n  min_score: high\n", nil, `model.min_score: "high" is not a number`},
		{"min_score a list", "model:\n  min_score: [1]\n", nil, `model.min_score: must be a number`},
		{"not yaml", "model: [\n", nil, "config"},
		{"cache settings", "model:\n  cache: {entries: 1000, bytes: 1048576, ttl: 10m}\n", func(c Config) bool {
			return c.Model.Cache.Entries == 1000 && c.Model.Cache.Bytes == 1<<20 && c.Model.Cache.TTL == 10*time.Minute && c.Validate() == nil
		}, ""},
		{"cache entries alone", "model:\n  cache: {entries: 1000}\n", func(c Config) bool {
			err := c.Validate()
			return err != nil && strings.Contains(err.Error(), "model.cache: entries and bytes must both be > 0")
		}, ""},
		{"cache hostile bytes", "model:\n  cache: {entries: 1, bytes: 99999999999999999999999}\n", nil, "model.cache.bytes"},
		{"cache negative ttl", "model:\n  cache: {entries: 1, bytes: 1048576, ttl: -5s}\n", func(c Config) bool {
			err := c.Validate()
			return err != nil && strings.Contains(err.Error(), "model.cache.ttl: must be >= 0")
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Read(strings.NewReader(c.yaml))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(cfg) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Model.Prompt.Variant = "supervised" // and no dataset
	cfg.Model.Prompt.SupervisedFormat = "no placeholder"
	cfg.Model.Parse = "strict"
	cfg.Model.MaxNewTokens = 0
	cfg.Model.MaxTypes = -1
	cfg.Model.WindowTokens = -5
	cfg.Model.Types = []string{"person", " "}
	cfg.Model.MinScore = 1.5
	err := cfg.Validate()
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want Problems", err)
	}
	for _, path := range []string{"model.prompt.dataset", "model.prompt.supervised_format", "model.parse", "model.max_new_tokens",
		"model.max_entity_types", "model.window_tokens", "model.entity_types[1]", "model.min_score"} {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, path+": ") }) {
			t.Errorf("no problem reported for %s in %q", path, p)
		}
	}
	if len(p) != 8 {
		t.Errorf("%d problems, want 8: %q", len(p), p)
	}
	cfg = Default()
	cfg.Model.Prompt.Variant = "typed"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "model.prompt.variant") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("model: {path: x.gguf}\n"), 0o644)
	cfg, err := Load(p)
	if err != nil || cfg.Model.Path != "x.gguf" {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}

// TestIssueExampleRuns is the configuration that issue 4 promises to keep
// working.
func TestIssueExampleRuns(t *testing.T) {
	const example = `kafka: {brokers: ["127.0.0.1:9092"], group_id: nerstream}
input: {topics: [docs], format: json}
output: {topic: entities, dead_letter_topic: entities-dlq, compression: snappy}
model: {path: model.gguf, entity_types: [person, organization, location]}
batch: {max_docs: 32, linger: 20ms}
`
	cfg, err := Read(strings.NewReader(example))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateRun(); err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.Linger != 20*time.Millisecond || cfg.Batch.MaxInFlight != 256 || cfg.Output.DeadLetterTopic != "entities-dlq" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestValidateStreamSections(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		path   string
	}{
		{"broker without port", func(c *Config) { c.Kafka.Brokers = []string{"localhost"} }, "kafka.brokers[0]"},
		{"start offset", func(c *Config) { c.Kafka.StartOffset = "middle" }, "kafka.start_offset"},
		{"heartbeat above session", func(c *Config) { c.Kafka.HeartbeatInterval = time.Minute }, "kafka.heartbeat_interval"},
		{"shutdown above rebalance", func(c *Config) { c.ShutdownTimeout = time.Hour }, "shutdown_timeout"},
		{"shutdown above session", func(c *Config) { c.Kafka.SessionTimeout = 6 * time.Second }, "shutdown_timeout"},
		{"format", func(c *Config) { c.Input.Format = "xml" }, "input.format"},
		{"compression", func(c *Config) { c.Output.Compression = "brotli" }, "output.compression"},
		{"dead letters into the output", func(c *Config) { c.Output.Topic, c.Output.DeadLetterTopic = "x", "x" }, "output.dead_letter_topic"},
		{"output is an input", func(c *Config) { c.Input.Topics, c.Output.Topic = []string{"x"}, "x" }, "output.topic"},
		{"in flight below a batch", func(c *Config) { c.Batch.MaxInFlight = 4 }, "batch.max_in_flight"},
		{"no linger", func(c *Config) { c.Batch.Linger = 0 }, "batch.linger"},
		{"no attempts", func(c *Config) { c.Retry.MaxAttempts = 0 }, "retry.max_attempts"},
		{"backoff range", func(c *Config) { c.Retry.MaxBackoff = time.Millisecond }, "retry.max_backoff"},
		{"exporter", func(c *Config) { c.Telemetry.Exporter = "jaeger" }, "telemetry.exporter"},
		{"sampling ratio", func(c *Config) { r := 1.5; c.Telemetry.SamplingRatio = &r }, "telemetry.sampling_ratio"},
		{"client cert without key", func(c *Config) { c.Telemetry.CertFile = "c.pem" }, "telemetry.key_file"},
		{"metric interval", func(c *Config) { c.Telemetry.MetricInterval = -time.Second }, "telemetry.metric_interval"},
		{"http address", func(c *Config) { c.HTTP.Address = "8080" }, "http.address"},
		{"readiness interval", func(c *Config) { c.HTTP.ReadinessInterval = 0 }, "http.readiness_interval"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"sasl mechanism", func(c *Config) { c.Kafka.SASL = consumers.SASLConfig{Mechanism: "GSSAPI", Username: "u"} }, "kafka.sasl.mechanism"},
		{"sasl user", func(c *Config) { c.Kafka.SASL = consumers.SASLConfig{Mechanism: "PLAIN"} }, "kafka.sasl.username"},
		{"sasl password twice", func(c *Config) {
			c.Kafka.SASL = consumers.SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: "f"}
		}, "kafka.sasl.password_file"},
		{"sasl user without mechanism", func(c *Config) { c.Kafka.SASL.Username = "u" }, "kafka.sasl.mechanism"},
		{"tls settings with tls off", func(c *Config) { c.Kafka.TLS.CAFile = "ca.pem" }, "kafka.tls.enabled"},
		{"tls cert without key", func(c *Config) { c.Kafka.TLS = consumers.TLSConfig{Enabled: true, CertFile: "c.pem"} }, "kafka.tls.key_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.change(&cfg)
			err := cfg.Validate()
			var p Problems
			if !errors.As(err, &p) || len(p) != 1 || !strings.HasPrefix(p[0], c.path+":") {
				t.Fatalf("Validate() = %v, want one problem at %s", err, c.path)
			}
		})
	}
}

func TestTelemetryYAML(t *testing.T) {
	cfg, err := Read(strings.NewReader(`telemetry:
  exporter: otlp-http
  endpoint: http://collector:4318
  headers: {x-api-key: secret}
  sampling_ratio: 0
  resource_attributes: {deployment.environment.name: prod}
http: {address: "127.0.0.1:9090", pprof: true}
log: {level: debug, format: text}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tl := cfg.Telemetry
	// An explicit 0 is "sample no new trace", not "unset".
	if tl.Exporter != "otlp-http" || tl.SamplingRatio == nil || *tl.SamplingRatio != 0 || tl.Headers["x-api-key"] != "secret" ||
		tl.ResourceAttributes["deployment.environment.name"] != "prod" || !cfg.HTTP.Pprof || cfg.HTTP.ReadinessInterval != 5*time.Second ||
		cfg.Log.Level != "debug" {
		t.Fatalf("config %+v %+v %+v", tl, cfg.HTTP, cfg.Log)
	}
	if Default().Telemetry.SamplingRatio != nil {
		t.Fatal("the default sampling ratio must be unset, so that OTEL_TRACES_SAMPLER applies")
	}
}

func TestValidateRunNeedsTheStream(t *testing.T) {
	err := Default().ValidateRun()
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("ValidateRun() = %v", err)
	}
	for _, want := range []string{"kafka.brokers", "input.topics", "output.topic", "output.dead_letter_topic", "model.path", "model.entity_types"} {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, want+":") }) {
			t.Errorf("no problem at %s in %v", want, p)
		}
	}
}
