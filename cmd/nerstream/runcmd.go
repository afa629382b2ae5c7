package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/stream"
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
	cfg, problems, err := cf.load(config.Config.ValidateRun)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return usagef("%s: %v (nerstream config check lists them)", cf.path, problems)
	}
	if *verbose {
		cfg.Log.Level = "debug"
	}
	log, tel, err := setupTelemetry(ctx, s, cfg.Log, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log)
	spec, opts := engines.FromConfig(cfg.Model)
	// What a bad model setting would stop is not started: no listener,
	// no "serving" line, before the spec is known to be loadable.
	if err := engines.Check(spec, opts); err != nil {
		_, err = checkModel("model.path", nil, err)
		return err
	}
	health := telemetry.NewHealth(telemetry.CheckModel, telemetry.CheckConsumerGroup, telemetry.CheckProducer)
	if err := telemetry.ObserveHealth(tel.Meter(), health); err != nil {
		return err
	}
	// The server starts first: /healthz answers, and /readyz says why not
	// ready, while the model loads.
	addr, stopServer, err := startServer(telemetry.ServerOptions{Address: cfg.HTTP.Address, Health: health, Metrics: tel.MetricsHandler(), Pprof: cfg.HTTP.Pprof, Logger: log})
	if err != nil {
		return listenError("http.address", cfg.HTTP.Address, "--set http.address=127.0.0.1:0 picks a free port, and an empty one serves no /healthz, /readyz or /metrics", err)
	}
	defer stopServer()
	if addr != "" {
		log.Info("http: serving /healthz /readyz /metrics", "address", addr, "pprof", cfg.HTTP.Pprof)
	}
	opts.Pull.Progress, opts.Pull.Bar = s.err, hub.IsTerminal(s.err)
	opts.Status = func(step string) { health.Set(telemetry.CheckModel, errors.New(step)) }
	opts.WrapTransport = tel.HTTPTransport // a trace continues into the GPU tier
	opts.Logger = log
	m, err := engines.Open(ctx, spec, opts)
	m, err = checkModel("model.path", m, err)
	if err != nil {
		return err
	}
	defer m.Close()
	if cfg.Model.Cache.Model, err = cacheIdentity(cfg.Model.Cache, m); err != nil {
		return err
	}
	devices := make([]string, len(m.Workers))
	for i, w := range m.Workers {
		devices[i] = w.Device
	}
	if err := telemetry.ObserveWorkers(tel.Meter(), devices); err != nil {
		return err
	}
	st, err := stream.New(cfg, m.Engine, stream.WithLogger(log), stream.WithTelemetry(tel, health), stream.WithModelName(m.Name))
	if err != nil {
		return usageError{err}
	}
	return st.Run(ctx)
}

// setupTelemetry makes the process's logger and telemetry. The SDK reports
// failed exports through OpenTelemetry's one process-wide error handler, by
// default the standard log package on stderr: they go to this process's
// log instead, as JSON like the rest.
func setupTelemetry(ctx context.Context, s streams, lc telemetry.LogConfig, tc telemetry.Options) (*slog.Logger, *telemetry.Telemetry, error) {
	log, err := telemetry.NewLogger(s.err, lc)
	if err != nil {
		return nil, nil, usageError{err}
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: export failed", "err", err)
	}))
	tel, err := telemetry.Setup(ctx, tc)
	if err != nil {
		return nil, nil, usagef("telemetry: %v", err)
	}
	return log, tel, nil
}

// shutdownTelemetry flushes what the exporters still hold.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry: flushing at exit failed", "err", err)
	}
}

// shutdownGrace bounds the flush of telemetry and the stop of the server.
const shutdownGrace = 5 * time.Second

// listenError is err, from listening on the address of setting, unless
// another program holds that address: then it is a runtime failure (exit
// 1) in one line that names the setting to change, with how (hint).
func listenError(setting, addr, hint string, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%s %q: %w: another program listens there; stop it or set another address (%s)", setting, addr, syscall.EADDRINUSE, hint)
}

// startServer starts the health, readiness and metrics server (and any
// routes of o), unless its address is empty. It returns the address it
// listens on, and stop, which ends it and returns its error.
func startServer(o telemetry.ServerOptions) (addr string, stop func() error, err error) {
	if o.Address == "" {
		return "", func() error { return nil }, nil
	}
	srv, err := telemetry.NewServer(o)
	if err != nil {
		return "", nil, usageError{err}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return srv.Addr(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(max(o.ShutdownTimeout, shutdownGrace) + time.Second):
			return errors.New("the server did not stop")
		}
	}, nil
}

// cacheIdentity is the model's identity for the result cache's keys, ""
// when the cache is off (a file is hashed only for a cache).
func cacheIdentity(c model.CacheOptions, m *engines.Model) (string, error) {
	if !c.Enabled() {
		return "", nil
	}
	return m.Identity()
}
