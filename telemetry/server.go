package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/nerstream/nerstream/internal/problems"
)

// DefaultAddress is where [NewServer] listens when [ServerOptions.Address] is
// empty.
const DefaultAddress = ":8080"

// defaultShutdownTimeout bounds the graceful stop of [Server.Serve] when
// [ServerOptions.ShutdownTimeout] is not set.
const defaultShutdownTimeout = 5 * time.Second

// HTTPConfig is the http section of the configuration: the server of
// /healthz, /readyz, /metrics and, when enabled, /debug/pprof.
type HTTPConfig struct {
	// Address is where the server listens, host:port. Default: ":8080".
	// "" turns the server off.
	Address string `yaml:"address"`
	// Pprof serves Go's profiler under /debug/pprof/. Default: false: it
	// shows the process's internals, and a profile costs CPU while it
	// runs.
	Pprof bool `yaml:"pprof"`
	// ReadinessInterval is how often readiness checks the brokers when no
	// write has shown they work. Default: 5s.
	ReadinessInterval time.Duration `yaml:"readiness_interval"`
}

// DefaultHTTPConfig returns the http settings of a process.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Address: ":8080", ReadinessInterval: 5 * time.Second}
}

// Validate reports every problem of the settings, at their YAML keys.
func (c HTTPConfig) Validate() error {
	var p problems.List
	if a := c.Address; a != "" && !strings.Contains(a, ":") {
		p.Addf("address", "%q is not host:port (\":8080\", \"127.0.0.1:8080\")", a)
	}
	problems.Positive(&p, "readiness_interval", c.ReadinessInterval)
	return p.Err()
}

// ServerOptions configures [NewServer].
type ServerOptions struct {
	// Address to listen on, host:port. "127.0.0.1:0" picks a free port
	// (tests); [Server.Addr] tells which.
	//
	// Default "": ":8080", every interface.
	Address string

	// Health answers /readyz, the probe that takes the pod out of service
	// while the model loads or Kafka is unreachable.
	//
	// Default nil: always ready.
	Health *Health

	// Metrics answers /metrics, usually [Telemetry.MetricsHandler].
	//
	// Default nil: /metrics is 404.
	Metrics http.Handler

	// Pprof mounts net/http/pprof under /debug/pprof/.
	//
	// Default false: profiles expose the process's internals (command line,
	// symbols, memory) and cost CPU while taken, so they are opt-in.
	Pprof bool

	// Logger receives the server's own errors (bad requests, failed
	// accepts) and its start and stop.
	//
	// Default nil: nothing is logged.
	Logger *slog.Logger

	// Routes are more handlers on the same server, keyed by their
	// http.ServeMux pattern ("/v1/completions", "POST /v1/annotate"). A
	// pattern that clashes with the server's own routes makes NewServer
	// fail.
	//
	// Default nil: the operational endpoints only.
	Routes map[string]http.Handler

	// WriteTimeout bounds the time to answer one request, body read
	// included. Routes that generate text need more than scrapes and
	// probes do.
	//
	// Default 0: one minute.
	WriteTimeout time.Duration

	// ShutdownTimeout bounds the graceful stop once Serve's context ends:
	// requests in flight have this long to finish, then their
	// connections are closed.
	//
	// Default 0: 5 seconds. Scrapes and probes are short, and a stuck one
	// must not hold up the process's exit; routes that generate text need
	// more (nerstream serve's --drain-timeout).
	ShutdownTimeout time.Duration
}

// Server serves the operational endpoints: /healthz (liveness), /readyz
// (readiness), /metrics and, when enabled, /debug/pprof/.
type Server struct {
	ln       net.Listener
	srv      *http.Server
	logger   *slog.Logger
	shutdown time.Duration
}

// NewServer listens on opts.Address right away, so that a bad or busy
// address fails here and [Server.Addr] is known before [Server.Serve].
func NewServer(opts ServerOptions) (*Server, error) {
	addr := opts.Address
	if addr == "" {
		addr = DefaultAddress
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/readyz", opts.Health.Handler())
	if opts.Metrics != nil {
		mux.Handle("/metrics", opts.Metrics)
	}
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}

	if err := addRoutes(mux, opts.Routes); err != nil {
		return nil, err
	}
	writeTimeout := opts.WriteTimeout
	if writeTimeout <= 0 {
		// Long enough for a 30s CPU profile or trace (pprof refuses
		// durations past WriteTimeout), short enough to drop stuck
		// clients.
		writeTimeout = time.Minute
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: listening on %q: %w", addr, err)
	}
	shutdown := opts.ShutdownTimeout
	if shutdown <= 0 {
		shutdown = defaultShutdownTimeout
	}
	return &Server{
		ln:       ln,
		logger:   logger,
		shutdown: shutdown,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}, nil
}

// addRoutes registers routes on mux, in the order of their patterns, and
// turns the panic of a bad or clashing pattern into an error.
func addRoutes(mux *http.ServeMux, routes map[string]http.Handler) (err error) {
	patterns := make([]string, 0, len(routes))
	for p := range routes {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	for _, p := range patterns {
		if routes[p] == nil {
			return fmt.Errorf("telemetry: route %q has no handler", p)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("telemetry: route %q: %v", p, r)
				}
			}()
			mux.Handle(p, routes[p])
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// Addr returns the address the server listens on, with the port it got.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down gracefully, giving in-flight
// requests up to [ServerOptions.ShutdownTimeout]. It returns nil after a clean stop, and an error
// if serving fails or the stop is not clean. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	s.logger.DebugContext(ctx, "telemetry server listening", "address", s.Addr())
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("telemetry: serving on %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdown)
	defer cancel()
	err := s.srv.Shutdown(stopCtx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-errc // http.ErrServerClosed once Shutdown or Close has begun.
	if err != nil {
		return fmt.Errorf("telemetry: shutting down server on %s: %w", s.Addr(), err)
	}
	s.logger.DebugContext(ctx, "telemetry server stopped", "address", s.Addr())
	return nil
}

// Close stops the server at once, closing its listener and connections. It
// is for a Server whose Serve was never called (e.g. startup failed after
// NewServer); Serve stops on its own when its ctx ends.
func (s *Server) Close() error {
	err := s.srv.Close()
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("telemetry: closing server on %s: %w", s.Addr(), err)
	}
	return nil
}
