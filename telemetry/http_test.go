package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
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
