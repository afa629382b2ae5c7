package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		// Nothing to hide: unchanged, byte for byte.
		{"", ""},
		{"/models/UniNER-7B-type.Q4_K_M.gguf", "/models/UniNER-7B-type.Q4_K_M.gguf"},
		{"synth:tiny", "synth:tiny"},
		{"otel-collector:4317", "otel-collector:4317"},
		{"https://gpu-1:8000/v1", "https://gpu-1:8000/v1"},
		{"hf://owner/repo/m.gguf@refs/pr/1", "hf://owner/repo/m.gguf@refs/pr/1"},
		{"http://[::1]:8080/a%20b/", "http://[::1]:8080/a%20b/"},
		// User information.
		{"https://user:PASS@gpu-1:8000/v1", "https://REDACTED:REDACTED@gpu-1:8000/v1"},
		{"https://TOKEN@github.example/m.gguf", "https://REDACTED@github.example/m.gguf"},
		{"https://u:p@ss@host/x", "https://REDACTED:REDACTED@host/x"},
		{"http://user:PASS@collector:4318", "http://REDACTED:REDACTED@collector:4318"},
		// Query and fragment: names kept, values hidden.
		{"https://bucket.s3.example/m.gguf?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef",
			"https://bucket.s3.example/m.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{"https://cdn.example/m.gguf?sig=abc;token=xyz&download", "https://cdn.example/m.gguf?sig=REDACTED&token=REDACTED&REDACTED"},
		{"https://h/m.gguf?", "https://h/m.gguf?"},
		{"https://h/m.gguf#access_token=xyz", "https://h/m.gguf#REDACTED"},
		{"https://h?key=abc", "https://h?key=REDACTED"},
		{"https://u:p@h/m.gguf?sig=abc#frag", "https://REDACTED:REDACTED@h/m.gguf?sig=REDACTED#REDACTED"},
		// Not URLs at the start: taken as text.
		{"openai:https://u:PASS@gpu-1/v1,https://gpu-2/v1?key=k", "openai:https://REDACTED:REDACTED@gpu-1/v1,https://gpu-2/v1?key=REDACTED"},
		// Does not parse: hidden all the same.
		{"https://u:PASS@h/%zz?sig=abc", "https://REDACTED:REDACTED@h/%zz?sig=REDACTED"},
		{"http://us er:hunter2@host:bad:port", "http://REDACTED:REDACTED@host:bad:port"},
	}
	for _, tt := range tests {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURL(t *testing.T) {
	u, err := url.Parse("https://user:PASS@h:8443/p/m.gguf?X-Amz-Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := URL(u), "https://REDACTED:REDACTED@h:8443/p/m.gguf?X-Amz-Signature=REDACTED"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if u.User.String() != "user:PASS" {
		t.Errorf("URL changed its argument: %v", u.User)
	}
	if URL(nil) != "" {
		t.Error("URL(nil) is not empty")
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no address here", "no address here"},
		{`fetching https://h/m.gguf?sig=abc: connection refused`, `fetching https://h/m.gguf?sig=REDACTED: connection refused`},
		{`Get "https://u:p@h/x?token=t": EOF`, `Get "https://REDACTED:REDACTED@h/x?token=REDACTED": EOF`},
		{"two: http://a@h1/x, and (https://h2/y?k=v).", "two: http://REDACTED@h1/x, and (https://h2/y?k=REDACTED)."},
		{"model: pulling https://h/m.gguf?X-Amz-Signature=s\nnext", "model: pulling https://h/m.gguf?X-Amz-Signature=REDACTED\nnext"},
		{"://odd 1https://u:p@h", "://odd 1https://REDACTED:REDACTED@h"},
		{"redirect=https://h/?next=https://u:p@e/", "redirect=https://h/?next=REDACTED"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestError checks the message of a failed request: net/http's *url.Error
// repeats the whole address, query included (and the user name; only a
// password becomes ***).
func TestError(t *testing.T) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://user:PASS@127.0.0.1:1/m.gguf?X-Amz-Signature=SECRET", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, reqErr := http.DefaultClient.Do(req)
	if reqErr == nil {
		t.Fatal("no error from a closed port")
	}
	if !strings.Contains(reqErr.Error(), "SECRET") {
		t.Fatalf("net/http no longer repeats the query (%q): the test shows nothing", reqErr)
	}
	wrapped := fmt.Errorf("pulling: %w", reqErr)
	tests := []struct {
		name string
		err  error
	}{
		{"url.Error", reqErr},
		{"wrapped", wrapped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Error(tt.err)
			for _, secret := range []string{"SECRET", "PASS", "user"} {
				if strings.Contains(got.Error(), secret) {
					t.Errorf("Error(%q) = %q: still holds %q", tt.err, got, secret)
				}
			}
			if !strings.Contains(got.Error(), "X-Amz-Signature=REDACTED") {
				t.Errorf("Error = %q, want the parameter's name kept", got)
			}
			var ue *url.Error
			if !errors.As(got, &ue) || !errors.Is(got, tt.err) {
				t.Errorf("Error(%v) lost the chain", tt.err)
			}
		})
	}
	plain := errors.New("nothing to hide")
	if Error(plain) != plain || Error(nil) != nil {
		t.Error("Error changed an error with nothing to hide")
	}
}

func TestTextDoesNotAllocateWithoutURLs(t *testing.T) {
	s := strings.Repeat("consumer_group: generation 3 ended ", 4)
	if n := testing.AllocsPerRun(100, func() { _ = Text(s) }); n != 0 {
		t.Errorf("Text allocates %v times on a string without URLs", n)
	}
}
