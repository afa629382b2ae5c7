package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
)

func runRun(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fset.String("config", "", "the YAML configuration (required)")
	verbose := fset.Bool("v", false, "log debug lines")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("--config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return usageError{err}
	}
	if err := cfg.ValidateRun(); err != nil {
		return usagef("%s: %v", *cfgPath, err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: level}))
	opts := llama.DefaultOptions()
	opts.Threads = cfg.Model.Threads
	opts.GPULayers = cfg.Model.GPULayers
	eng, name, err := openModel(cfg.Model.Path, opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	rec, err := model.NewRecognizer(eng, recognizerOptions(cfg.Model))
	if err != nil {
		return usageError{err}
	}
	m, err := newMember(cfg, rec, name, log)
	if err != nil {
		return err
	}
	log.Info("nerstream: running", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.GroupID, "topics", cfg.Input.Topics, "model", name)
	err = m.run(ctx)
	st := m.pipe.Stats()
	log.Info("nerstream: stopped", "fetched", st.Fetched, "annotated", st.Annotated, "dead_letters", st.DeadLetters, "abandoned", st.Abandoned)
	return err
}
