package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFieldsAndEnrichProblems: hostile pointers and an enrich mode without
// JSON input are problems at their paths, each on one line.
func TestFieldsAndEnrichProblems(t *testing.T) {
	cfg := Default()
	cfg.Input.Format = "text"
	cfg.Input.Fields.Text = []string{"message", "/ok", "/bad~2", ""}
	cfg.Input.Fields.Key = "service\n\x1b[31m"
	cfg.Output.Mode = "enrich"
	cfg.Output.Enrich.Field = "entities"
	cfg.Output.Enrich.Tags = true
	cfg.Output.Enrich.TagsField = "/e~"
	var p Problems
	if !errors.As(cfg.Validate(), &p) {
		t.Fatalf("no problems")
	}
	for _, path := range []string{"input.fields.text[0]", "input.fields.text[2]", "input.fields.text[3]", "input.fields.key",
		"output.mode", "output.enrich.field", "output.enrich.tags_field"} {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, path+": ") }) {
			t.Errorf("no problem reported for %s in %q", path, p)
		}
	}
	for _, s := range p {
		if strings.ContainsAny(s, "\n\x1b") {
			t.Errorf("problem not on one clean line: %q", s)
		}
	}
}

// TestSetFields: the keys take --set flags, as run's and annotate's.
func TestSetFields(t *testing.T) {
	cfg, err := LoadFrom("", Sources{Set: []string{"input.fields.text=/message,/error/detail", "output.mode=enrich", "output.enrich.field=/ner/entities", "output.enrich.tags=true"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Input.Fields.Text, []string{"/message", "/error/detail"}) || cfg.Output.Mode != "enrich" || cfg.Output.Enrich.Field != "/ner/entities" || !cfg.Output.Enrich.Tags {
		t.Errorf("loaded %+v %+v", cfg.Input.Fields, cfg.Output)
	}
}

// TestLogEnrichmentExample: examples/log-enrichment.yaml, which the README
// shows, passes config check as run needs it.
func TestLogEnrichmentExample(t *testing.T) {
	const path = "../examples/log-enrichment.yaml"
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateRun(); err != nil {
		t.Fatal(err)
	}
	if cfg.Output.Mode != "enrich" || len(cfg.Input.Fields.Text) == 0 || cfg.Input.Fields.Text[0] != "/message" {
		t.Errorf("the example is not the log enrichment one: %+v %+v", cfg.Input.Fields, cfg.Output)
	}
}
