package openaiapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-1", 0},
		{"soon", 0},
		{"Wed, 21 Oct 2026 07:28:30 GMT", 30 * time.Second},
		{"Wed, 21 Oct 2026 07:27:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.h, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		body, want string
	}{
		{`{"error":{"message":"bad model","code":404}}`, "bad model"},
		{`{"error":"plain"}`, "plain"},
		{`{"message":"top level"}`, "top level"},
		{"not json\n\tat all", "not json at all"},
		{long, strings.Repeat("é", 150) + "…"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ErrorMessage(tt.body); got != tt.want {
			t.Errorf("ErrorMessage(%.40q) = %.40q, want %.40q", tt.body, got, tt.want)
		}
	}
}

func TestAPIKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, empty, broken := write("good", "  sk-123\n"), write("empty", " \n"), write("broken", "sk-1\nsk-2")
	tests := []struct {
		key, file, want, err string
	}{
		{"", "", "", ""},
		{"sk-env", "", "sk-env", ""},
		{"", good, "sk-123", ""},
		{"sk-env", good, "", "not both"},
		{"", empty, "", "is empty"},
		{"", filepath.Join(dir, "missing"), "", "reading the API key file"},
		{"", broken, "", "line break"},
		{"a\r\nb", "", "", "line break"},
	}
	for _, tt := range tests {
		got, err := APIKey(tt.key, tt.file)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("APIKey(%q, %q) = %q, %v; want %q, %q", tt.key, tt.file, got, err, tt.want, tt.err)
		}
	}
}
