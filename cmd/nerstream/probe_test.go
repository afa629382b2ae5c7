package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAnnotateFailsFastOnARefusingServer: a server that refuses every
// request with the same 4xx (issue 16: Ollama refusing list prompts, a
// wrong model name) made every document a dead letter. Now the start-up
// probe finds it: annotate exits at once with one line that gives the
// server's reason, and sends no document.
func TestAnnotateFailsFastOnARefusingServer(t *testing.T) {
	for _, c := range []struct {
		code int
		msg  string
	}{
		{400, "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string"},
		{404, `model "uniner" not found, try pulling it first`},
	} {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.code)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": c.msg}})
		}))
		code, out, errs := runCLI(t, `{"text": "Ada Lovelace met Charles Babbage."}`+"\n", "annotate", "--engine", "openai", "--endpoint", srv.URL+"/v1")
		srv.Close()
		if code == 0 || out != "" {
			t.Fatalf("%d: exit %d, output %q", c.code, code, out)
		}
		if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "refuses") || !strings.Contains(errs, strings.Fields(c.msg)[0]) {
			t.Errorf("%d: stderr %q, want one line with the refusal", c.code, errs)
		}
		if hits.Load() != 1 {
			t.Errorf("%d: %d requests, want the one probe", c.code, hits.Load())
		}
	}
}
