package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"unicode/utf8"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
)

// runPrompt prints the exact prompt, with no newline after it: the prompt
// ends at "ASSISTANT:", and anything more would not be the prompt.
func runPrompt(_ context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("prompt", flag.ContinueOnError)
	text := fs.String("text", "", "the passage (required)")
	typ := fs.String("type", "", "the entity type (required)")
	variant := fs.String("variant", "", "prompt variant: type, definition or supervised (default: the config's, else type)")
	dataset := fs.String("dataset", "", "dataset name, for the supervised variant")
	definition := fs.String("definition", "", "the sentence that defines --type, for the definition variant (default: the config's definition, else the type itself)")
	cfgPath := fs.String("config", "", "config file, for model.prompt settings")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	set := setFlags(fs)
	if !set["text"] || *text == "" {
		return usagef("--text is required")
	}
	if !set["type"] || *typ == "" {
		return usagef("--type is required")
	}
	if !utf8.ValidString(*text) || !utf8.ValidString(*typ) {
		return usagef("--text and --type must be valid UTF-8")
	}
	cfg := config.Default()
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return usageError{err}
		}
	}
	p := cfg.Model.Prompt
	if set["variant"] {
		p.Variant = model.Variant(*variant)
	}
	if set["dataset"] {
		p.Dataset = *dataset
	}
	if set["definition"] {
		p.Definitions = maps.Clone(p.Definitions)
		if p.Definitions == nil {
			p.Definitions = map[string]string{}
		}
		p.Definitions[*typ] = *definition
	}
	t, err := model.NewTemplate(p)
	if err != nil {
		return usageError{err}
	}
	if t.Variant() != model.VariantSupervised && set["dataset"] {
		return usagef("--dataset applies to the supervised variant only")
	}
	_, err = io.WriteString(s.out, t.Prompt(*text, *typ).String())
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("writing the prompt: %w", err)
	}
	return nil
}
