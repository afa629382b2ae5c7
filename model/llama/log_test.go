package llama

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model/gguf"
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
	takeLlamaErrors()
	logLine(logLevelInfo, "loading\n")
	logLine(logLevelCont, ".")
	logLine(logLevelError, "  failed to read the header\n")
	logLine(logLevelCont, "of the file\n")
	logLine(logLevelWarn, "")
	logLine(logLevelDebug, "debug line")
	logLine(logLevelError, "failed to load\tthe model\n")
	want := []string{"info: loading", "info: .", "error: failed to read the header", "error: of the file", "debug: debug line", "error: failed to load\tthe model"}
	if got := h.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
	for _, r := range h.records {
		if r.Level != slog.LevelDebug || r.Message != "llama.cpp" {
			t.Errorf("record %v %q, want debug \"llama.cpp\"", r.Level, r.Message)
		}
	}
	// Every error line, not only the last, in one line.
	if got := takeLlamaErrors(); got != "failed to read the header of the file; failed to load the model" {
		t.Errorf("errors %q", got)
	}
	if got := takeLlamaErrors(); got != "" {
		t.Errorf("errors %q after they were taken", got)
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

// TestLlamaErrorsBounded: however many and however long the error lines,
// what a refusal says is one line of about maxErrorBytes, which counts the
// lines it leaves out.
func TestLlamaErrorsBounded(t *testing.T) {
	setLogger(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { setLogger(nil) })
	takeLlamaErrors()
	for i := range 200 {
		logLine(logLevelError, fmt.Sprintf("error line %d\n", i))
	}
	got := takeLlamaErrors()
	if len(got) > maxErrorBytes+64 || strings.Contains(got, "\n") {
		t.Errorf("%d bytes: %q", len(got), got)
	}
	if !strings.HasPrefix(got, "error line 0; error line 1; ") || !strings.Contains(got, "more error lines") {
		t.Errorf("errors %q: want the first lines, and a count of the rest", got)
	}
	logLine(logLevelError, strings.Repeat("é", maxErrorBytes))
	logLine(logLevelCont, "more")
	got = takeLlamaErrors()
	if len(got) > maxErrorBytes || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("one long line became %d bytes, %q…", len(got), got[:40])
	}
}

// TestLoadLogsToLogger: the logger of Options receives llama.cpp's lines;
// a load that llama.cpp refuses fails with every error line it logged.
func TestLoadLogsToLogger(t *testing.T) {
	h, l := useLogger(t)
	path, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load(path, Options{Logger: l, VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if len(h.lines()) == 0 {
		t.Fatal("no llama.cpp line reached the logger")
	}

	// A file that llama.cpp refuses: the gate in Load refuses it first,
	// so it goes to llama.cpp below Load.
	bad := filepath.Join(t.TempDir(), "t.gguf")
	if err := os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, Options{Logger: l}); !errors.Is(err, gguf.ErrFormat) {
		t.Fatalf("Load of a truncated file: %v, want the gate's gguf.ErrFormat", err)
	}
	n := len(h.lines())
	_, err = loadModel(bad, 0, false, nil)
	if err == nil {
		t.Fatal("llama.cpp loaded a truncated file")
	}
	var errorLines []string
	for _, line := range h.lines()[n:] {
		if s, ok := strings.CutPrefix(line, "error: "); ok {
			errorLines = append(errorLines, s)
		}
	}
	if len(errorLines) < 2 {
		t.Fatalf("%d llama.cpp error lines reached the logger, want several; it got %q", len(errorLines), h.lines()[n:])
	}
	if want := strings.Join(errorLines, "; "); err.Error() != want {
		t.Errorf("the load failed with\n%q\nwant every error line llama.cpp logged:\n%q", err, want)
	}
	t.Logf("the load's error: %v", err)
}
