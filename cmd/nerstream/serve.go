package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/server"
	"github.com/nerstream/nerstream/telemetry"
)

// runServe is `nerstream serve`: the model behind the HTTP API of package
// server, with /healthz /readyz /metrics on the same port. Every check
// that needs no load, pull or server comes first (the flags, the
// calibration and token files, the model spec with engines.Check: a missing or refused file, a
// malformed reference or endpoint): a bad one exits 2 before anything
// listens. Then the server starts, before the model loads, which may take
// minutes (a pull): /healthz answers, /readyz says why it is not ready,
// and the API answers 503. Each API request is a server span
// that continues the caller's trace (traceparent), exported as the OTEL_*
// variables say. On SIGTERM, readiness turns false and requests in flight
// have --drain-timeout to finish before their connections close.
func runServe(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	d := server.DefaultOptions()
	// Declared before the engine flags, --request-timeout bounds a whole
	// request here, not the openai engine's requests.
	timeout := fset.Duration("request-timeout", d.Timeout, "longest a request may take to generate")
	ef := engines.Flags{MaxNewTokens: d.MaxNewTokens}
	ef.Register(fset, "the model to serve (required)")
	listen := fset.String("listen", "127.0.0.1:8081", "address to serve on, host:port (port 0 picks a free one)")
	tokenFile := fset.String("token-file", "", "file holding the bearer token that API requests must carry (default: none needed)")
	maxBody := fset.Int64("max-body-bytes", d.MaxBodyBytes, "largest request body")
	maxText := fset.Int("max-text-bytes", d.MaxTextBytes, "largest document text or prompt")
	maxTypes := fset.Int("max-types", d.MaxTypes, "most entity types per document")
	maxPrompts := fset.Int("max-prompts", d.MaxPrompts, "most prompts per completions request")
	maxDocs := fset.Int("max-docs", d.MaxDocs, "most documents per annotate request")
	types := fset.String("types", "person,organization,location", "entity types for documents that name none, comma-separated")
	maxInFlight := fset.Int("max-in-flight", d.MaxInFlight, "most API requests at once; more get 429 with Retry-After, so that clients go to another worker")
	drain := fset.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight have to finish")
	bodyTimeout := fset.Duration("body-timeout", d.BodyTimeout, "longest a request body may take to arrive (it is read before the request takes an in-flight slot)")
	pprof := fset.Bool("pprof", false, "serve net/http/pprof under /debug/pprof/")
	cache := registerCacheFlags(fset)
	var scores scoreFlags
	scores.register(fset)
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if ef.Model == "" && ef.Engine != "openai" {
		return usagef("--model is required")
	}
	if ef.MaxNewTokens <= 0 || *maxBody <= 0 || *maxText <= 0 || *maxTypes <= 0 || *maxPrompts <= 0 || *maxDocs <= 0 || *timeout <= 0 || *maxInFlight <= 0 || *drain <= 0 || *bodyTimeout <= 0 {
		return usagef("--max-new-tokens, --max-body-bytes, --max-text-bytes, --max-types, --max-prompts, --max-docs, --max-in-flight, --request-timeout, --body-timeout and --drain-timeout must be > 0")
	}
	if err := checkCacheFlags(*cache); err != nil {
		return err
	}
	if err := checkScores("--min-score", scores.minScore, "--calibration", scores.calibration); err != nil {
		return err
	}
	opts := server.Options{Cache: *cache, MinScore: scores.minScore, Calibration: scores.calibration,
		MaxNewTokens: ef.MaxNewTokens, MaxBodyBytes: *maxBody, MaxTextBytes: *maxText, MaxTypes: *maxTypes,
		MaxPrompts: *maxPrompts, MaxDocs: *maxDocs, Timeout: *timeout, Types: splitList(*types), MaxInFlight: *maxInFlight,
		BodyTimeout: *bodyTimeout,
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return usagef("--token-file: %v", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return usagef("--token-file: %s is empty", *tokenFile)
		}
		opts.Token = []byte(tok)
	}
	if err := checkModelFlags(&ef); err != nil {
		return err
	}
	log, tel, err := setupTelemetry(ctx, s, telemetry.DefaultLogConfig(), telemetry.Options{})
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log)
	if opts.Metrics, err = telemetry.NewMetrics(tel.Meter()); err != nil {
		return err
	}
	opts.Logger = log
	api, err := server.New(opts)
	if err != nil {
		return usageError{err}
	}
	health := telemetry.NewHealth(telemetry.CheckModel)
	routes := api.Routes()
	for p, h := range routes {
		routes[p] = tel.HTTPHandler(h) // a server span per request
	}
	addr, stop, err := startServer(telemetry.ServerOptions{
		Address: *listen, Health: health, Metrics: tel.MetricsHandler(), Pprof: *pprof, Logger: log,
		Routes: routes, WriteTimeout: *bodyTimeout + *timeout + 30*time.Second, ShutdownTimeout: *drain,
	})
	if err != nil {
		return listenError("--listen", *listen, "--listen 127.0.0.1:0 picks a free port", err)
	}
	log.Info("serve: listening", "address", addr, "auth", opts.Token != nil)
	m, err := openModel(ctx, &ef, s.err, func(o *engines.Options) {
		o.Status = func(step string) { health.Set(telemetry.CheckModel, errors.New(step)) }
		o.WrapTransport, o.Logger = tel.HTTPTransport, log
	})
	if err != nil {
		_ = stop()
		return err
	}
	defer m.Close()
	if err := api.SetModel(m.Engine, m.Name); err != nil {
		_ = stop()
		return usageError{err}
	}
	observeCache(opts.Metrics, api.Cache())
	if q, ok := m.Engine.(interface{ QueueDepth() int64 }); ok {
		opts.Metrics.ObserveEngineQueue(q.QueueDepth)
	}
	health.Set(telemetry.CheckModel, nil)
	log.Info("serve: ready", "model", m.Name, "context_tokens", m.Engine.ContextTokens(), "max_new_tokens", opts.MaxNewTokens,
		"min_score", opts.MinScore, "calibrated", opts.Calibration != "")
	<-ctx.Done()
	health.Set("shutdown", errors.New("stopping"))
	log.Info("serve: stopping", "in_flight", api.InFlight(), "drain_timeout", *drain)
	if err := stop(); err != nil {
		log.Warn("serve: stopping the server", "err", err)
	}
	log.Info("serve: stopped")
	return nil
}
