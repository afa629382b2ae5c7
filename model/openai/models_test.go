package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServedModel: the first model that the first answering endpoint
// lists, a GGUF path named by its file; a list that names no usable model
// is an error in one line, and a hostile name never comes back.
func TestServedModel(t *testing.T) {
	serving := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.URL.Path != "/v1/models" || r.Header.Get("Authorization") != "Bearer k3y" {
				http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
				return
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/v1"
	}
	list := func(ids ...string) string {
		var items []string
		for _, id := range ids {
			b, _ := json.Marshal(id)
			items = append(items, fmt.Sprintf(`{"id": %s, "object": "model"}`, b))
		}
		return `{"object": "list", "data": [` + strings.Join(items, ", ") + `]}`
	}
	down := serving(http.StatusServiceUnavailable, `{"error": {"message": "loading"}}`)
	for _, c := range []struct {
		name      string
		endpoints []string
		want      string // "" for an error
		says      string // what the error says
	}{
		{"vLLM", []string{serving(200, list("Universal-NER/UniNER-7B-type", "lora-1"))}, "Universal-NER/UniNER-7B-type", ""},
		{"llama-server", []string{serving(200, list("/models/UniNER-7B-type.Q4_K_M.gguf"))}, "UniNER-7B-type.Q4_K_M.gguf", ""},
		{"the second answers", []string{down, serving(200, list("uniner"))}, "uniner", ""},
		{"none answers", []string{down}, "", "503 Service Unavailable"},
		{"an empty list", []string{serving(200, list())}, "", "lists no model"},
		{"not JSON", []string{serving(200, "<html>")}, "", "malformed answer"},
		{"a control character", []string{serving(200, list("evil\x1b[31m\nname"))}, "", "not a line of text"},
		{"too long", []string{serving(200, list(strings.Repeat("m", 257)))}, "", "not a line of text"},
		{"empty", []string{serving(200, list(""))}, "", "not a line of text"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(Options{Endpoints: c.endpoints, APIKey: "k3y"})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got, err := e.ServedModel(context.Background())
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("ServedModel = %q, %v, want %q", got, err, c.want)
				}
				return
			}
			if err == nil || got != "" || !strings.Contains(err.Error(), c.says) || strings.ContainsAny(err.Error(), "\n\x1b") || strings.Contains(err.Error(), "k3y") {
				t.Fatalf("ServedModel = %q, %v, want one line that says %q", got, err, c.says)
			}
		})
	}
	// A cancelled context stops at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, _ := New(Options{Endpoints: []string{down, down + "2"}})
	if _, err := e.ServedModel(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
