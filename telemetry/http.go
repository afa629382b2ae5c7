package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/internal/redact"
)

// HTTPTransport wraps base (nil: [http.DefaultTransport]) so that each
// request is a client span, a child of the span in the request's context,
// whose context goes to the server in the traceparent header; and so that
// the http.client.* metrics are recorded. The openai engine's requests to a
// GPU tier go through it, so that a trace continues into vLLM, llama-server
// or nerstream serve.
//
// The span's url.full is the request's address fit to show
// (internal/redact): otelhttp drops a user name and password, but keeps
// the query, which can hold a signature or a key; here every query value
// and the fragment are REDACTED too. An error recorded on the span is
// redacted the same way.
func (t *Telemetry) HTTPTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(redactingTransport{base},
		otelhttp.WithTracerProvider(t.tracerProvider),
		otelhttp.WithMeterProvider(t.meterProvider),
		otelhttp.WithPropagators(t.propagator))
}

// urlFull is the attribute key of the HTTP conventions' full URL.
const urlFull = attribute.Key("url.full")

// redactingTransport runs inside otelhttp's client span: it replaces the
// span's url.full (set when the span started, from the whole address) by
// the redacted address, and redacts the errors it returns, which otelhttp
// records on the span.
type redactingTransport struct{ base http.RoundTripper }

func (rt redactingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(urlFull.String(redact.URL(r.URL)))
	}
	resp, err := rt.base.RoundTrip(r)
	return resp, redact.Error(err)
}

// HTTPHandler wraps h so that each request is a server span, a child of the
// caller's span when the request carries a traceparent; and so that the
// http.server.* metrics are recorded. Wrap a handler that a ServeMux routes
// to: the span is then named "{method} {pattern}", as the HTTP semantic
// conventions ask ("POST /v1/completions").
func (t *Telemetry) HTTPHandler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "",
		otelhttp.WithTracerProvider(t.tracerProvider),
		otelhttp.WithMeterProvider(t.meterProvider),
		otelhttp.WithPropagators(t.propagator))
}
