package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
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
