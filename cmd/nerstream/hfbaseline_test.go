package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHFBaselinePrompts: the prompts that bench engine --prompts-out writes
// are what scripts/hf_baseline.py reads (its --dry-run checks them and
// prints its plan without PyTorch), and the script refuses a malformed
// file with one line.
func TestHFBaselinePrompts(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_PYTHON") != "" {
			t.Fatalf("python3 is not installed (%v), and NERSTREAM_REQUIRE_PYTHON is set", err)
		}
		t.Skipf("python3 is not installed (%v)", err)
	}
	prompts := filepath.Join(t.TempDir(), "prompts.jsonl")
	code, _, errs := runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--threads", "1", "--docs", "3", "--types", "4",
		"--doc-tokens", "16", "--max-new-tokens", "5", "--skip-naive", "--prompts-out", prompts)
	if code != 0 {
		t.Fatalf("bench engine: exit %d: %s", code, errs)
	}
	script := filepath.Join("..", "..", "scripts", "hf_baseline.py")
	// A bound on each run, so that a hang is this test's failure, not the
	// package's time-out.
	run := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return exec.CommandContext(ctx, python, append([]string{script}, args...)...).CombinedOutput()
	}
	out, err := run("--prompts", prompts, "--batch-docs", "2", "--dry-run")
	if err != nil {
		t.Fatalf("hf_baseline.py --dry-run: %v: %s", err, out)
	}
	var plan struct {
		Docs          int `json:"docs"`
		Prompts       int `json:"prompts"`
		MaxNewTokens  int `json:"max_new_tokens"`
		BatchedCalls  int `json:"batched_calls"`
		LongestPrompt int `json:"longest_prompt"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if plan.Docs != 3 || plan.Prompts != 12 || plan.MaxNewTokens != 5 || plan.BatchedCalls != 2 || plan.LongestPrompt < 16 {
		t.Errorf("plan %+v from %s", plan, out)
	}
	for name, body := range map[string]string{
		"not JSON":        "{\n",
		"an id past 32k":  `{"doc": 0, "type": "person", "ids": [1, 32000], "max_new_tokens": 4}` + "\n",
		"no ids":          `{"doc": 0, "type": "person", "ids": [], "max_new_tokens": 4}` + "\n",
		"two caps":        `{"doc": 0, "type": "a", "ids": [1], "max_new_tokens": 4}` + "\n" + `{"doc": 0, "type": "b", "ids": [1], "max_new_tokens": 5}` + "\n",
		"empty":           "",
		"a string doc id": `{"doc": "0", "type": "person", "ids": [1], "max_new_tokens": 4}` + "\n",
	} {
		bad := filepath.Join(t.TempDir(), "bad.jsonl")
		os.WriteFile(bad, []byte(body), 0o644)
		out, err := run("--prompts", bad, "--dry-run")
		msg := strings.TrimSpace(string(out))
		if err == nil || strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "hf_baseline: ") || strings.Contains(msg, "Traceback") {
			t.Errorf("%s: exit %v, output %q; want one line and a failure", name, err, msg)
		}
	}
}

// TestPromptsOutRefused: bench engine's --prompts-out to a path that
// cannot be written is bad usage, in one line, before any measuring.
func TestPromptsOutRefused(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "no such folder", "prompts.jsonl")
	code, out, errs := runCLI(t, "", "bench", "engine", "--model", "synth:tiny", "--threads", "1", "--docs", "1", "--types", "1",
		"--doc-tokens", "8", "--max-new-tokens", "2", "--skip-naive", "--prompts-out", bad)
	checkOneLineError(t, code, 2, errs, "--prompts-out")
	if out != "" {
		t.Errorf("measured anyway: %s", out)
	}
}
