package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckListsEveryProblem is issue 6's promise: a file with five
// different mistakes gives exit 2 and all five field paths.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	const bad = `kafka:
  brokers: [localhost]
  brokerz: [a:9092]
input: {topics: [docs]}
output: {topic: entities, dead_letter_topic: entities-dlq}
model: {path: m.gguf, entity_types: [person]}
batch:
  linger: soon
  max_docs: 0
log: {level: loud}
`
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "", "config", "check", "--config", path)
	checkOneLineError(t, code, 2, errs, "5 problems")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{
		"kafka.brokers[0]: ", // not host:port
		"kafka.brokerz: ",    // unknown key
		"batch.linger: ",     // not a duration
		"batch.max_docs: ",   // out of range
		"log.level: ",        // not one of the levels
	} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Errorf("no problem at %s in:\n%s", strings.TrimSuffix(want, ": "), out)
		}
	}
	if len(lines) != 5 {
		t.Errorf("%d problems listed, want 5:\n%s", len(lines), out)
	}
	if !strings.Contains(out, "did you mean brokers") {
		t.Errorf("no hint for the unknown key:\n%s", out)
	}
}

func TestConfigCheckAndPrint(t *testing.T) {
	code, out, errs := runCLI(t, "", "config", "check", "--config", "../../examples/nerstream.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("check of the example: %d %q %q", code, out, errs)
	}

	// The layers: the file, then the environment, then --set.
	path := filepath.Join(t.TempDir(), "c.yaml")
	const file = `kafka: {brokers: ["file:9092"]}
input: {topics: [docs]}
output: {topic: entities, dead_letter_topic: entities-dlq}
model: {path: m.gguf, entity_types: [person]}
batch: {max_docs: 8, workers: 3}
telemetry: {headers: {x-api-key: hunter2}}
`
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NERSTREAM_KAFKA_BROKERS", "env-a:9092,env-b:9092")
	t.Setenv("NERSTREAM_BATCH_MAX_DOCS", "16")
	t.Setenv("NERSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("NERSTREAM_KAFKA_SASL_USERNAME", "nerstream")
	t.Setenv("NERSTREAM_KAFKA_SASL_PASSWORD", "correct-horse")
	code, out, errs = runCLI(t, "", "config", "print", "--config", path, "--set", "batch.max_docs=24")
	if code != 0 {
		t.Fatalf("print: %d %q", code, errs)
	}
	for _, want := range []string{"- env-a:9092\n", "- env-b:9092\n", "max_docs: 24\n", "workers: 3\n", "x-api-key: '[redacted]'"} {
		if !strings.Contains(out, want) {
			t.Errorf("printed config lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "password: '[redacted]'") {
		t.Errorf("the SASL password is not shown redacted:\n%s", out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "correct-horse") || strings.Contains(out, "file:9092") {
		t.Errorf("printed config shows a secret or a value overridden:\n%s", out)
	}

	// A bad environment value is a problem that names its variable.
	t.Setenv("NERSTREAM_BATCH_LINGER", "soon")
	code, out, errs = runCLI(t, "", "config", "check", "--config", path)
	checkOneLineError(t, code, 2, errs, "1 problem")
	if !strings.Contains(out, "NERSTREAM_BATCH_LINGER") {
		t.Errorf("the problem does not name the variable: %q", out)
	}

	code, _, errs = runCLI(t, "", "config", "lint")
	checkOneLineError(t, code, 2, errs, "want check or print")
}

// TestConfigPrintRedactsAddresses is a regression test of issue 16's
// finding that `config print` showed the secrets of addresses.
// Reproduction, before the fix: a configuration with
// model.openai.endpoints: [https://user:PASS@gpu-1:8000/v1] and
// telemetry.endpoint: https://user:PASS@collector:4318 (or a model.path
// presigned for its download) printed the passwords and the signature as
// they were. Now they are REDACTED, from the file, the environment or
// --set alike.
func TestConfigPrintRedactsAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	const file = `kafka: {brokers: ["kafka-1:9092"]}
input: {topics: [docs]}
output: {topic: entities, dead_letter_topic: entities-dlq}
model:
  path: https://bucket.example/m.gguf?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET
  entity_types: [person]
  engine: openai
  openai: {endpoints: ["https://user:PASSSECRET@gpu-1:8000/v1", "http://gpu-2:8000/v1"]}
`
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NERSTREAM_TELEMETRY_ENDPOINT", "https://otel:ENVSECRET@collector:4318")
	code, out, errs := runCLI(t, "", "config", "print", "--config", path, "--set", "model.openai.endpoints=https://TOKSECRET@gpu-3:8000/v1,http://gpu-2:8000/v1")
	if code != 0 {
		t.Fatalf("print: %d %q", code, errs)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("config print shows a secret:\n%s", out)
	}
	for _, want := range []string{
		"path: https://bucket.example/m.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED\n",
		"- https://REDACTED@gpu-3:8000/v1\n", "- http://gpu-2:8000/v1\n",
		"endpoint: https://REDACTED:REDACTED@collector:4318\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed config lacks %q:\n%s", want, out)
		}
	}
	// The file's own endpoints, without --set.
	if _, out, _ = runCLI(t, "", "config", "print", "--config", path); strings.Contains(out, "SECRET") || !strings.Contains(out, "- https://REDACTED:REDACTED@gpu-1:8000/v1\n") {
		t.Errorf("config print of the file's endpoints:\n%s", out)
	}
}
