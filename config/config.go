// Package config holds nerstream's one configuration struct, [Config]: its
// defaults, loading from YAML, and [Config.Validate], which reports every
// problem at once, each with its field path.
//
// Only the sections that the built commands use exist so far: model
// (prompt, parsing, decoding limits). Kafka, batching, telemetry and HTTP
// sections join as their packages land; environment overrides
// (NERSTREAM_*) come with them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a nerstream process.
type Config struct {
	Model Model `yaml:"model"`
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
	return Config{Model: Model{
		Prompt:         Prompt{Variant: "type", SupervisedFormat: "Dataset: {dataset}\nText: {text}"},
		Parse:          "lenient",
		MaxNewTokens:   256,
		MaxEntityTypes: 64,
		OverlapTokens:  64,
	}}
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	return Read(f)
}

// Read reads YAML over the defaults. Unknown keys are errors.
func Read(r io.Reader) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Problems is every problem [Config.Validate] found, each as
// "field.path: what is wrong".
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Validate checks the configuration and returns every problem as
// [Problems], or nil.
func (c Config) Validate() error {
	var p Problems
	add := func(path, format string, args ...any) {
		p = append(p, path+": "+fmt.Sprintf(format, args...))
	}
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
