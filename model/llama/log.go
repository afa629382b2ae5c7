package llama

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxErrorBytes bounds the error lines kept between two takeLlamaErrors:
// what a refused load says, in one line.
const maxErrorBytes = 1024

// logs is where llama.cpp's log lines go. llama.cpp has one log callback
// for the whole process, so this state is process-wide too.
var logs struct {
	mu      sync.Mutex
	logger  *slog.Logger // nil: slog.Default(), looked up per line
	level   int          // level of the last line, for continuation lines
	errs    []string     // the error lines since the last takeLlamaErrors
	size    int          // their bytes, joined
	dropped int          // error lines past maxErrorBytes
}

// setLogger makes l the destination of llama.cpp's log lines; nil goes back
// to slog.Default().
func setLogger(l *slog.Logger) {
	logs.mu.Lock()
	logs.logger = l
	logs.mu.Unlock()
}

// logLine takes one line from llama.cpp's log callback. Every line goes to
// the logger at debug level: llama.cpp writes hundreds at each load, and
// its errors also come back to the caller as Go errors. Error lines, and
// the continuation lines that follow one, are kept for takeLlamaErrors.
func logLine(level int, text string) {
	msg := strings.TrimSpace(text)
	logs.mu.Lock()
	if level == logLevelCont {
		level = logs.level
		if level == logLevelError && msg != "" {
			continueError(msg)
		}
	} else {
		logs.level = level
		if level == logLevelError && msg != "" {
			addError(msg)
		}
	}
	l := logs.logger
	logs.mu.Unlock()
	if msg == "" {
		return
	}
	if l == nil {
		l = slog.Default()
	}
	l.Log(context.Background(), slog.LevelDebug, "llama.cpp", "llama_level", levelName(level), "line", msg)
}

// oneLine joins a line's words with single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// addError keeps an error line, within maxErrorBytes. Called with logs.mu
// held.
func addError(msg string) {
	sep := 0
	if len(logs.errs) > 0 {
		sep = len("; ")
	}
	room := maxErrorBytes - logs.size - sep
	if room <= 0 {
		logs.dropped++
		return
	}
	msg = cut(oneLine(msg), room)
	logs.errs = append(logs.errs, msg)
	logs.size += sep + len(msg)
}

// continueError adds a continuation to the last error line, within
// maxErrorBytes. Called with logs.mu held.
func continueError(msg string) {
	room := maxErrorBytes - logs.size - 1
	if len(logs.errs) == 0 || room <= 0 {
		return
	}
	msg = cut(oneLine(msg), room)
	logs.errs[len(logs.errs)-1] += " " + msg
	logs.size += 1 + len(msg)
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	n -= len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if n <= 0 {
		return mark
	}
	return s[:n] + mark
}

func levelName(level int) string {
	switch level {
	case logLevelDebug:
		return "debug"
	case logLevelInfo:
		return "info"
	case logLevelWarn:
		return "warn"
	case logLevelError:
		return "error"
	}
	return "none"
}

// takeLlamaErrors returns (and forgets) every error line llama.cpp logged
// since the last call, in order, joined with "; " into one line of about
// maxErrorBytes at most.
func takeLlamaErrors() string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	s := strings.Join(logs.errs, "; ")
	if logs.dropped > 0 {
		s += fmt.Sprintf("; and %d more error lines", logs.dropped)
	}
	logs.errs, logs.size, logs.dropped = nil, 0, 0
	return s
}
