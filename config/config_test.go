package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
				return c.Model.Path == "m.gguf" && slices.Equal(c.Model.EntityTypes, []string{"person", "organization"}) &&
					c.Model.Parse == "official" && c.Model.Prompt.Definitions["person"] == "a human" &&
					c.Model.MaxNewTokens == 256 // untouched default
			}, ""},
		{"unknown key", "model:\n  pth: m.gguf\n", nil, "pth"},
		{"wrong type", "model:\n  max_new_tokens: lots\n", nil, "line 2"},
		{"not yaml", "model: [\n", nil, "config"},
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
	cfg.Model.MaxEntityTypes = -1
	cfg.Model.WindowTokens = -5
	cfg.Model.EntityTypes = []string{"person", " "}
	err := cfg.Validate()
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want Problems", err)
	}
	for _, path := range []string{"model.prompt.dataset", "model.prompt.supervised_format", "model.parse", "model.max_new_tokens",
		"model.max_entity_types", "model.window_tokens", "model.entity_types[1]"} {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, path+": ") }) {
			t.Errorf("no problem reported for %s in %q", path, p)
		}
	}
	if len(p) != 7 {
		t.Errorf("%d problems, want 7: %q", len(p), p)
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
