package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// HTTPTransport wraps base (nil: [http.DefaultTransport]) so that each
// request is a client span, a child of the span in the request's context,
// whose context goes to the server in the traceparent header; and so that
// the http.client.* metrics are recorded. The openai engine's requests to a
// GPU tier go through it, so that a trace continues into vLLM, llama-server
// or nerstream serve.
func (t *Telemetry) HTTPTransport(base http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.tracerProvider),
		otelhttp.WithMeterProvider(t.meterProvider),
		otelhttp.WithPropagators(t.propagator))
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
