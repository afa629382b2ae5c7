package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/bench"
)

// TestBenchEngineRemote runs bench engine --engine openai against nerstream
// serve on loopback, with the in-process baseline on the same model: every
// document answered, one request each, and the same answers as in process.
// The endpoint carries a user name and password, which the report, printed
// and kept, shows REDACTED (issue 16: it used to show them).
func TestBenchEngineRemote(t *testing.T) {
	base := strings.Replace(startServe(t), "http://", "http://bench:PASSSECRET@", 1)
	code, out, errs := runCLI(t, "", "bench", "engine", "--engine", "openai", "--endpoint", base+"/v1", "--model", "synth:tiny",
		"--clients", "4", "--docs", "12", "--types", "3", "--doc-tokens", "40", "--max-new-tokens", "4", "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res bench.RemoteResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Docs != 12 || res.Clients != 4 || res.Requests < 12 || res.RemoteDocsPerS <= 0 || res.InProcessDocsPerS <= 0 || res.Ratio <= 0 {
		t.Errorf("figures %+v", res)
	}
	if res.PromptTokens <= 12*3*40 {
		t.Errorf("prompt tokens %d: not every prompt was answered", res.PromptTokens)
	}
	if res.AnswersDiffer == nil || *res.AnswersDiffer != 0 {
		t.Errorf("answers differ from the in-process engine's: %v", res.AnswersDiffer)
	}
	if strings.Contains(out+errs, "PASSSECRET") || len(res.Endpoints) != 1 || !strings.HasPrefix(res.Endpoints[0], "http://REDACTED:REDACTED@") {
		t.Errorf("the report shows the endpoint as %q (stderr %q)", res.Endpoints, errs)
	}
}

func TestBenchEngineUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "engine", "--engine", "openai"},
		{"bench", "engine", "--engine", "openai", "--endpoint", "http://127.0.0.1:1/v1", "--clients", "0"},
		{"bench", "engine", "--engine", "tgi", "--model", "synth:tiny"},
		{"bench", "engine"},
	} {
		code, _, errs := runCLI(t, "", args...)
		if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want 2 and one line", args, code, errs)
		}
	}
}
