package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startServer starts a Server on a free port and stops it when the test
// ends, checking that Serve returned nil.
func startServer(t *testing.T, opts ServerOptions) string {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return "http://" + srv.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestServerRoutes(t *testing.T) {
	health := NewHealth(CheckModel)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "nerstream_up 1\n")
	})
	base := startServer(t, ServerOptions{Health: health, Metrics: metrics})

	steps := []struct {
		name     string
		set      func()
		method   string
		path     string
		wantCode int
		wantBody string // prefix
	}{
		{name: "healthz", method: http.MethodGet, path: "/healthz", wantCode: 200, wantBody: "ok\n"},
		{name: "healthz POST", method: http.MethodPost, path: "/healthz", wantCode: 405},
		{name: "readyz starting", method: http.MethodGet, path: "/readyz", wantCode: 503, wantBody: "model: starting\n"},
		{name: "readyz ready", set: func() { health.Set(CheckModel, nil) }, method: http.MethodGet, path: "/readyz", wantCode: 200, wantBody: "ready\n"},
		{name: "readyz failing", set: func() { health.Set(CheckModel, errors.New("oom")) }, method: http.MethodGet, path: "/readyz", wantCode: 503, wantBody: "model: oom\n"},
		{name: "healthz while not ready", method: http.MethodGet, path: "/healthz", wantCode: 200, wantBody: "ok\n"},
		{name: "metrics", method: http.MethodGet, path: "/metrics", wantCode: 200, wantBody: "nerstream_up 1\n"},
		{name: "pprof off", method: http.MethodGet, path: "/debug/pprof/", wantCode: 404},
		{name: "unknown", method: http.MethodGet, path: "/nope", wantCode: 404},
	}
	for _, s := range steps {
		if s.set != nil {
			s.set()
		}
		code, body := do(t, s.method, base+s.path)
		if code != s.wantCode || !strings.HasPrefix(body, s.wantBody) {
			t.Errorf("%s: %s %s → %d %q; want %d %q", s.name, s.method, s.path, code, body, s.wantCode, s.wantBody)
		}
	}
}

func TestServerDefaults(t *testing.T) {
	// No Health: always ready. No Metrics: 404.
	base := startServer(t, ServerOptions{})
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz without Health: %d %q; want 200 ready", code, body)
	}
	if code, _ := get(t, base+"/metrics"); code != 404 {
		t.Errorf("/metrics without Metrics: %d; want 404", code)
	}
}

func TestServerPprof(t *testing.T) {
	base := startServer(t, ServerOptions{Pprof: true, Logger: slog.New(slog.DiscardHandler)})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if code, body := get(t, base+path); code != 200 || body == "" {
			t.Errorf("%s: %d, %d bytes; want 200 and a body", path, code, len(body))
		}
	}
}

func TestServerWithTelemetryMetrics(t *testing.T) {
	clearOTelEnv(t)
	tel := mustSetup(t, Options{})
	c, err := tel.Meter().Int64Counter("nerstream.server.test")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 2)
	base := startServer(t, ServerOptions{Metrics: tel.MetricsHandler()})
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "nerstream_server_test_total 2\n") {
		t.Errorf("/metrics: %d, lacks nerstream_server_test_total 2:\n%s", code, body)
	}
}

func TestNewServerErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, addr := range []string{"256.1.1.1:x", "localhost:99999", busy.Addr().String()} {
		srv, err := NewServer(ServerOptions{Address: addr})
		if err == nil {
			srv.Close()
			t.Errorf("NewServer(%q) succeeded, want an error", addr)
			continue
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("NewServer(%q) error %q does not name the address", addr, err)
		}
	}
}

func TestServerServeReturnsOnCancel(t *testing.T) {
	srv, err := NewServer(ServerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	if code, _ := get(t, "http://"+srv.Addr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", srv.Addr()); err == nil {
		t.Error("the listener is still open after Serve returned")
	}
}

func TestServerClose(t *testing.T) {
	srv, err := NewServer(ServerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener is still open after Close")
	}
	if err := srv.Serve(context.Background()); err != nil {
		t.Errorf("Serve after Close: %v, want nil", err)
	}
}

func TestServerRoutesOption(t *testing.T) {
	base := startServer(t, ServerOptions{
		Health: NewHealth(),
		Routes: map[string]http.Handler{
			"POST /v1/echo": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				_, _ = w.Write(b)
			}),
		},
		WriteTimeout: 2 * time.Minute,
	})
	resp, err := http.Post(base+"/v1/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("POST /v1/echo = %d %q, want 200 \"hello\"", resp.StatusCode, body)
	}
	// The server's own routes are still there.
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/v1/echo"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/echo = %d, want 405", code)
	}
}

func TestServerRoutesOptionErrors(t *testing.T) {
	for name, routes := range map[string]map[string]http.Handler{
		"clash":      {"/readyz": http.NotFoundHandler()},
		"bad":        {"GET no-slash": http.NotFoundHandler()},
		"no handler": {"/x": nil},
	} {
		srv, err := NewServer(ServerOptions{Address: "127.0.0.1:0", Routes: routes})
		if err == nil {
			srv.Close()
			t.Errorf("%s: NewServer succeeded, want an error", name)
		}
	}
}

// TestServerShutdownTimeout: on cancel, a request in flight finishes when
// it takes less than ShutdownTimeout, and is cut (Serve reporting it) when
// it takes more.
func TestServerShutdownTimeout(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		wantDone bool
	}{
		{"drains", 5 * time.Second, true},
		{"cuts", 50 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			srv, err := NewServer(ServerOptions{Address: "127.0.0.1:0", ShutdownTimeout: tt.timeout,
				Routes: map[string]http.Handler{"/slow": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(entered)
					select {
					case <-release:
					case <-time.After(10 * time.Second):
					}
					_, _ = io.WriteString(w, "done")
				})}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx) }()
			answered := make(chan string, 1)
			go func() {
				resp, err := http.Get("http://" + srv.Addr() + "/slow")
				if err != nil {
					answered <- "error: " + err.Error()
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					answered <- "error: " + err.Error()
					return
				}
				answered <- string(b)
			}()
			<-entered
			cancel()
			if tt.wantDone {
				time.Sleep(200 * time.Millisecond) // the shutdown has begun and waits
				close(release)
				if got := <-answered; got != "done" {
					t.Errorf("in-flight request got %q, want it finished", got)
				}
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
				return
			}
			if err := <-served; err == nil {
				t.Error("Serve returned nil after cutting a request")
			}
			close(release)
			if got := <-answered; got == "done" {
				t.Error("the request finished: the shutdown timeout was not applied")
			}
		})
	}
}
