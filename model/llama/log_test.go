package llama

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recordHandler keeps the records logged through it.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

// lines returns the llama.cpp lines logged, as "level: line".
func (h *recordHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		var level, line string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "llama_level":
				level = a.Value.String()
			case "line":
				line = a.Value.String()
			}
			return true
		})
		out = append(out, level+": "+line)
	}
	return out
}

// useLogger routes llama.cpp's lines to a new recordHandler for the rest
// of the test.
func useLogger(t *testing.T) (*recordHandler, *slog.Logger) {
	h := &recordHandler{}
	l := slog.New(h)
	t.Cleanup(func() { setLogger(nil) })
	return h, l
}

func TestLogLine(t *testing.T) {
	h, l := useLogger(t)
	setLogger(l)
	lastLlamaError()
	logLine(logLevelInfo, "loading\n")
	logLine(logLevelCont, ".")
	logLine(logLevelError, "  failed to read the header\n")
	logLine(logLevelCont, "of the file\n")
	logLine(logLevelWarn, "")
	logLine(logLevelDebug, "debug line")
	want := []string{"info: loading", "info: .", "error: failed to read the header", "error: of the file", "debug: debug line"}
	if got := h.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
	for _, r := range h.records {
		if r.Level != slog.LevelDebug || r.Message != "llama.cpp" {
			t.Errorf("record %v %q, want debug \"llama.cpp\"", r.Level, r.Message)
		}
	}
	if got := lastLlamaError(); got != "failed to read the header of the file" {
		t.Errorf("last error %q", got)
	}
	if got := lastLlamaError(); got != "" {
		t.Errorf("last error %q after it was read", got)
	}

	// Without a logger, lines go to slog.Default().
	setLogger(nil)
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	logLine(logLevelWarn, "to the default")
	if !strings.Contains(buf.String(), "to the default") {
		t.Errorf("slog.Default() got %q", buf.String())
	}
}

// TestLoadLogsToLogger: the logger of Options receives llama.cpp's lines,
// the error line of a failed load among them, and that line is the load's
// error too.
func TestLoadLogsToLogger(t *testing.T) {
	h, l := useLogger(t)
	bad := filepath.Join(t.TempDir(), "t.gguf")
	if err := os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad, Options{Logger: l})
	if err == nil {
		t.Fatal("a truncated file loaded")
	}
	var errorLines []string
	for _, line := range h.lines() {
		if s, ok := strings.CutPrefix(line, "error: "); ok {
			errorLines = append(errorLines, s)
		}
	}
	if len(errorLines) == 0 {
		t.Fatalf("no llama.cpp error line reached the logger; it got %q", h.lines())
	}
	if last := errorLines[len(errorLines)-1]; !strings.Contains(err.Error(), last) {
		t.Errorf("the load failed with %q, which lacks llama.cpp's last error line %q", err, last)
	}
	t.Logf("%d lines, the load's error: %v", len(h.lines()), err)

	// A later Load without a logger leaves it in place.
	n := len(h.lines())
	if _, err := Load(bad, Options{}); err == nil {
		t.Fatal("a truncated file loaded")
	}
	if len(h.lines()) == n {
		t.Error("a Load without a logger took the lines elsewhere")
	}
}
