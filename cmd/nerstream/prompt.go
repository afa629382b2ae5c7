package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"unicode/utf8"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
)

// runPrompt prints the exact prompt, with no newline after it: the prompt
// ends at "ASSISTANT:", and anything more would not be the prompt. With
// --tokens it prints the prompt's tokens instead, one a line.
func runPrompt(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("prompt", flag.ContinueOnError)
	text := fs.String("text", "", "the passage (required)")
	typ := fs.String("type", "", "the entity type (required)")
	variant := fs.String("variant", "", "prompt variant: type, definition or supervised (default: the config's, else type)")
	dataset := fs.String("dataset", "", "dataset name, for the supervised variant")
	definition := fs.String("definition", "", "the sentence that defines --type, for the definition variant (default: the config's definition, else the type itself)")
	cfgPath := fs.String("config", "", "config file, for model.prompt settings")
	tokens := fs.Bool("tokens", false, "print the prompt's tokens instead, as the in-process engine decodes them, one a line: the id, the vocabulary's spelling of the token and the text it stands for, both quoted as Go strings (\"▁US\", \" US\"; \"<0x0A>\", \"\\n\"); needs --vocab or --model")
	vocab := fs.String("vocab", "", "with --tokens: the GGUF file whose vocabulary tokenizes the prompt (a vocabulary-only file such as llama.cpp's ggml-vocab-llama-spm.gguf, or a model file)")
	modelSpec := fs.String("model", "", "with --tokens: the model whose vocabulary tokenizes the prompt, as a model SPEC (a GGUF file, synth:PRESET, hf://… or https://…, pulled into the model cache); only its vocabulary is loaded")
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
	switch {
	case *tokens && set["vocab"] == set["model"]:
		return usagef("--tokens needs one of --vocab F.gguf and --model SPEC")
	case !*tokens && (set["vocab"] || set["model"]):
		return usagef("--vocab and --model apply with --tokens only")
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
	prompt := t.Prompt(*text, *typ)
	if *tokens {
		setting, spec := "--vocab", *vocab
		if set["model"] {
			setting, spec = "--model", *modelSpec
		}
		return printTokens(ctx, s, prompt, setting, spec)
	}
	_, err = io.WriteString(s.out, prompt.String())
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("writing the prompt: %w", err)
	}
	return nil
}

// printTokens loads the vocabulary of the model that spec names (given as
// setting) and prints the prompt's tokens, one a line: the id, the
// token's spelling and its text, tab-separated, both quoted.
func printTokens(ctx context.Context, s streams, prompt model.Prompt, setting, spec string) error {
	m, err := engines.OpenTokenizer(ctx, spec, engines.Options{
		Pull: hub.Options{Progress: s.err, Bar: hub.IsTerminal(s.err)},
	})
	if m, err = checkModel(setting, m, err); err != nil {
		return err
	}
	defer m.Close()
	if m.Local == nil {
		return fmt.Errorf("%s: %q opened no in-process vocabulary", setting, spec)
	}
	toks, err := m.Local.PromptTokens(prompt)
	if err != nil {
		return fmt.Errorf("tokenizing the prompt: %w", err)
	}
	w := bufio.NewWriter(s.out)
	for _, tok := range toks {
		fmt.Fprintf(w, "%d\t%q\t%q\n", tok.ID, tok.Spelling, tok.Piece)
	}
	if err := w.Flush(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("writing the tokens: %w", err)
	}
	return nil
}
