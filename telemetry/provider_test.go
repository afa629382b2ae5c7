package telemetry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// otelEnv lists the environment variables Setup and the exporters read.
var otelEnv = []string{
	"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_CERTIFICATE",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
}

// clearOTelEnv unsets the OTEL_* variables for the test, restoring them
// after, so that the environment the tests run in cannot change them.
func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func mustSetup(t *testing.T, opts Options) *Telemetry {
	t.Helper()
	tel, err := Setup(t.Context(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

func shutdown(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func ptr[T any](v T) *T { return &v }

func TestSetupNone(t *testing.T) {
	for _, exporter := range []string{"none", ""} {
		t.Run("exporter="+exporter, func(t *testing.T) {
			clearOTelEnv(t)
			tel := mustSetup(t, Options{Exporter: exporter})
			ctx := t.Context()

			_, span := tel.Tracer().Start(ctx, "op")
			if span.IsRecording() {
				t.Error("span is recording with exporter none")
			}
			span.End()

			c, err := tel.Meter().Int64Counter("nerstream.test")
			if err != nil {
				t.Fatal(err)
			}
			c.Add(ctx, 3)
			body := scrape(t, tel.MetricsHandler())
			for _, want := range []string{"nerstream_test_total 3\n", "go_goroutines ", `service_name="nerstream"`} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q:\n%s", want, body)
				}
			}
			if runtime.GOOS == "linux" && !strings.Contains(body, "process_cpu_seconds_total") {
				t.Errorf("/metrics lacks the process collector:\n%s", body)
			}
			if strings.Contains(body, "otel_scope_") {
				t.Errorf("/metrics has scope labels, want them off:\n%s", body)
			}
			shutdown(t, tel)
		})
	}
}

// TestNoopCarriesParent checks that with tracing off, a span context read
// from an input record still reaches the output.
func TestNoopCarriesParent(t *testing.T) {
	clearOTelEnv(t)
	tel := mustSetup(t, Options{Exporter: "none"})
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := propagation.MapCarrier{"traceparent": traceparent, "baggage": "tenant=acme"}
	ctx := tel.Propagator().Extract(t.Context(), in)
	ctx, span := tel.Tracer().Start(ctx, "op")
	defer span.End()
	out := propagation.MapCarrier{}
	tel.Propagator().Inject(ctx, out)
	if out["traceparent"] != traceparent {
		t.Errorf("traceparent = %q, want %q", out["traceparent"], traceparent)
	}
	if out["baggage"] != "tenant=acme" {
		t.Errorf("baggage = %q, want tenant=acme", out["baggage"])
	}
}

// TestPrometheusNames pins how exporters/prometheus translates OTel names
// and units, which dashboards depend on.
func TestPrometheusNames(t *testing.T) {
	clearOTelEnv(t)
	tel := mustSetup(t, Options{})
	ctx := t.Context()
	m := tel.Meter()

	consumed, err := m.Int64Counter("nerstream.records.consumed", metric.WithUnit("{record}"))
	if err != nil {
		t.Fatal(err)
	}
	consumed.Add(ctx, 5, metric.WithAttributes(attribute.String("topic", "in")))
	duration, err := m.Float64Histogram("nerstream.batch.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.1, 1))
	if err != nil {
		t.Fatal(err)
	}
	duration.Record(ctx, 0.5)
	sent, err := m.Int64Counter("nerstream.sent", metric.WithUnit("By"))
	if err != nil {
		t.Fatal(err)
	}
	sent.Add(ctx, 7)
	inFlight, err := m.Int64UpDownCounter("nerstream.in_flight", metric.WithUnit("{record}"))
	if err != nil {
		t.Fatal(err)
	}
	inFlight.Add(ctx, 2)

	body := scrape(t, tel.MetricsHandler())
	for _, want := range []string{
		`nerstream_records_consumed_total{topic="in"} 5` + "\n",
		`nerstream_batch_duration_seconds_bucket{le="1"} 1` + "\n",
		"nerstream_batch_duration_seconds_count 1\n",
		"nerstream_sent_bytes_total 7\n",
		"nerstream_in_flight 2\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestSetupStdout(t *testing.T) {
	clearOTelEnv(t)
	var buf bytes.Buffer
	tel := mustSetup(t, Options{Exporter: "stdout", Stdout: &buf})
	_, span := tel.Tracer().Start(t.Context(), "stdout-span")
	if !span.IsRecording() {
		t.Error("span is not recording with exporter stdout")
	}
	traceID := span.SpanContext().TraceID().String()
	span.End()
	c, err := tel.Meter().Int64Counter("nerstream.stdout.test")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 1)
	shutdown(t, tel)

	out := buf.String()
	for _, want := range []string{`"Name":"stdout-span"`, traceID, "nerstream.stdout.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

// otlpRecorder is an OTLP/HTTP receiver that records what it was sent.
type otlpRecorder struct {
	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	method, path string
	header       http.Header
	size         int
}

func (rec *otlpRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, recordedRequest{r.Method, r.URL.Path, r.Header.Clone(), len(body)})
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// find returns the first POST to path, if any.
func (rec *otlpRecorder) find(path string) (recordedRequest, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range rec.requests {
		if r.method == http.MethodPost && r.path == path {
			return r, true
		}
	}
	return recordedRequest{}, false
}

// emit starts and ends a span and adds to a counter.
func emit(t *testing.T, tel *Telemetry) {
	t.Helper()
	_, span := tel.Tracer().Start(t.Context(), "otlp-span")
	span.End()
	c, err := tel.Meter().Int64Counter("nerstream.otlp.test")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 1)
}

func TestSetupOTLPHTTP(t *testing.T) {
	clearOTelEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-from-env=yes,x-api-key=from-env")
	rec := &otlpRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	tel := mustSetup(t, Options{
		Exporter: "otlp-http",
		Endpoint: srv.URL,
		Insecure: true,
		Headers:  map[string]string{"x-api-key": "secret"},
	})
	emit(t, tel)
	shutdown(t, tel)

	for _, path := range []string{"/v1/traces", "/v1/metrics"} {
		r, ok := rec.find(path)
		if !ok {
			t.Errorf("no POST to %s; got %+v", path, rec.requests)
			continue
		}
		if got := r.header.Get("x-api-key"); got != "secret" {
			t.Errorf("%s: x-api-key = %q, want secret (config over env)", path, got)
		}
		if got := r.header.Get("x-from-env"); got != "yes" {
			t.Errorf("%s: x-from-env = %q, want yes (env headers kept)", path, got)
		}
		if r.size == 0 {
			t.Errorf("%s: empty body", path)
		}
	}
}

// writeCert writes a self-signed certificate (usable as its own CA) and its
// key as PEM files in dir.
func writeCert(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestSetupOTLPHTTPMutualTLS sends to a receiver that only a client trusting
// its CA (CAFile) and holding a certificate it trusts (CertFile, KeyFile)
// can reach.
func TestSetupOTLPHTTPMutualTLS(t *testing.T) {
	clearOTelEnv(t)
	dir := t.TempDir()
	serverCA, _, serverCert := writeCert(t, dir, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey, client := writeCert(t, dir, "client", x509.ExtKeyUsageClientAuth)
	clientPool := x509.NewCertPool()
	clientPool.AddCert(client.Leaf)

	rec := &otlpRecorder{}
	srv := httptest.NewUnstartedServer(rec)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
	}
	srv.StartTLS()
	defer srv.Close()

	tel := mustSetup(t, Options{
		Exporter: "otlp-http",
		Endpoint: srv.URL,
		CAFile:   serverCA,
		CertFile: clientCert,
		KeyFile:  clientKey,
	})
	emit(t, tel)
	shutdown(t, tel)
	if _, ok := rec.find("/v1/traces"); !ok {
		t.Error("no trace export arrived over mutual TLS")
	}
}

// grpcCollector is an OTLP/gRPC receiver that records the metadata of what
// it was sent.
type grpcCollector struct {
	mu      sync.Mutex
	traces  []metadata.MD
	metrics []metadata.MD
}

func (c *grpcCollector) record(ctx context.Context, to *[]metadata.MD) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	*to = append(*to, md)
	c.mu.Unlock()
}

func (c *grpcCollector) exportTrace(ctx context.Context, _ *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	c.record(ctx, &c.traces)
	return &colltrace.ExportTraceServiceResponse{}, nil
}

func (c *grpcCollector) exportMetrics(ctx context.Context, _ *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	c.record(ctx, &c.metrics)
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

// The two services both have an Export method; these adapters tell them
// apart.
type traceService struct {
	colltrace.UnimplementedTraceServiceServer
	c *grpcCollector
}

func (s traceService) Export(ctx context.Context, r *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	return s.c.exportTrace(ctx, r)
}

type metricsService struct {
	collmetrics.UnimplementedMetricsServiceServer
	c *grpcCollector
}

func (s metricsService) Export(ctx context.Context, r *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	return s.c.exportMetrics(ctx, r)
}

func TestSetupOTLPGRPC(t *testing.T) {
	clearOTelEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	coll := &grpcCollector{}
	gs := grpc.NewServer()
	colltrace.RegisterTraceServiceServer(gs, traceService{c: coll})
	collmetrics.RegisterMetricsServiceServer(gs, metricsService{c: coll})
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	for _, tc := range []struct{ name, endpoint string }{
		{"host:port", ln.Addr().String()},
		{"url", "http://" + ln.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			coll.mu.Lock()
			coll.traces, coll.metrics = nil, nil
			coll.mu.Unlock()

			tel := mustSetup(t, Options{
				Exporter: "otlp-grpc",
				Endpoint: tc.endpoint,
				Insecure: true,
				Headers:  map[string]string{"x-api-key": "secret"},
			})
			emit(t, tel)
			shutdown(t, tel)

			coll.mu.Lock()
			defer coll.mu.Unlock()
			for what, mds := range map[string][]metadata.MD{"traces": coll.traces, "metrics": coll.metrics} {
				if len(mds) == 0 {
					t.Errorf("no %s export arrived", what)
					continue
				}
				if got := mds[0].Get("x-api-key"); len(got) != 1 || got[0] != "secret" {
					t.Errorf("%s: x-api-key = %q, want [secret]", what, got)
				}
			}
		})
	}
}

// TestSetupOTLPGRPCUnreachable checks that an exporter with nowhere to send
// does not hold Shutdown past its context.
func TestSetupOTLPGRPCUnreachable(t *testing.T) {
	clearOTelEnv(t)
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	tel, err := Setup(t.Context(), Options{Exporter: "otlp-grpc", Endpoint: addr, Insecure: true})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	emit(t, tel)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tel.Shutdown(ctx) }()
	select {
	case err := <-done:
		// An error (the deadline, or the refused export) is expected;
		// what matters is that Shutdown came back.
		t.Logf("Shutdown: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown hung past its context")
	}
}

func TestSpanExporterIsSynchronous(t *testing.T) {
	clearOTelEnv(t)
	exp := tracetest.NewInMemoryExporter()
	tel := mustSetup(t, Options{SpanExporter: exp})
	_, span := tel.Tracer().Start(t.Context(), "sync-span")
	span.End()
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "sync-span" {
		t.Fatalf("exporter holds %d spans (%v) right after End, want sync-span", len(spans), spans)
	}
	if got := spans[0].InstrumentationScope.Name; got != InstrumentationName {
		t.Errorf("scope = %q, want %q", got, InstrumentationName)
	}
}

func TestSetupResource(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		opts Options
		want map[string]string // attribute key → value; "" means absent
	}{
		{
			name: "defaults",
			want: map[string]string{"service.name": "nerstream", "service.version": "", "telemetry.sdk.language": "go"},
		},
		{
			name: "env",
			env: map[string]string{
				"OTEL_SERVICE_NAME":        "ner-env",
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,team=search%20infra",
			},
			want: map[string]string{"service.name": "ner-env", "deployment.environment.name": "staging", "team": "search infra"},
		},
		{
			name: "service.name in OTEL_RESOURCE_ATTRIBUTES",
			env:  map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
			want: map[string]string{"service.name": "from-attrs"},
		},
		{
			name: "OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES",
			env:  map[string]string{"OTEL_SERVICE_NAME": "from-name", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
			want: map[string]string{"service.name": "from-name"},
		},
		{
			name: "config over env",
			env: map[string]string{
				"OTEL_SERVICE_NAME":        "ner-env",
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,team=search",
			},
			opts: Options{
				ServiceName:        "ner-config",
				ServiceVersion:     "1.2.3",
				ResourceAttributes: map[string]string{"deployment.environment.name": "prod", "region": "eu"},
			},
			want: map[string]string{
				"service.name": "ner-config", "service.version": "1.2.3",
				"deployment.environment.name": "prod", "team": "search", "region": "eu",
			},
		},
		{
			name: "ServiceName over ResourceAttributes",
			opts: Options{ServiceName: "field", ResourceAttributes: map[string]string{"service.name": "map"}},
			want: map[string]string{"service.name": "field"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			exp := tracetest.NewInMemoryExporter()
			tc.opts.SpanExporter = exp
			tel := mustSetup(t, tc.opts)
			_, span := tel.Tracer().Start(t.Context(), "op")
			span.End()
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			res := spans[0].Resource
			for k, want := range tc.want {
				v, ok := res.Set().Value(attribute.Key(k))
				switch {
				case want == "" && ok:
					t.Errorf("%s = %q, want it absent", k, v.Emit())
				case want != "" && v.Emit() != want:
					t.Errorf("%s = %q, want %q (resource %v)", k, v.Emit(), want, res)
				}
			}
		})
	}
}

func TestSetupSampling(t *testing.T) {
	sampledParent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1},
		SpanID:     trace.SpanID{1},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	tests := []struct {
		name        string
		env         map[string]string
		ratio       *float64
		parent      bool // start under a sampled remote parent
		wantSampled bool
	}{
		{name: "default samples all", wantSampled: true},
		{name: "env always_off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}},
		{name: "ratio wins over env", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, ratio: ptr(1.0), wantSampled: true},
		{name: "ratio 0", ratio: ptr(0.0)},
		{name: "ratio 0 follows a sampled parent", ratio: ptr(0.0), parent: true, wantSampled: true},
		{name: "env traceidratio 0", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}},
		{name: "env TraceIdRatio without arg", env: map[string]string{"OTEL_TRACES_SAMPLER": "TraceIdRatio"}, wantSampled: true},
		{name: "env parentbased_always_off follows parent", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, parent: true, wantSampled: true},
		{name: "env parentbased_always_off root", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}},
		{name: "env always_off ignores parent", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, parent: true},
		{name: "env parentbased_traceidratio 0 follows parent", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, parent: true, wantSampled: true},
		{name: "env always_on", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, wantSampled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel := mustSetup(t, Options{SpanExporter: tracetest.NewInMemoryExporter(), SamplingRatio: tc.ratio})
			ctx := t.Context()
			if tc.parent {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sampledParent)
			}
			_, span := tel.Tracer().Start(ctx, "op")
			defer span.End()
			if got := span.SpanContext().IsSampled(); got != tc.wantSampled {
				t.Errorf("sampled = %v, want %v", got, tc.wantSampled)
			}
		})
	}
}

func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		env     map[string]string
		opts    Options
		wantErr string
	}{
		{name: "unknown exporter", opts: Options{Exporter: "zipkin"}, wantErr: `unknown exporter "zipkin"`},
		{name: "ratio above 1", opts: Options{SamplingRatio: ptr(1.5)}, wantErr: "sampling ratio 1.5"},
		{name: "ratio below 0", opts: Options{SamplingRatio: ptr(-0.1)}, wantErr: "sampling ratio -0.1"},
		{name: "ratio NaN", opts: Options{SamplingRatio: ptr(math.NaN())}, wantErr: "sampling ratio NaN"},
		{name: "bad OTEL_TRACES_SAMPLER", env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, wantErr: `OTEL_TRACES_SAMPLER "jaeger_remote"`},
		{name: "bad OTEL_TRACES_SAMPLER_ARG", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, wantErr: `OTEL_TRACES_SAMPLER_ARG "half"`},
		{name: "OTEL_TRACES_SAMPLER_ARG above 1", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG 2"},
		{name: "bad OTEL_TRACES_EXPORTER", env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, wantErr: `OTEL_TRACES_EXPORTER "jaeger"`},
		{name: "bad OTLP protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: `protocol "http/json"`},
		{name: "bad OTEL_RESOURCE_ATTRIBUTES", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, wantErr: "novalue"},
		{name: "negative metric interval", opts: Options{MetricInterval: -time.Second}, wantErr: "metric interval"},
		{name: "missing CA file", opts: Options{Exporter: "otlp-http", CAFile: missing}, wantErr: "missing.pem"},
		{name: "CA file not PEM", opts: Options{Exporter: "otlp-grpc", CAFile: notPEM}, wantErr: "holds no PEM certificate"},
		{name: "cert without key", opts: Options{Exporter: "otlp-http", CertFile: notPEM}, wantErr: "both a cert file and a key file"},
		{name: "bad cert", opts: Options{Exporter: "otlp-http", CertFile: notPEM, KeyFile: notPEM}, wantErr: "loading OTLP client certificate"},
		{name: "insecure with CA", opts: Options{Exporter: "otlp-http", Insecure: true, CAFile: notPEM}, wantErr: "insecure"},
		{name: "endpoint scheme", opts: Options{Exporter: "otlp-http", Endpoint: "ftp://collector:4318"}, wantErr: "scheme must be http or https"},
		{name: "endpoint without host", opts: Options{Exporter: "otlp-grpc", Endpoint: "http://"}, wantErr: "has no host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel, err := Setup(t.Context(), tc.opts)
			if err == nil {
				_ = tel.Shutdown(context.Background())
				t.Fatalf("Setup succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSetupMissingCAFileWrapsNotExist(t *testing.T) {
	clearOTelEnv(t)
	_, err := Setup(t.Context(), Options{Exporter: "otlp-http", CAFile: filepath.Join(t.TempDir(), "nope.pem")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
}

func TestResolveExporterFromEnv(t *testing.T) {
	tests := []struct {
		traces, protocol, tracesProtocol string
		want                             string
	}{
		{want: ExporterNone},
		{traces: "none", want: ExporterNone},
		{traces: "console", want: ExporterStdout},
		{traces: "otlp", want: ExporterOTLPGRPC},
		{traces: "otlp", protocol: "grpc", want: ExporterOTLPGRPC},
		{traces: "OTLP", protocol: "http/protobuf", want: ExporterOTLPHTTP},
		{traces: "otlp", protocol: "grpc", tracesProtocol: "http/protobuf", want: ExporterOTLPHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.traces+"/"+tc.protocol+"/"+tc.tracesProtocol, func(t *testing.T) {
			clearOTelEnv(t)
			t.Setenv("OTEL_TRACES_EXPORTER", tc.traces)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", tc.tracesProtocol)
			got, err := resolveExporter("")
			if err != nil || got != tc.want {
				t.Errorf("resolveExporter = %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	t.Run("option wins over env", func(t *testing.T) {
		clearOTelEnv(t)
		t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
		if got, err := resolveExporter("Stdout"); err != nil || got != ExporterStdout {
			t.Errorf("resolveExporter = %q, %v; want %q", got, err, ExporterStdout)
		}
	})
}

func TestEndpointURL(t *testing.T) {
	tests := []struct {
		endpoint, exporter, want string
	}{
		{"collector:4317", ExporterOTLPGRPC, ""},
		{"http://collector:4318", ExporterOTLPHTTP, "http://collector:4318/v1/traces"},
		{"https://collector:4318/", ExporterOTLPHTTP, "https://collector:4318/v1/traces"},
		{"https://gw.example.com/otlp", ExporterOTLPHTTP, "https://gw.example.com/otlp/v1/traces"},
		{"http://collector:4317", ExporterOTLPGRPC, "http://collector:4317"},
	}
	for _, tc := range tests {
		got, err := endpointURL(tc.endpoint, tc.exporter, "/v1/traces")
		if err != nil || got != tc.want {
			t.Errorf("endpointURL(%q, %q) = %q, %v; want %q", tc.endpoint, tc.exporter, got, err, tc.want)
		}
	}
}

func TestMergedHeaders(t *testing.T) {
	tests := []struct {
		name            string
		generic, signal string
		opts            map[string]string
		want            map[string]string
	}{
		{name: "no config headers leaves env to the exporter", generic: "a=1", want: nil},
		{name: "merged over generic", generic: "a=1,b=2", opts: map[string]string{"b": "3"}, want: map[string]string{"a": "1", "b": "3"}},
		{name: "signal env replaces generic", generic: "a=1", signal: "c=%20x", opts: map[string]string{"b": "3"}, want: map[string]string{"c": "x", "b": "3"}},
		{name: "malformed pairs skipped", generic: "junk,a=1,=2", opts: map[string]string{"b": "3"}, want: map[string]string{"a": "1", "b": "3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearOTelEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", tc.generic)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", tc.signal)
			got := mergedHeaders(Options{Headers: tc.opts}, "TRACES")
			if len(got) != len(tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("mergedHeaders = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("mergedHeaders[%q] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestShutdownTwice(t *testing.T) {
	clearOTelEnv(t)
	var buf bytes.Buffer
	tel, err := Setup(t.Context(), Options{Exporter: "stdout", Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, tel)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}
