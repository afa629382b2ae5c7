package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"

	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/internal/redact"
)

// InstrumentationName is the instrumentation scope of the tracer and meter
// returned by [Telemetry.Tracer] and [Telemetry.Meter].
const InstrumentationName = "github.com/nerstream/nerstream"

// DefaultServiceName is service.name when neither [Options.ServiceName] nor
// OTEL_SERVICE_NAME (nor service.name in OTEL_RESOURCE_ATTRIBUTES) sets it.
const DefaultServiceName = "nerstream"

// Exporter names accepted by [Options.Exporter].
const (
	// ExporterNone exports nothing: tracing is a no-op and metrics are only
	// served on /metrics.
	ExporterNone = "none"
	// ExporterStdout writes spans and metrics as JSON to [Options.Stdout].
	ExporterStdout = "stdout"
	// ExporterOTLPGRPC sends spans and metrics with OTLP over gRPC.
	ExporterOTLPGRPC = "otlp-grpc"
	// ExporterOTLPHTTP sends spans and metrics with OTLP over HTTP (protobuf).
	ExporterOTLPHTTP = "otlp-http"
)

// Batch span processor sizes. The SDK defaults (queue 2048, batch 512, one
// export every 5s) suit request/response services; a stream doing tens of
// thousands of records a second with a span per record fills a 2048 queue
// well within one schedule delay, and a full queue drops spans. A 16384 queue
// absorbs bursts and an exporter hiccup (a queued span takes about 1.2 KB, so a
// full queue holds about 20 MiB),
// and 2048-span batches keep the number of export requests low. The queue
// never blocks the pipeline: when it is full, spans are dropped, because
// tracing must not back-pressure the stream. OTEL_BSP_MAX_QUEUE_SIZE and
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE, when set, win over these.
const (
	spanQueueSize = 16384
	spanBatchSize = 2048
)

// Options configures [Setup]. The zero value is valid: no exporter (unless
// the OTEL_* environment says otherwise), metrics on /metrics only. The
// fields with YAML keys are the telemetry section of the configuration.
type Options struct {
	// Exporter is where spans and metrics go: "none", "stdout", "otlp-grpc"
	// or "otlp-http".
	//
	// Default "": taken from OTEL_TRACES_EXPORTER: "otlp" (with
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
	// "grpc", the default, or "http/protobuf"), "console" (stdout) or
	// "none"; unset means none. With none, tracing costs nothing (a no-op
	// tracer provider), which is why it is the default.
	Exporter string `yaml:"exporter"`

	// Endpoint is the OTLP receiver: host:port (gRPC: "collector:4317";
	// HTTP: "collector:4318") or a URL. A URL is a base, like
	// OTEL_EXPORTER_OTLP_ENDPOINT: for otlp-http, /v1/traces and /v1/metrics
	// are appended to its path; an http:// URL also means no TLS.
	//
	// Default "": left to the exporter, which reads
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
	// then OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317 (gRPC) or
	// localhost:4318 (HTTP).
	Endpoint string `yaml:"endpoint"`

	// Insecure sends OTLP without TLS (plain gRPC / http://).
	//
	// Default false: TLS, or whatever OTEL_EXPORTER_OTLP_INSECURE says.
	// Only for a collector on the same host or a trusted network.
	Insecure bool `yaml:"insecure"`

	// CAFile is a PEM bundle of the CAs to trust for the OTLP receiver's
	// certificate. With CertFile and KeyFile, it replaces the exporter's
	// OTEL_EXPORTER_OTLP_*CERTIFICATE settings when any is set; none can be
	// combined with Insecure.
	//
	// Default "": the system roots (or the exporter's environment
	// settings).
	CAFile string `yaml:"ca_file"`

	// CertFile and KeyFile are a PEM client certificate and its key, for
	// mutual TLS (both or neither).
	//
	// Default "": no client certificate (or the exporter's environment
	// settings).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// Headers are sent with every OTLP export, e.g. an API key for a hosted
	// backend. They are merged over OTEL_EXPORTER_OTLP_HEADERS (or the
	// signal's OTEL_EXPORTER_OTLP_TRACES_HEADERS /
	// OTEL_EXPORTER_OTLP_METRICS_HEADERS): a header set here wins.
	//
	// Default nil: only the environment's headers.
	Headers map[string]string `yaml:"headers" secret:"true"`

	// SamplingRatio is the fraction (0..1) of new traces that are sampled.
	// It is applied under a parent-based sampler: a trace continued from an
	// input record's traceparent follows its parent's decision, so a traced
	// producer is never cut off here.
	//
	// Default nil: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG when set
	// (traceidratio, parentbased_traceidratio, always_on, always_off,
	// parentbased_always_on, parentbased_always_off), else 1.0 under a parent
	// (every trace). At high rates a ratio well below 1 keeps the exporter's
	// cost bounded.
	SamplingRatio *float64 `yaml:"sampling_ratio"`

	// ServiceName is the resource's service.name, what backends group by.
	//
	// Default "": OTEL_SERVICE_NAME, else service.name in
	// OTEL_RESOURCE_ATTRIBUTES, else "nerstream".
	ServiceName string `yaml:"service_name"`

	// ServiceVersion is the resource's service.version.
	//
	// Default "": left out.
	ServiceVersion string `yaml:"-"`

	// ResourceAttributes are added to the resource (e.g.
	// deployment.environment.name), over OTEL_RESOURCE_ATTRIBUTES: on the
	// same key, the value here wins. ServiceName and ServiceVersion win over
	// service.name and service.version here.
	//
	// Default nil: only the environment's and the detected attributes.
	ResourceAttributes map[string]string `yaml:"resource_attributes"`

	// MetricInterval is how often metrics are pushed to the exporter. It does
	// not affect /metrics, which Prometheus pulls whenever it scrapes.
	//
	// Default 0: OTEL_METRIC_EXPORT_INTERVAL (milliseconds), else 60s.
	MetricInterval time.Duration `yaml:"metric_interval"`

	// Stdout receives the stdout exporter's JSON, one object per line. The
	// span and metric exporters' writes are serialized, so it need not be
	// safe for concurrent use.
	//
	// Default nil: os.Stdout.
	Stdout io.Writer `yaml:"-"`

	// SpanExporter, when set, receives every span synchronously as it ends
	// (sdktrace.WithSyncer), in place of Exporter for spans (metrics still
	// follow Exporter). It is meant for tests, with
	// tracetest.NewInMemoryExporter: a synchronous exporter on the hot path
	// of a real stream would slow it down.
	//
	// Default nil: spans follow Exporter.
	SpanExporter sdktrace.SpanExporter `yaml:"-"`
}

// Validate reports the problems of the options that need no environment,
// at their YAML keys; [Setup] checks the rest.
func (o Options) Validate() error {
	var p problems.List
	switch o.Exporter {
	case "", ExporterNone, ExporterStdout, ExporterOTLPGRPC, ExporterOTLPHTTP:
	default:
		p.Addf("exporter", "%q is not one of none, stdout, otlp-grpc, otlp-http", o.Exporter)
	}
	if r := o.SamplingRatio; r != nil && !(*r >= 0 && *r <= 1) {
		p.Addf("sampling_ratio", "must be between 0 and 1")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		p.Addf("key_file", "cert_file and key_file go together")
	}
	if o.MetricInterval < 0 {
		p.Addf("metric_interval", "must be >= 0")
	}
	return p.Err()
}

// Telemetry holds the process's tracer and meter providers, its propagator
// and the Prometheus registry behind /metrics. Create it with [Setup] and
// stop it with [Telemetry.Shutdown]. Its methods are safe for concurrent use.
type Telemetry struct {
	tracerProvider trace.TracerProvider
	sdkTracer      *sdktrace.TracerProvider // nil when tracing is a no-op
	tracer         trace.Tracer
	meterProvider  *sdkmetric.MeterProvider
	meter          metric.Meter
	propagator     propagation.TextMapPropagator
	metrics        http.Handler

	shutdownOnce sync.Once
}

// Setup builds the tracer and meter providers described by opts and the
// environment. It installs nothing globally: pass [Telemetry.TracerProvider],
// [Telemetry.MeterProvider] and [Telemetry.Propagator] to whatever needs them.
//
// Setup fails on an unknown exporter name (in opts or OTEL_TRACES_EXPORTER),
// an unsupported OTLP protocol, a sampling ratio outside [0, 1], a bad
// OTEL_TRACES_SAMPLER or OTEL_TRACES_SAMPLER_ARG, a malformed
// OTEL_RESOURCE_ATTRIBUTES, a bad Endpoint URL, a negative MetricInterval,
// and TLS files that cannot be read or parsed.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	exporter, err := resolveExporter(opts.Exporter)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	sampler, err := resolveSampler(opts.SamplingRatio)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if opts.MetricInterval < 0 {
		return nil, fmt.Errorf("telemetry: metric interval %v is negative", opts.MetricInterval)
	}
	var tlsCfg *tls.Config
	if exporter == ExporterOTLPGRPC || exporter == ExporterOTLPHTTP {
		if tlsCfg, err = loadTLS(opts); err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
	}
	res, err := newResource(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("telemetry: building resource (check OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}

	// Everything below owns something that must be shut down if a later
	// step fails.
	var cleanup []func(context.Context) error
	fail := func(err error) (*Telemetry, error) {
		for _, f := range slices.Backward(cleanup) {
			_ = f(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("telemetry: %w", err)
	}

	if exporter == ExporterStdout {
		w := opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		opts.Stdout = &lockedWriter{w: w}
	}
	var spanExp sdktrace.SpanExporter
	if opts.SpanExporter == nil && exporter != ExporterNone {
		if spanExp, err = newSpanExporter(ctx, exporter, opts, tlsCfg); err != nil {
			return fail(fmt.Errorf("%s span exporter: %w", exporter, err))
		}
		cleanup = append(cleanup, spanExp.Shutdown)
	}
	var metricExp sdkmetric.Exporter
	if exporter != ExporterNone {
		if metricExp, err = newMetricExporter(ctx, exporter, opts, tlsCfg); err != nil {
			return fail(fmt.Errorf("%s metric exporter: %w", exporter, err))
		}
		cleanup = append(cleanup, metricExp.Shutdown)
	}

	registry := prometheus.NewRegistry()
	if err := registry.Register(collectors.NewGoCollector()); err != nil {
		return fail(fmt.Errorf("registering Go collector: %w", err))
	}
	if err := registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fail(fmt.Errorf("registering process collector: %w", err))
	}
	promReader, err := otelprom.New(
		otelprom.WithRegisterer(registry),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return fail(fmt.Errorf("prometheus exporter: %w", err))
	}
	meterOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(promReader),
		sdkmetric.WithView(httpServerView),
	}
	if metricExp != nil {
		var readerOpts []sdkmetric.PeriodicReaderOption
		if opts.MetricInterval > 0 {
			readerOpts = append(readerOpts, sdkmetric.WithInterval(opts.MetricInterval))
		}
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, readerOpts...)))
	}
	mp := sdkmetric.NewMeterProvider(meterOpts...)

	t := &Telemetry{
		meterProvider: mp,
		meter:         mp.Meter(InstrumentationName, metric.WithSchemaURL(semconv.SchemaURL)),
		propagator:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		metrics: promhttp.HandlerFor(registry, promhttp.HandlerOpts{
			// Counts failed scrapes in promhttp_metric_handler_errors_total.
			Registry: registry,
			// Lets a scraper that asks for OpenMetrics get exemplars.
			EnableOpenMetrics: true,
		}),
	}
	switch {
	case opts.SpanExporter != nil || spanExp != nil:
		tpOpts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sampler),
		}
		if opts.SpanExporter != nil {
			tpOpts = append(tpOpts, sdktrace.WithSyncer(opts.SpanExporter))
		} else {
			tpOpts = append(tpOpts, sdktrace.WithBatcher(spanExp, batchOptions()...))
		}
		t.sdkTracer = sdktrace.NewTracerProvider(tpOpts...)
		t.tracerProvider = t.sdkTracer
	default:
		t.tracerProvider = noop.NewTracerProvider()
	}
	t.tracer = t.tracerProvider.Tracer(InstrumentationName, trace.WithSchemaURL(semconv.SchemaURL))
	return t, nil
}

// TracerProvider returns the tracer provider. With no exporter and no
// [Options.SpanExporter] it is a no-op provider: spans are not recording
// and cost next to nothing, though a span context from the input is still
// carried through for propagation.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracerProvider }

// Tracer returns the tracer of scope [InstrumentationName].
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// MeterProvider returns the SDK meter provider: its metrics are always served
// by [Telemetry.MetricsHandler], and also pushed to the exporter when there
// is one.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meterProvider }

// Meter returns the meter of scope [InstrumentationName].
func (t *Telemetry) Meter() metric.Meter { return t.meter }

// Propagator returns the W3C Trace Context and Baggage propagator, used to
// read and write traceparent, tracestate and baggage in Kafka headers.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// MetricsHandler serves the meter provider's metrics, plus the Go runtime
// (go_*) and process (process_*) collectors, in the Prometheus exposition
// format. It uses a registry of its own, never Prometheus's default one.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// Shutdown flushes pending spans and metrics to the exporter and stops both
// providers, within ctx. The two are stopped concurrently, so that a slow
// span export does not use up the metrics' time. Errors from both are
// joined. Calls after the first do nothing and return nil.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var err error
	t.shutdownOnce.Do(func() {
		var tracerErr, meterErr error
		var wg sync.WaitGroup
		if t.sdkTracer != nil {
			wg.Go(func() { tracerErr = t.sdkTracer.Shutdown(ctx) })
		}
		wg.Go(func() { meterErr = t.meterProvider.Shutdown(ctx) })
		wg.Wait()
		var errs []error
		if tracerErr != nil {
			errs = append(errs, fmt.Errorf("tracer provider: %w", tracerErr))
		}
		if meterErr != nil {
			errs = append(errs, fmt.Errorf("meter provider: %w", meterErr))
		}
		if len(errs) > 0 {
			err = fmt.Errorf("telemetry: shutdown: %w", errors.Join(errs...))
		}
	})
	return err
}

// resolveExporter returns the exporter named by name or, when name is empty,
// by the OTEL_* environment.
func resolveExporter(name string) (string, error) {
	switch n := strings.ToLower(strings.TrimSpace(name)); n {
	case ExporterNone, ExporterStdout, ExporterOTLPGRPC, ExporterOTLPHTTP:
		return n, nil
	case "":
	default:
		return "", fmt.Errorf("unknown exporter %q (want %s, %s, %s or %s)",
			name, ExporterNone, ExporterStdout, ExporterOTLPGRPC, ExporterOTLPHTTP)
	}

	env := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")))
	switch env {
	case "", "none":
		return ExporterNone, nil
	case "console":
		return ExporterStdout, nil
	case "otlp":
		proto := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
		if proto == "" {
			proto = strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
		}
		switch strings.ToLower(proto) {
		case "", "grpc":
			return ExporterOTLPGRPC, nil
		case "http/protobuf":
			return ExporterOTLPHTTP, nil
		default:
			return "", fmt.Errorf("unsupported OTLP protocol %q in OTEL_EXPORTER_OTLP_PROTOCOL (want grpc or http/protobuf)", proto)
		}
	default:
		return "", fmt.Errorf("unsupported OTEL_TRACES_EXPORTER %q (want otlp, console or none; a single value)", env)
	}
}

// resolveSampler returns the sampler for ratio or, when ratio is nil, for
// the OTEL_TRACES_SAMPLER environment. Unlike the SDK, which logs a bad
// value and falls back, it fails, so a typo does not silently sample
// everything.
func resolveSampler(ratio *float64) (sdktrace.Sampler, error) {
	if ratio != nil {
		r := *ratio
		if math.IsNaN(r) || r < 0 || r > 1 {
			return nil, fmt.Errorf("sampling ratio %v is outside [0, 1]", r)
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}

	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	envRatio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: %w", arg, err)
		}
		if math.IsNaN(r) || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %v is outside [0, 1]", r)
		}
		return r, nil
	}
	switch name {
	case "":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := envRatio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "parentbased_traceidratio":
		r, err := envRatio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("unsupported OTEL_TRACES_SAMPLER %q (want traceidratio, parentbased_traceidratio, always_on, always_off, parentbased_always_on or parentbased_always_off)", name)
	}
}

// newResource describes this process. Precedence, lowest first: the default
// service name, detected host and SDK attributes, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_SERVICE_NAME, opts.ResourceAttributes, opts.ServiceName and
// opts.ServiceVersion. Every detector uses the SDK's semconv version (or no
// schema), so merging them cannot conflict.
func newResource(ctx context.Context, opts Options) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	for _, k := range slices.Sorted(maps.Keys(opts.ResourceAttributes)) {
		attrs = append(attrs, attribute.String(k, opts.ResourceAttributes[k]))
	}
	if opts.ServiceName != "" {
		attrs = append(attrs, semconv.ServiceName(opts.ServiceName))
	}
	if opts.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(opts.ServiceVersion))
	}
	return resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
		resource.WithAttributes(attrs...),
	)
}

// batchOptions returns the batch span processor settings (see spanQueueSize).
func batchOptions() []sdktrace.BatchSpanProcessorOption {
	var o []sdktrace.BatchSpanProcessorOption
	if _, ok := os.LookupEnv("OTEL_BSP_MAX_QUEUE_SIZE"); !ok {
		o = append(o, sdktrace.WithMaxQueueSize(spanQueueSize))
	}
	if _, ok := os.LookupEnv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"); !ok {
		o = append(o, sdktrace.WithMaxExportBatchSize(spanBatchSize))
	}
	return o
}

// loadTLS builds the client TLS configuration from the files in opts, or
// returns nil when none is set.
func loadTLS(opts Options) (*tls.Config, error) {
	if opts.CAFile == "" && opts.CertFile == "" && opts.KeyFile == "" {
		return nil, nil
	}
	if opts.Insecure {
		return nil, errors.New("insecure OTLP cannot use a CA file or a client certificate")
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("an OTLP client certificate needs both a cert file and a key file")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading OTLP CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OTLP CA file %s holds no PEM certificate", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading OTLP client certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// endpointURL parses opts.Endpoint as a URL when it has a scheme. For
// otlp-http, signalPath ("/v1/traces") is appended to the URL's path, the
// way the exporters treat OTEL_EXPORTER_OTLP_ENDPOINT. It returns "" for a
// host:port endpoint.
func endpointURL(endpoint, exporter, signalPath string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		return "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint: %w", redact.Error(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q: scheme must be http or https", redact.String(endpoint))
	}
	if u.Host == "" {
		return "", fmt.Errorf("endpoint %q has no host", redact.String(endpoint))
	}
	if exporter == ExporterOTLPHTTP {
		u.Path = strings.TrimSuffix(u.Path, "/") + signalPath
		u.RawPath = ""
	}
	return u.String(), nil
}

// mergedHeaders returns the environment's OTLP headers for signal ("TRACES"
// or "METRICS") with opts.Headers over them, or nil when opts.Headers is
// empty (the exporter then reads the environment itself). It is needed
// because the exporters' WithHeaders replaces the environment's headers.
func mergedHeaders(opts Options, signal string) map[string]string {
	if len(opts.Headers) == 0 {
		return nil
	}
	env := os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_HEADERS")
	if strings.TrimSpace(env) == "" {
		env = os.Getenv("OTEL_EXPORTER_OTLP_HEADERS")
	}
	h := parseHeaders(env)
	maps.Copy(h, opts.Headers)
	return h
}

// parseHeaders parses the OTEL_EXPORTER_OTLP_HEADERS format:
// key=value pairs separated by commas, values percent-encoded. Malformed
// pairs are skipped, as the exporters do.
func parseHeaders(s string) map[string]string {
	h := make(map[string]string)
	for pair := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		if dec, err := url.PathUnescape(v); err == nil {
			v = dec
		}
		h[k] = strings.TrimSpace(v)
	}
	return h
}

// otlpSettings are what the four OTLP exporters (traces and metrics, gRPC
// and HTTP) are given, resolved once per signal. Empty fields are left to
// the exporter, which reads its OTEL_EXPORTER_OTLP_* variables.
type otlpSettings struct {
	url, endpoint string
	insecure      bool
	tls           *tls.Config
	headers       map[string]string
}

func newOTLPSettings(exporter string, opts Options, tlsCfg *tls.Config, signalPath, signal string) (otlpSettings, error) {
	u, err := endpointURL(opts.Endpoint, exporter, signalPath)
	if err != nil {
		return otlpSettings{}, err
	}
	s := otlpSettings{url: u, insecure: opts.Insecure, tls: tlsCfg, headers: mergedHeaders(opts, signal)}
	if u == "" {
		s.endpoint = opts.Endpoint
	}
	return s, nil
}

// otlpOptions turns the settings into one exporter's options, through that
// exporter's option constructors.
func otlpOptions[O any](s otlpSettings, withURL, withEndpoint func(string) O, withInsecure func() O,
	withTLS func(*tls.Config) O, withHeaders func(map[string]string) O) []O {
	var o []O
	switch {
	case s.url != "":
		o = append(o, withURL(s.url))
	case s.endpoint != "":
		o = append(o, withEndpoint(s.endpoint))
	}
	if s.insecure {
		o = append(o, withInsecure())
	}
	if s.tls != nil {
		o = append(o, withTLS(s.tls))
	}
	if s.headers != nil {
		o = append(o, withHeaders(s.headers))
	}
	return o
}

func newSpanExporter(ctx context.Context, exporter string, opts Options, tlsCfg *tls.Config) (sdktrace.SpanExporter, error) {
	if exporter == ExporterStdout {
		return stdouttrace.New(stdouttrace.WithWriter(opts.Stdout))
	}
	s, err := newOTLPSettings(exporter, opts, tlsCfg, "/v1/traces", "TRACES")
	if err != nil {
		return nil, err
	}
	switch exporter {
	case ExporterOTLPGRPC:
		return otlptracegrpc.New(ctx, otlpOptions(s, otlptracegrpc.WithEndpointURL, otlptracegrpc.WithEndpoint, otlptracegrpc.WithInsecure,
			func(c *tls.Config) otlptracegrpc.Option {
				return otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c))
			},
			otlptracegrpc.WithHeaders)...)
	case ExporterOTLPHTTP:
		return otlptracehttp.New(ctx, otlpOptions(s, otlptracehttp.WithEndpointURL, otlptracehttp.WithEndpoint, otlptracehttp.WithInsecure,
			otlptracehttp.WithTLSClientConfig, otlptracehttp.WithHeaders)...)
	}
	return nil, fmt.Errorf("no span exporter for %q", exporter)
}

func newMetricExporter(ctx context.Context, exporter string, opts Options, tlsCfg *tls.Config) (sdkmetric.Exporter, error) {
	if exporter == ExporterStdout {
		return stdoutmetric.New(stdoutmetric.WithWriter(opts.Stdout))
	}
	s, err := newOTLPSettings(exporter, opts, tlsCfg, "/v1/metrics", "METRICS")
	if err != nil {
		return nil, err
	}
	switch exporter {
	case ExporterOTLPGRPC:
		return otlpmetricgrpc.New(ctx, otlpOptions(s, otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithEndpoint, otlpmetricgrpc.WithInsecure,
			func(c *tls.Config) otlpmetricgrpc.Option {
				return otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(c))
			},
			otlpmetricgrpc.WithHeaders)...)
	case ExporterOTLPHTTP:
		return otlpmetrichttp.New(ctx, otlpOptions(s, otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithEndpoint, otlpmetrichttp.WithInsecure,
			otlpmetrichttp.WithTLSClientConfig, otlpmetrichttp.WithHeaders)...)
	}
	return nil, fmt.Errorf("no metric exporter for %q", exporter)
}

// lockedWriter serializes writes: the span and metric exporters write from
// goroutines of their own, and Options.Stdout need not be safe for that.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
