package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/internal/redact"
)

// Keys of the trace correlation attributes [NewLogHandler] adds.
const (
	// LogKeyTraceID is the key of the 32-hex-digit trace ID.
	LogKeyTraceID = "trace_id"
	// LogKeySpanID is the key of the 16-hex-digit span ID.
	LogKeySpanID = "span_id"
)

// LogOptions configures [NewLogHandler].
type LogOptions struct {
	// Level is the minimum level logged.
	//
	// Default 0: slog.LevelInfo. Debug logs per-record detail, too much for
	// a busy stream outside of debugging.
	Level slog.Level

	// Format is "json" or "text".
	//
	// Default "": "json", which log collectors parse without configuration.
	Format string
}

// LogConfig is the log section of the configuration: the logs on
// standard error.
type LogConfig struct {
	// Level is "debug", "info" (default), "warn" or "error". No level
	// above debug logs document text.
	Level string `yaml:"level"`
	// Format is "json" (default: one object per line, with trace_id and
	// span_id when the line belongs to a span) or "text".
	Format string `yaml:"format"`
}

// DefaultLogConfig returns the log settings of a process.
func DefaultLogConfig() LogConfig { return LogConfig{Level: "info", Format: "json"} }

// Validate reports every problem of the settings, at their YAML keys.
func (c LogConfig) Validate() error {
	var p problems.List
	if _, err := ParseLogLevel(c.Level); err != nil {
		p.Addf("level", "%q is not one of debug, info, warn, error", c.Level)
	}
	if c.Format != "json" && c.Format != "text" {
		p.Addf("format", "%q is not one of json, text", c.Format)
	}
	return p.Err()
}

// NewLogger returns the logger that c describes, writing to w (os.Stderr
// when w is nil), with the trace correlation of [NewLogHandler].
func NewLogger(w io.Writer, c LogConfig) (*slog.Logger, error) {
	level, err := ParseLogLevel(c.Level)
	if err != nil {
		return nil, err
	}
	h, err := NewLogHandler(w, LogOptions{Level: level, Format: c.Format})
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// ParseLogLevel parses a level name: debug, info, warn or error, in any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// NewLogHandler returns a JSON or text handler writing to w (os.Stderr when
// w is nil). A record logged with a context that holds a valid span context
// (e.g. slog.InfoContext(ctx, ...) inside a span) gets top-level trace_id and
// span_id attributes, in hex, so logs and traces can be joined; the handlers
// from WithAttrs and WithGroup do the same. Every address in a line is
// shown with its user information and query values REDACTED (see
// redactAttr), and every duration as Go writes it ("30s", "1.5ms"), in
// JSON as in text: slog's JSON handler would write nanoseconds
// ("drain_timeout":30000000000).
func NewLogHandler(w io.Writer, opts LogOptions) (slog.Handler, error) {
	if w == nil {
		w = os.Stderr
	}
	ho := &slog.HandlerOptions{Level: opts.Level, ReplaceAttr: replaceAttr}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(opts.Format)) {
	case "", "json":
		h = slog.NewJSONHandler(w, ho)
	case "text":
		h = slog.NewTextHandler(w, ho)
	default:
		return nil, fmt.Errorf("unknown log format %q (want json or text)", opts.Format)
	}
	return &traceHandler{base: h}, nil
}

// replaceAttr writes a duration as its String, and redacts (redactAttr).
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
		return a
	}
	return redactAttr(groups, a)
}

// redactAttr shows every address in a log line (the message, a string, a
// list of strings or an error) with its user information and query values
// hidden (internal/redact), whichever package logged it: a model reference
// signed for its download, an endpoint with a password, an error that
// repeats either.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "://") {
			a.Value = slog.StringValue(redact.Text(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			if s := v.Error(); strings.Contains(s, "://") {
				a.Value = slog.StringValue(redact.Text(s))
			}
		case []string:
			if slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, "://") }) {
				shown := make([]string, len(v))
				for i, s := range v {
					shown[i] = redact.String(s)
				}
				a.Value = slog.AnyValue(shown)
			}
		}
	}
	return a
}

// traceHandler adds the span context of the record's context to the record.
//
// To keep trace_id and span_id at the top level under WithGroup, it opens
// groups itself: base has the attributes given before the first WithGroup,
// and the groups (and attributes given inside them) are applied to each
// record in Handle.
type traceHandler struct {
	base   slog.Handler
	groups []groupOrAttrs
}

// groupOrAttrs is a WithGroup (group set) or a WithAttrs (attrs set).
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.groups) == 0 {
		return &traceHandler{base: h.base.WithAttrs(attrs)}
	}
	return &traceHandler{base: h.base, groups: append(slices.Clip(h.groups), groupOrAttrs{attrs: attrs})}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &traceHandler{base: h.base, groups: append(slices.Clip(h.groups), groupOrAttrs{group: name})}
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if len(h.groups) == 0 {
		if sc.IsValid() {
			// A copy of a Record shares its attributes with the original:
			// clone before adding.
			r = r.Clone()
			r.AddAttrs(
				slog.String(LogKeyTraceID, sc.TraceID().String()),
				slog.String(LogKeySpanID, sc.SpanID().String()),
			)
		}
		return h.base.Handle(ctx, r)
	}

	// The record's attributes belong in the innermost group; wrap them in
	// the groups from the inside out.
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	for _, g := range slices.Backward(h.groups) {
		if g.group == "" {
			attrs = append(slices.Clip(g.attrs), attrs...)
			continue
		}
		attrs = []slog.Attr{{Key: g.group, Value: slog.GroupValue(attrs...)}}
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if sc.IsValid() {
		nr.AddAttrs(
			slog.String(LogKeyTraceID, sc.TraceID().String()),
			slog.String(LogKeySpanID, sc.SpanID().String()),
		)
	}
	nr.AddAttrs(attrs...)
	return h.base.Handle(ctx, nr)
}
