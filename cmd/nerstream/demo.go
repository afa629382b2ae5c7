package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/demo"
	"github.com/nerstream/nerstream/internal/redact"
	"github.com/nerstream/nerstream/model/hub"
)

func runDemo(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	ef := engines.Flags{Model: hub.DefaultModelRef, MaxNewTokens: 64}
	ef.Register(fset, "the model (default: "+hub.DefaultModelRef+"; synth:tiny for a synthetic one)")
	asJSON := fset.Bool("json", false, "print the output records as they are, one JSON per line")
	timeout := fset.Duration("timeout", 10*time.Minute, "give up after this long")
	verbose := fset.Bool("v", false, "log the member's warnings and group events")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// A model reference is pulled into the cache on first use; the line
	// that says so goes to standard output, beside the annotations.
	m, err := openModel(ctx, &ef, s.out, nil)
	if err != nil {
		if errors.Is(err, engines.ErrSpec) || ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("getting the model %s: %w; pass --model FILE.gguf, or try the demo now with --model synth:tiny (random weights: its entities are meaningless)", redact.String(ef.Model), err)
	}
	defer m.Close()
	return demo.Run(ctx, m.Engine, m.Name, demo.Options{MaxNewTokens: ef.MaxNewTokens, JSON: *asJSON, Verbose: *verbose, Out: s.out, Err: s.err})
}
