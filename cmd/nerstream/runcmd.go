package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
	"github.com/nerstream/nerstream/telemetry"
)

func runRun(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	var cf configFlags
	cf.register(fset, true)
	verbose := fset.Bool("v", false, "log debug lines (log.level: debug)")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if cf.path == "" {
		return usagef("--config is required")
	}
	cfgPath := &cf.path
	cfg, problems, err := cf.load(config.Config.ValidateRun)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return usagef("%s: %v (nerstream config check lists them)", *cfgPath, problems)
	}
	if *verbose {
		cfg.Log.Level = "debug"
	}
	log, err := newLogger(s, cfg.Log)
	if err != nil {
		return usageError{err}
	}
	// The SDK reports failed exports through OpenTelemetry's one
	// process-wide error handler, by default the standard log package on
	// stderr: route them to this process's log, as JSON like the rest.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: export failed", "err", err)
	}))
	tel, err := telemetry.Setup(ctx, telemetryOptions(cfg.Telemetry))
	if err != nil {
		return usagef("%s: telemetry: %v", *cfgPath, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry: flushing at exit failed", "err", err)
		}
	}()
	health := telemetry.NewHealth(telemetry.CheckModel, telemetry.CheckConsumerGroup, telemetry.CheckProducer)
	obs, err := newObservability(tel, health)
	if err != nil {
		return err
	}
	// The server starts first: /healthz answers, and /readyz says why not
	// ready, while the model loads.
	stopServer, err := serveHTTP(cfg.HTTP, health, tel, log)
	if err != nil {
		return err
	}
	defer stopServer()

	eng, name, err := openConfiguredEngine(ctx, cfg.Model, s, log, health, tel)
	if err != nil {
		return err
	}
	defer eng.Close()
	rec, err := model.NewRecognizer(eng, recognizerOptions(cfg.Model))
	if err != nil {
		return usageError{err}
	}
	health.Set(telemetry.CheckModel, nil)
	if q, ok := eng.(interface{ QueueDepth() int64 }); ok {
		obs.metrics.ObserveEngineQueue(q.QueueDepth)
	}
	m, err := newMember(cfg, rec, name, log, obs)
	if err != nil {
		return err
	}
	log.Info("nerstream: running", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.GroupID, "topics", cfg.Input.Topics, "model", name)
	go func() {
		<-ctx.Done()
		health.Set("shutdown", errors.New("stopping"))
	}()
	err = m.run(ctx)
	st := m.pipe.Stats()
	log.Info("nerstream: stopped", "fetched", st.Fetched, "annotated", st.Annotated, "dead_letters", st.DeadLetters, "abandoned", st.Abandoned)
	return err
}

// newLogger is the process's logger on standard error, as the log section
// says.
func newLogger(s streams, c config.Log) (*slog.Logger, error) {
	level, err := telemetry.ParseLogLevel(c.Level)
	if err != nil {
		return nil, err
	}
	h, err := telemetry.NewLogHandler(s.err, telemetry.LogOptions{Level: level, Format: c.Format})
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// telemetryOptions maps the telemetry section to the providers' options.
func telemetryOptions(c config.Telemetry) telemetry.Options {
	return telemetry.Options{
		Exporter:           c.Exporter,
		Endpoint:           c.Endpoint,
		Insecure:           c.Insecure,
		CAFile:             c.CAFile,
		CertFile:           c.CertFile,
		KeyFile:            c.KeyFile,
		Headers:            c.Headers,
		SamplingRatio:      c.SamplingRatio,
		ServiceName:        c.ServiceName,
		ResourceAttributes: c.ResourceAttributes,
		MetricInterval:     c.MetricInterval,
	}
}

// serveHTTP starts the health, readiness and metrics server, unless the
// address is empty. stop ends it.
func serveHTTP(c config.HTTP, health *telemetry.Health, tel *telemetry.Telemetry, log *slog.Logger) (stop func(), err error) {
	if c.Address == "" {
		return func() {}, nil
	}
	srv, err := telemetry.NewServer(telemetry.ServerOptions{
		Address: c.Address, Health: health, Metrics: tel.MetricsHandler(), Pprof: c.Pprof, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			log.Error("http: server failed", "err", err)
		}
	}()
	log.Info("http: serving /healthz /readyz /metrics", "address", srv.Addr(), "pprof", c.Pprof)
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(shutdownGrace):
		}
	}, nil
}

// closingEngine is an engine that holds resources until closed.
type closingEngine interface {
	model.Engine
	Close() error
}

// openConfiguredEngine opens the engine that the model section names:
// the in-process llama.cpp engine on model.path (pulled into the cache
// first when it is a reference), or the openai engine on
// model.openai.endpoints. It returns the name that annotations carry.
// The openai engine's requests are client spans of tel (nil: none), so
// that a trace continues into the GPU tier.
func openConfiguredEngine(ctx context.Context, m config.Model, s streams, log *slog.Logger, health *telemetry.Health, tel *telemetry.Telemetry) (closingEngine, string, error) {
	if m.Engine == "openai" {
		o := m.OpenAI
		var client *http.Client
		if tel != nil {
			client = &http.Client{Transport: tel.HTTPTransport(openai.NewTransport(o.MaxInFlightPerEndpoint))}
		}
		eng, err := openai.New(openai.Options{
			Endpoints: o.Endpoints, Model: o.Model, APIKey: o.APIKey, APIKeyFile: o.APIKeyFile,
			Dialect: openai.Dialect(o.Dialect), Routing: openai.Routing(o.Routing),
			MaxInFlightPerEndpoint: o.MaxInFlightPerEndpoint, Timeout: o.Timeout,
			HTTPClient: client,
		})
		if err != nil {
			return nil, "", usagef("model.openai: %v", err)
		}
		name := o.Model
		switch {
		case m.Path != "":
			name = filepath.Base(m.Path)
		case name == "":
			name = "openai"
		}
		log.Info("model: remote", "endpoints", o.Endpoints, "dialect", o.Dialect)
		return eng, name, nil
	}
	eng, name, err := pullAndLoad(ctx, s, log, health, "model.path", m.Path, m.Threads, m.GPULayers)
	if err != nil {
		return nil, "", err
	}
	return eng, name, nil
}

// pullAndLoad loads the in-process engine on path, pulling it into the
// model cache first when it is a reference; field names the setting in
// errors. health's model check says which step it is in.
func pullAndLoad(ctx context.Context, s streams, log *slog.Logger, health *telemetry.Health, field, path string, threads, gpuLayers int) (*llama.Engine, string, error) {
	if hub.IsRef(path) {
		health.Set(telemetry.CheckModel, errors.New("pulling "+path))
		local, err := hub.Resolve(ctx, path, hub.Options{Progress: s.err, Bar: hub.IsTerminal(s.err)})
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", field, err)
		}
		log.Info("model: in the cache", "ref", path, "path", local)
		path = local
	}
	health.Set(telemetry.CheckModel, errors.New("loading "+path))
	opts := llama.DefaultOptions()
	opts.Threads = threads
	opts.GPULayers = gpuLayers
	return openModel(path, opts)
}
