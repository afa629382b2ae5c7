package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func TestParseLogLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{in: "debug", want: slog.LevelDebug},
		{in: "info", want: slog.LevelInfo},
		{in: "warn", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "DEBUG", want: slog.LevelDebug},
		{in: " Warn ", want: slog.LevelWarn},
		{in: "", wantErr: true},
		{in: "verbose", wantErr: true},
		{in: "warning", wantErr: true},
		{in: "-4", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseLogLevel(tc.in)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("ParseLogLevel(%q) = %v, want an error", tc.in, got)
		case tc.wantErr && !strings.Contains(err.Error(), "debug, info, warn or error"):
			t.Errorf("ParseLogLevel(%q) error %q does not list the levels", tc.in, err)
		case !tc.wantErr && (err != nil || got != tc.want):
			t.Errorf("ParseLogLevel(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

var testSpanContext = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpanID  = "00f067aa0ba902b7"
)

func TestLogHandlerJSON(t *testing.T) {
	spanCtx := trace.ContextWithSpanContext(context.Background(), testSpanContext)
	tests := []struct {
		name      string
		ctx       context.Context
		logger    func(*slog.Logger) *slog.Logger
		wantTrace bool
		want      map[string]any // further top-level fields, compared as JSON
	}{
		{name: "span", ctx: spanCtx, wantTrace: true, want: map[string]any{"k": "v"}},
		{name: "no span", ctx: context.Background(), want: map[string]any{"k": "v"}},
		{
			name:      "invalid span context",
			ctx:       trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}),
			want:      map[string]any{"k": "v"},
			wantTrace: false,
		},
		{
			name:      "WithAttrs",
			ctx:       spanCtx,
			logger:    func(l *slog.Logger) *slog.Logger { return l.With("component", "consumer") },
			wantTrace: true,
			want:      map[string]any{"component": "consumer", "k": "v"},
		},
		{
			name:      "WithGroup",
			ctx:       spanCtx,
			logger:    func(l *slog.Logger) *slog.Logger { return l.WithGroup("rec") },
			wantTrace: true,
			want:      map[string]any{"rec": map[string]any{"k": "v"}},
		},
		{
			name: "attrs, groups and attrs inside groups",
			ctx:  spanCtx,
			logger: func(l *slog.Logger) *slog.Logger {
				return l.With("a", 1).WithGroup("g1").With("b", 2).WithGroup("g2").With("c", 3)
			},
			wantTrace: true,
			want: map[string]any{
				"a":  1,
				"g1": map[string]any{"b": 2, "g2": map[string]any{"c": 3, "k": "v"}},
			},
		},
		{
			name: "groups without a span",
			ctx:  context.Background(),
			logger: func(l *slog.Logger) *slog.Logger {
				return l.WithGroup("g").With("b", 2)
			},
			want: map[string]any{"g": map[string]any{"b": 2, "k": "v"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h, err := NewLogHandler(&buf, LogOptions{})
			if err != nil {
				t.Fatal(err)
			}
			logger := slog.New(h)
			if tc.logger != nil {
				logger = tc.logger(logger)
			}
			logger.InfoContext(tc.ctx, "hello", "k", "v")

			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not one JSON record: %v: %s", err, buf.String())
			}
			if tc.wantTrace {
				if got[LogKeyTraceID] != testTraceID || got[LogKeySpanID] != testSpanID {
					t.Errorf("trace_id, span_id = %v, %v; want %s, %s in %s",
						got[LogKeyTraceID], got[LogKeySpanID], testTraceID, testSpanID, buf.String())
				}
			} else if _, ok := got[LogKeyTraceID]; ok {
				t.Errorf("trace_id present without a span: %s", buf.String())
			}
			if got["msg"] != "hello" || got["level"] != "INFO" {
				t.Errorf("msg, level = %v, %v in %s", got["msg"], got["level"], buf.String())
			}
			for k, want := range tc.want {
				wantJSON, _ := json.Marshal(want)
				gotJSON, _ := json.Marshal(got[k])
				if string(gotJSON) != string(wantJSON) {
					t.Errorf("%s = %s, want %s (record %s)", k, gotJSON, wantJSON, buf.String())
				}
			}
		})
	}
}

// TestLogHandlerRecordNotShared checks that adding the trace attributes does
// not write into a record the caller still holds (copies of a slog.Record
// share the attributes past the few it holds inline).
func TestLogHandlerRecordNotShared(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), testSpanContext)
	for n := 0; n <= 12; n++ {
		var traced, plain bytes.Buffer
		h, err := NewLogHandler(&traced, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		other := slog.NewJSONHandler(&plain, nil)
		r := slog.NewRecord(testTime, slog.LevelInfo, "hello", 0)
		for i := range n {
			r.AddAttrs(slog.Int(fmt.Sprint("a", i), i))
		}
		if err := h.Handle(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.AddAttrs(slog.Int("b", 2))
		if err := other.Handle(ctx, r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plain.String(), LogKeyTraceID) || strings.Contains(plain.String(), "BUG") {
			t.Errorf("%d attrs: the handler wrote into the caller's record: %s", n, plain.String())
		}
		if !strings.Contains(traced.String(), testTraceID) {
			t.Errorf("%d attrs: no trace_id: %s", n, traced.String())
		}
	}
}

func TestLogHandlerText(t *testing.T) {
	var buf bytes.Buffer
	h, err := NewLogHandler(&buf, LogOptions{Format: "text", Level: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	ctx := trace.ContextWithSpanContext(context.Background(), testSpanContext)
	slog.New(h).WithGroup("g").DebugContext(ctx, "hello", "k", "v")
	out := buf.String()
	for _, want := range []string{"level=DEBUG", "msg=hello", "trace_id=" + testTraceID, "span_id=" + testSpanID, "g.k=v"} {
		if !strings.Contains(out, want) {
			t.Errorf("text record lacks %q: %s", want, out)
		}
	}
}

func TestLogHandlerLevel(t *testing.T) {
	tests := []struct {
		level     slog.Level
		logAt     slog.Level
		wantLines int
	}{
		{level: 0, logAt: slog.LevelDebug, wantLines: 0}, // default info
		{level: 0, logAt: slog.LevelInfo, wantLines: 1},
		{level: slog.LevelDebug, logAt: slog.LevelDebug, wantLines: 1},
		{level: slog.LevelError, logAt: slog.LevelWarn, wantLines: 0},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		h, err := NewLogHandler(&buf, LogOptions{Level: tc.level})
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).WithGroup("g").Log(context.Background(), tc.logAt, "m")
		if got := strings.Count(buf.String(), "\n"); got != tc.wantLines {
			t.Errorf("level %v, logged at %v: %d lines, want %d", tc.level, tc.logAt, got, tc.wantLines)
		}
	}
}

func TestNewLogHandlerBadFormat(t *testing.T) {
	if _, err := NewLogHandler(&bytes.Buffer{}, LogOptions{Format: "xml"}); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("NewLogHandler(xml) error = %v, want one naming the format", err)
	}
}

// TestLogRedactsAddresses is a regression test of issue 16's finding that
// logs showed secrets. Reproduction, before the fix: run with model.path
// set to a presigned address logged "model: in the cache" with
// "ref":"https://…?X-Amz-Signature=…", and an error or a list naming an
// endpoint https://user:PASSWORD@… was logged as it was. Now the handler
// shows every address in the message, a string, an error or a list of
// strings with its user information and query values REDACTED.
func TestLogRedactsAddresses(t *testing.T) {
	const (
		ref      = "https://bucket.example/m.gguf?X-Amz-Signature=SIGSECRET"
		endpoint = "https://user:PASSSECRET@gpu-1:8000/v1"
	)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			h, err := NewLogHandler(&buf, LogOptions{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(h)
			log.Info("model: in the cache", "ref", ref, "path", "/cache/m.gguf")
			log.Warn("openai: "+endpoint+" failed", "err", fmt.Errorf("post %q: %w", endpoint, context.DeadlineExceeded))
			log.Info("model: remote", "endpoints", []string{endpoint, "http://gpu-2:8000/v1"})
			log.WithGroup("g").With("ref", ref).Info("grouped")
			out := buf.String()
			for _, secret := range []string{"SIGSECRET", "PASSSECRET", "user:"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log shows %q:\n%s", secret, out)
				}
			}
			for _, want := range []string{"X-Amz-Signature=REDACTED", "REDACTED:REDACTED@gpu-1:8000/v1", "http://gpu-2:8000/v1", "/cache/m.gguf"} {
				if !strings.Contains(out, want) {
					t.Errorf("the log does not show %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestLogDurations: a duration reads as Go writes it, "30s", in JSON as
// in text, at the top level and inside groups; not as nanoseconds.
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			h, err := NewLogHandler(&buf, LogOptions{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(h)
			log.Info("serve: stopping", "drain_timeout", 30*time.Second, slog.Group("batch", "linger", 1500*time.Microsecond))
			log.WithGroup("g").With("after", 2*time.Minute).Info("grouped", "count", 3)
			out := buf.String()
			if strings.Contains(out, "30000000000") || strings.Contains(out, "1500000") || strings.Contains(out, "120000000000") {
				t.Errorf("a duration in nanoseconds:\n%s", out)
			}
			want := []string{`drain_timeout=30s`, `batch.linger=1.5ms`, `g.after=2m0s`, `g.count=3`}
			if format == "json" {
				want = []string{`"drain_timeout":"30s"`, `"batch":{"linger":"1.5ms"}`, `"g":{"after":"2m0s","count":3}`}
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("the log does not show %s:\n%s", w, out)
				}
			}
		})
	}
}
