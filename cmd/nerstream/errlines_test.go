package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
)

// TestErrorLines runs each command's typical failures: each exits with
// its code and one line on stderr that says what is wrong, without a
// prefix said twice in a row ("nerstream prompt: prompt: …", "FILE: FILE:
// …", "nerstream config: config: …"). Reproductions, before the fixes:
// prompt's template errors, config's read error and run's problems all
// repeated the prefix before them; eval called a malformed predictions
// file a "bad dataset file"; a YAML syntax error came with six "required"
// problems of the defaults; a SASL password alone was "a SASL user".
func TestErrorLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	syntax := write("syntax.yaml", "kafka:\n  brokers: [\n")
	password := write("password.yaml", "kafka:\n  sasl:\n    password: s3cret\n")
	garbage := write("garbage.txt", "garbage\n")
	badPreds := write("preds.jsonl", `{"id": "CrossNER_AI_0", "output": "[]"}`+"\nnot json\n")
	sample := filepath.Join("..", "..", "examples", "eval", "crossner_ai_sample.json")
	// A model past the GGUF gate that llama.cpp loads, but whose "</s>"
	// is no special token: bad input (exit 2), not a failure to run.
	noTypes := filepath.Join(dir, "no-token-types.gguf")
	m, err := gguftest.Base()
	if err != nil {
		t.Fatal(err)
	}
	m.Delete(gguf.KeyTokenTypes)
	if err := m.WriteFile(noTypes); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args    []string
		stdin   string
		code    int
		says    string // on stderr
		stdout  string // on stdout, when not ""
		notSays string // nowhere, when not ""
	}{
		{args: []string{"run", "--config", missing}, code: 2, says: "reading the configuration: open " + missing},
		{args: []string{"run", "--config", syntax}, code: 2, says: "nerstream run: " + syntax + ": line 2: did not find expected node content", notSays: "required"},
		{args: []string{"config", "check", "--config", syntax}, code: 2, says: "nerstream config: " + syntax + ": line 2: did not find expected node content", notSays: "required"},
		{args: []string{"config", "print", "--config", syntax}, code: 2, says: syntax + ": line 2:", notSays: "required"},
		{args: []string{"config", "check", "--config", missing}, code: 2, says: "reading the configuration: open"},
		{args: []string{"config", "check", "--config", password}, code: 2, says: "problems (listed on standard output)",
			stdout: "kafka.sasl.mechanism: sasl.password set, but no mechanism", notSays: "SASL user"},
		{args: []string{"prompt", "--text", "a", "--type", "x", "--variant", "bogus"}, code: 2, says: `nerstream prompt: unknown prompt variant "bogus"`},
		{args: []string{"prompt", "--text", "a", "--type", "x", "--variant", "supervised"}, code: 2, says: "needs a dataset name"},
		{args: []string{"prompt", "--text", "a", "--type", "x", "--config", missing}, code: 2, says: "reading the configuration"},
		{args: []string{"prompt", "--text", "a", "--type", "x", "--config", syntax}, code: 2, says: syntax + ": line 2:"},
		{args: []string{"prompt", "--bogus"}, code: 2, says: "flag provided but not defined"},
		{args: []string{"eval", "--data", sample, "--predictions", badPreds}, code: 2, says: "--predictions " + badPreds + ": bad predictions file: line 2:", notSays: "dataset"},
		{args: []string{"eval", "--data", garbage, "--predictions", badPreds}, code: 2, says: "bad dataset file: line 1"},
		{args: []string{"eval", "--data", missing, "--predictions", badPreds}, code: 2, says: "--data"},
		{args: []string{"eval", "--data", sample, "--predictions", missing}, code: 2, says: "--predictions"},
		{args: []string{"annotate", "--model", missing}, code: 2, says: "--model: bad model spec"},
		{args: []string{"annotate", "--model", "synth:tiny", missing}, code: 2, says: "no such file"},
		{args: []string{"annotate", "--model", "synth:tiny", "--types", ","}, code: 2, says: "--types names no entity type"},
		{args: []string{"annotate", "--model", noTypes, "--threads", "1"}, code: 2, says: `the vocabulary cannot write UniNER's prompt: "</s>" is `},
		{args: []string{"serve", "--model", missing}, code: 2, says: "--model: bad model spec"},
		{args: []string{"distill", "stats", missing}, code: 2, says: "no such file"},
		{args: []string{"distill", "stats", garbage}, code: 2, says: "read record 0"},
		{args: []string{"distill", "--in", missing, "--teacher", "http://127.0.0.1:1/v1", "--teacher-model", "m", "--out", filepath.Join(dir, "d.jsonl")}, code: 2, says: "--in"},
		{args: []string{"devices", "--backends-dir", missing}, code: 2, says: "--backends-dir"},
		{args: []string{"model", "synth", "--preset", "huge", "--out", filepath.Join(dir, "m.gguf")}, code: 2, says: "unknown preset"},
		{args: []string{"model", "info", missing}, code: 2, says: "no such file"},
		{args: []string{"model", "info", garbage}, code: 2, says: `gguf: invalid file: magic "garb"`},
		{args: []string{"model", "pull", "hf://owner"}, code: 2, says: "bad model reference"},
		{args: []string{"bench", "engine", "--model", missing}, code: 2, says: "--model: bad model spec"},
		{args: []string{"bench", "bogus"}, code: 2, says: "unknown benchmark"},
	} {
		code, out, errs := runCLI(t, c.stdin, c.args...)
		checkOneLineError(t, code, c.code, errs, c.says)
		if p := repeatedPrefix(errs); p != "" {
			t.Errorf("%q: the error says %q twice in a row: %s", c.args, p, errs)
		}
		if c.stdout != "" && !strings.Contains(out, c.stdout) {
			t.Errorf("%q: standard output %q does not say %q", c.args, out, c.stdout)
		}
		if c.notSays != "" && strings.Contains(out+errs, c.notSays) {
			t.Errorf("%q: the output says %q:\n%s%s", c.args, c.notSays, out, errs)
		}
	}
}

// repeatedPrefix returns the prefix that an error line says twice in a
// row ("prompt" in "nerstream prompt: prompt: unknown variant"), or "".
func repeatedPrefix(line string) string {
	parts := strings.Split(strings.TrimSpace(line), ": ")
	parts[0] = strings.TrimPrefix(parts[0], "nerstream ")
	for i := 0; i+2 < len(parts); i++ { // the last part is no prefix
		if strings.EqualFold(strings.TrimSpace(parts[i]), strings.TrimSpace(parts[i+1])) {
			return parts[i]
		}
	}
	return ""
}

func TestRepeatedPrefix(t *testing.T) {
	for line, want := range map[string]string{
		"nerstream prompt: prompt: unknown variant":           "prompt",
		"nerstream config: config: open x: no such file":      "config",
		"nerstream run: a.yaml: a.yaml: line 2: did not find": "a.yaml",
		"nerstream prompt: unknown prompt variant":            "",
		"nerstream model: gguf: open x: no such file":         "",
		"nerstream eval: --data: x: x":                        "", // the last part is the message
	} {
		if got := repeatedPrefix(line); got != want {
			t.Errorf("repeatedPrefix(%q) = %q, want %q", line, got, want)
		}
	}
}
