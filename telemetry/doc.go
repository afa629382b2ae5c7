// Package telemetry is nerstream's observability: OpenTelemetry tracer and
// meter providers, the propagation of trace context through Kafka record
// headers, the catalog of metrics, readiness, the HTTP server of
// /healthz, /readyz, /metrics and /debug/pprof, and logs that carry trace
// ids.
//
// [Setup] builds the providers from [Options] and the standard OTEL_*
// environment variables (Options win where they are set) and installs
// nothing globally: the rest of nerstream is handed the tracer, meter and
// propagator. With no exporter, tracing is a no-op that still passes the
// input record's trace context on to the output records. Metrics are
// always kept, for /metrics, and pushed to the exporter when there is one.
//
// [Headers] adapts a record's header list (kafka-go's, or nerstream's own
// Header types) to the W3C TraceContext and Baggage propagators; setting a
// key replaces it, so a record passed on never carries two traceparent
// headers. The carrier is generic over the header type so that this
// package, and the pipeline that imports it, need no Kafka client.
//
// [Metrics] names every instrument, each under "nerstream."; the pipeline,
// the consumers and the command record through it. [Health] is a set of
// named readiness checks (model, consumer_group, producer, commit) that /readyz
// reports, with the reason of each failing one.
//
// [NewLogHandler] is a log/slog handler, JSON or text, that adds trace_id
// and span_id to records logged with a context inside a span.
//
// Every address that leaves through this package is shown without its
// secrets (internal/redact: user information and query values REDACTED):
// the reasons /readyz gives (it answers anyone), every log line, and the
// url.full of the client spans of [Telemetry.HTTPTransport], with the
// errors they record.
package telemetry
