package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"strings"

	"github.com/nerstream/nerstream/model/gguf"
)

// runModel dispatches `nerstream model synth|info|pull`.
func runModel(ctx context.Context, s streams, args []string) error {
	if len(args) == 0 {
		return usagef("want a sub-command: synth, info or pull")
	}
	switch args[0] {
	case "synth":
		return runModelSynth(ctx, s, args[1:])
	case "info":
		return runModelInfo(ctx, s, args[1:])
	case "pull":
		return runModelPull(ctx, s, args[1:])
	case "-h", "--help", "help":
		return flag.ErrHelp
	}
	return usagef("unknown sub-command %q (want synth, info or pull)", args[0])
}

func runModelSynth(_ context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("model synth", flag.ContinueOnError)
	preset := fset.String("preset", "tiny", "tiny (tests), small (CPU benchmarks) or 7b (UniNER-7B shapes)")
	typ := fset.String("type", "f16", "weight type: f32, f16 or q8_0")
	vocab := fset.String("vocab", "", "copy the tokenizer of this GGUF file (e.g. LLaMA's ggml-vocab-llama-spm.gguf)")
	seed := fset.Uint64("seed", 1, "seed of the random weights")
	out := fset.String("out", "", "the GGUF file to write (required)")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	opts := gguf.SynthOptions{Preset: *preset, Seed: *seed}
	switch strings.ToLower(*typ) {
	case "f32":
		opts.Type = gguf.TypeF32
	case "f16":
		opts.Type = gguf.TypeF16
	case "q8_0":
		opts.Type = gguf.TypeQ8_0
	default:
		return usagef("--type %q: want f32, f16 or q8_0", *typ)
	}
	if _, err := gguf.PresetShapes(*preset); err != nil {
		return usageError{err}
	}
	if *vocab != "" {
		f, err := gguf.Open(*vocab)
		if err != nil {
			return usagef("--vocab: %v", err)
		}
		if opts.Vocab, err = gguf.ReadVocab(f); err != nil {
			return usagef("--vocab: %v", err)
		}
	}
	if err := gguf.SynthFile(*out, opts); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return usagef("--out: %v", err)
		}
		return err
	}
	return nil
}

func runModelInfo(_ context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("model info", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print JSON")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one GGUF file")
	}
	f, err := gguf.Open(pos[0])
	if err != nil {
		if errors.Is(err, gguf.ErrFormat) || errors.Is(err, os.ErrNotExist) {
			return usageError{err}
		}
		return err
	}
	info := gguf.Describe(f)
	if *asJSON {
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	return info.WriteText(s.out, pos[0])
}
