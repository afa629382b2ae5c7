package llama

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logs is where llama.cpp's log lines go. llama.cpp has one log callback
// for the whole process, so this state is process-wide too.
var logs struct {
	mu      sync.Mutex
	logger  *slog.Logger // nil: slog.Default(), looked up per line
	level   int          // level of the last line, for continuation lines
	lastErr string       // the last error llama.cpp logged
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
// its errors also come back to the caller as Go errors. Error lines are
// kept for lastLlamaError.
func logLine(level int, text string) {
	msg := strings.TrimSpace(text)
	logs.mu.Lock()
	if level == logLevelCont {
		level = logs.level
		if level == logLevelError && msg != "" {
			logs.lastErr = strings.TrimSpace(logs.lastErr + " " + msg)
		}
	} else {
		logs.level = level
		if level == logLevelError && msg != "" {
			logs.lastErr = msg
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

// lastLlamaError returns (and forgets) the last error line llama.cpp logged.
func lastLlamaError() string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	s := logs.lastErr
	logs.lastErr = ""
	return s
}
