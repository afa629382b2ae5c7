// Package openaiapi is the OpenAI-compatible HTTP API as nerstream speaks
// it, on both sides: the wire types of /v1/completions and /tokenize, which
// the openai engine (model/openai) sends and nerstream serve (server)
// answers, the error body, and what the clients (model/openai and the
// distillation teacher, distill) need besides: Retry-After, error messages,
// API keys. Clients back off with internal/backoff, and show their
// addresses through internal/redact.
package openaiapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxMessage bounds the bytes of a server's error message that
// [ErrorMessage] keeps.
const MaxMessage = 300

// RetryAfter reads a Retry-After header: seconds, or an HTTP date, as a
// wait from now. It returns 0 when there is none, it cannot be read, or it
// is in the past.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ErrorMessage finds the message in an error body: OpenAI's, vLLM's and
// llama-server's {"error": {"message": …}}, {"error": "…"}, {"message": …},
// or the text itself; on one line, valid UTF-8, and shortened to
// [MaxMessage] bytes.
func ErrorMessage(body string) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	msg := body
	if json.Unmarshal([]byte(body), &v) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &inner) == nil && inner.Message != "":
			msg = inner.Message
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			msg = s
		default:
			msg = v.Message
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > MaxMessage {
		cut := MaxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return strings.ToValidUTF8(msg, "\uFFFD")
}

// APIKey returns the API key to send: key, or the contents of file (white
// space at the ends dropped) when file is set. Setting both, an empty or
// unreadable file, and a key with a line break (which would split the
// Authorization header) are errors.
func APIKey(key, file string) (string, error) {
	switch {
	case key != "" && file != "":
		return "", errors.New("set the API key or the API key file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the API key file: %w", err)
		}
		key = strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("the API key file %s is empty", file)
		}
	}
	if strings.ContainsAny(key, "\r\n") {
		return "", errors.New("the API key holds a line break")
	}
	return key, nil
}

// StatusHint is what to check after an HTTP status that a client's
// settings cause, in parentheses with a leading space; "" for the others.
func StatusHint(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return " (the server refused the API key: check the API key or API key file)"
	case http.StatusForbidden:
		return " (the API key is not allowed this request)"
	case http.StatusNotFound:
		return " (check the base URL and the model name)"
	}
	return ""
}
