package telemetry

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestHTTPTraceContinues: a request through HTTPTransport, answered by a
// handler wrapped in HTTPHandler in another process's telemetry, makes a
// client span that is the caller's child and a server span that is the
// client span's child, in one trace.
func TestHTTPTraceContinues(t *testing.T) {
	clearOTelEnv(t)
	clientExp, serverExp := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	client := mustSetup(t, Options{SpanExporter: clientExp})
	server := mustSetup(t, Options{SpanExporter: serverExp})

	var seen trace.SpanContext
	mux := http.NewServeMux()
	mux.Handle("/v1/completions", server.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		_, _ = io.WriteString(w, "ok")
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, parent := client.Tracer().Start(t.Context(), "infer")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: client.HTTPTransport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	parent.End()

	var clientSpan, serverSpan tracetest.SpanStub
	for _, s := range clientExp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			clientSpan = s
		}
	}
	for _, s := range serverExp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			serverSpan = s
		}
	}
	if !clientSpan.SpanContext.IsValid() || !serverSpan.SpanContext.IsValid() {
		t.Fatalf("client spans %d, server spans %d: want one of each kind", len(clientExp.GetSpans()), len(serverExp.GetSpans()))
	}
	if clientSpan.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent %s, want the caller's span %s", clientSpan.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	if serverSpan.SpanContext.TraceID() != parent.SpanContext().TraceID() || serverSpan.Parent.SpanID() != clientSpan.SpanContext.SpanID() {
		t.Errorf("server span in trace %s with parent %s; want trace %s, parent %s",
			serverSpan.SpanContext.TraceID(), serverSpan.Parent.SpanID(), parent.SpanContext().TraceID(), clientSpan.SpanContext.SpanID())
	}
	if serverSpan.Name != "POST /v1/completions" || seen.SpanID() != serverSpan.SpanContext.SpanID() {
		t.Errorf("server span %q (%s); the handler saw %s", serverSpan.Name, serverSpan.SpanContext.SpanID(), seen.SpanID())
	}
}

// TestHTTPServerMetricsBounded: no request chooses a label value of the
// http.server.* metrics. Reproduction of the defect: otelhttp recorded the
// Host header as server.address and server.port (and the request line's
// version as network.protocol.version), outside the bearer check, so
// 20,000 requests with random Host headers, all answered 401, grew
// /metrics from 8.9 KB to 28.7 MB, and then the 2,000-series cap put real
// traffic under otel_metric_overflow. Here, requests with random Host
// headers, methods, paths, user agents and HTTP/1.x versions, after a first
// round of each shape, add no series, and none of their values is a label.
func TestHTTPServerMetricsBounded(t *testing.T) {
	clearOTelEnv(t)
	tel := mustSetup(t, Options{})
	// The shape of nerstream serve: one POST route behind a bearer
	// check, and a JSON 404 for the rest of /v1/, each wrapped on its own.
	mux := http.NewServeMux()
	mux.Handle("/v1/completions", tel.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodPost:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.Header.Get("Authorization") != "Bearer secret":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	})))
	mux.Handle("/v1/", tel.HTTPHandler(http.NotFoundHandler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// send writes one request on a connection of its own and reads the
	// answer to its end: the handler, and so the recording, is done.
	sent := 0
	send := func(method, path, host, proto, agent string, auth bool) {
		t.Helper()
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := method + " " + path + " " + proto + "\r\nHost: " + host + "\r\nUser-Agent: " + agent + "\r\nContent-Length: 2\r\nConnection: close\r\n"
		if auth {
			req += "Authorization: Bearer secret\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n{}"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s %s %s (Host %q): %v", method, path, proto, host, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sent++
	}
	rng := rand.New(rand.NewPCG(16, 4))
	word := func(prefix string) string { return fmt.Sprintf("%s%x", prefix, rng.Uint64()) }
	var chosen []string // the values the clients chose
	round := func(n int) {
		for range n {
			host := word("h") + ".example:" + strconv.Itoa(1+rng.IntN(65535))
			agent, method, path := word("agent-"), word("M"), "/v1/"+word("p")
			chosen = append(chosen, host, agent, method, path)
			proto := fmt.Sprintf("HTTP/1.%d", rng.IntN(10))
			send(http.MethodPost, "/v1/completions", host, proto, agent, true)  // 200
			send(http.MethodPost, "/v1/completions", host, proto, agent, false) // 401
			send(http.MethodGet, "/v1/completions", host, proto, agent, false)  // 405
			send(method, "/v1/completions", host, proto, agent, false)          // 405, _OTHER
			send(http.MethodGet, path, host, proto, agent, false)               // 404
		}
	}
	// series returns the label sets of http.server.request.duration.
	series := func() map[string]bool {
		t.Helper()
		out, total := map[string]bool{}, 0
		for line := range strings.Lines(scrape(t, tel.MetricsHandler())) {
			name, rest, ok := strings.Cut(line, "{")
			if !ok || name != "http_server_request_duration_seconds_count" {
				continue
			}
			labels, value, _ := strings.Cut(rest, "} ")
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			out[labels] = true
			total += n
		}
		if total != sent {
			t.Fatalf("%d requests recorded, %d sent", total, sent)
		}
		return out
	}
	round(1)
	first := series()
	round(60)
	second := series()
	if len(second) != len(first) {
		t.Errorf("%d series after 5 requests, %d after %d: requests choose labels; new ones:", len(first), len(second), sent)
		n := 0
		for s := range second {
			if !first[s] && n < 5 {
				t.Errorf("  {%s}", s)
				n++
			}
		}
	}
	allowed := map[string]bool{"http_request_method": true, "http_response_status_code": true, "http_route": true, "url_scheme": true, "error_type": true}
	body := scrape(t, tel.MetricsHandler())
	reported := map[string]bool{}
	for s := range second {
		for pair := range strings.SplitSeq(s, ",") {
			key, value, _ := strings.Cut(pair, "=")
			if !allowed[key] && !reported[key] {
				reported[key] = true
				t.Errorf("label %s in {%s}", key, s)
			}
			if key == "http_request_method" && !slices.Contains([]string{`"GET"`, `"POST"`, `"_OTHER"`}, value) {
				t.Errorf("method label %s: an unknown method is not _OTHER", value)
			}
		}
	}
	for _, v := range chosen {
		if strings.Contains(body, v) {
			t.Fatalf("/metrics holds %q, a value a client chose", v)
		}
	}
}

// TestHTTPTransportRedactsURL is a regression test of issue 16's finding
// that spans showed secrets. Reproduction, before the fix: a request
// through HTTPTransport to https://HOST/PATH?sig=… (an endpoint or a
// download with a key in its query) gave its client span the attribute
// url.full with the whole query: otelhttp v0.72 drops a user name and
// password only. Now url.full is the address with its query values and
// fragment REDACTED, and so is an error recorded on the span.
func TestHTTPTransportRedactsURL(t *testing.T) {
	clearOTelEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name, url, wantURL string
		wantErr            bool
	}{
		{"query", srv.URL + "/v1/completions?api_key=KEYSECRET&sig=SIGSECRET",
			srv.URL + "/v1/completions?api_key=REDACTED&sig=REDACTED", false},
		{"user information", "http://user:PASSSECRET@" + host + "/v1/completions",
			"http://REDACTED:REDACTED@" + host + "/v1/completions", false},
		{"nothing to hide", srv.URL + "/v1/completions", srv.URL + "/v1/completions", false},
		{"failed request", closed.URL + "/v1/completions?token=TOKSECRET", closed.URL + "/v1/completions?token=REDACTED", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tel := mustSetup(t, Options{SpanExporter: exp})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tel.HTTPTransport(nil)}).Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v", err, tt.wantErr)
			}
			if resp != nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			var full []string
			for _, a := range spans[0].Attributes {
				if a.Key == "url.full" {
					full = append(full, a.Value.AsString())
				}
				if strings.Contains(a.Value.Emit(), "SECRET") {
					t.Errorf("attribute %s = %q shows a secret", a.Key, a.Value.Emit())
				}
			}
			if len(full) != 1 || full[0] != tt.wantURL {
				t.Errorf("url.full %q, want %q", full, tt.wantURL)
			}
			for _, ev := range spans[0].Events {
				for _, a := range ev.Attributes {
					if strings.Contains(a.Value.Emit(), "SECRET") {
						t.Errorf("event %s attribute %s = %q shows a secret", ev.Name, a.Key, a.Value.Emit())
					}
				}
			}
			if strings.Contains(spans[0].Status.Description, "SECRET") {
				t.Errorf("status %q shows a secret", spans[0].Status.Description)
			}
		})
	}
}
