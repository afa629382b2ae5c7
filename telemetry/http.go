package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/internal/redact"
)

// serverMetricKeys are the attributes that the http.server.* metrics keep:
// those whose values the server decides, from a small set. otelhttp maps a
// method outside the standard nine to "_OTHER"; the status code is the
// handler's; the route is the ServeMux pattern that matched, one of the
// server's own; the scheme says whether the listener has TLS; error.type
// is a status code or an error's type.
//
// Everything else that otelhttp records is the client's choice and is
// dropped: server.address and server.port come from the Host header,
// network.protocol.version from the request line (HTTP/1.0 to 1.9), and a
// later otelhttp may add more (user agent, client address). Before, any
// caller, unauthenticated ones included (the bearer check runs inside the
// handler, after the instrumentation), could make a series per request
// with a random Host header: 20,000 requests answered 401 grew /metrics
// from 9 KB to 29 MB, and once the SDK's cardinality limit (2,000 series
// per instrument) was reached, real traffic was counted under
// otel_metric_overflow. An allow-list rather than a deny-list, so that an
// upgrade of otelhttp cannot add a label behind our back.
var serverMetricKeys = []attribute.Key{
	semconv.HTTPRequestMethodKey,
	semconv.HTTPResponseStatusCodeKey,
	semconv.HTTPRouteKey,
	semconv.URLSchemeKey,
	semconv.ErrorTypeKey,
}

// httpServerView applies [serverMetricKeys] to every http.server.*
// instrument of the meter provider, whoever records it. Spans keep every
// attribute: a span is one request's record, not a series.
var httpServerView = sdkmetric.NewView(
	sdkmetric.Instrument{Name: "http.server.*"},
	sdkmetric.Stream{AttributeFilter: attribute.NewAllowKeysFilter(serverMetricKeys...)},
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
// conventions ask ("POST /v1/completions"), and the metrics carry the
// pattern as http.route. The metrics keep only the attributes that the
// server decides (method, status, route, scheme; see serverMetricKeys),
// so that no request, authorized or not, chooses a label value.
func (t *Telemetry) HTTPHandler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "",
		otelhttp.WithTracerProvider(t.tracerProvider),
		otelhttp.WithMeterProvider(t.meterProvider),
		otelhttp.WithPropagators(t.propagator))
}
