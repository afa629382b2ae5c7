package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestEnvVar(t *testing.T) {
	for path, want := range map[string]string{
		"kafka.brokers":                  "NERSTREAM_KAFKA_BROKERS",
		"model.prompt.variant":           "NERSTREAM_MODEL_PROMPT_VARIANT",
		"batch.max_docs":                 "NERSTREAM_BATCH_MAX_DOCS",
		"shutdown_timeout":               "NERSTREAM_SHUTDOWN_TIMEOUT",
		"telemetry.resource_attributes":  "NERSTREAM_TELEMETRY_RESOURCE_ATTRIBUTES",
		"model.prompt.supervised_format": "NERSTREAM_MODEL_PROMPT_SUPERVISED_FORMAT",
	} {
		if got := EnvVar(path); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", path, got, want)
		}
	}
}

// leaves counts the leaf fields of a struct type that have a YAML key, its
// own way.
func leaves(t reflect.Type) int {
	n := 0
	for f := range t.Fields() {
		tag := f.Tag.Get("yaml")
		switch {
		case !f.IsExported() || tag == "-":
		case f.Type.Kind() == reflect.Struct:
			n += leaves(f.Type)
		default:
			n++
		}
	}
	return n
}

func TestFields(t *testing.T) {
	fields := Fields()
	if want := leaves(reflect.TypeFor[Config]()); len(fields) != want || want < 50 {
		t.Fatalf("%d fields, want %d", len(fields), want)
	}
	paths, envs := map[string]bool{}, map[string]bool{}
	for _, f := range fields {
		if paths[f.Path] || envs[f.Env] {
			t.Errorf("%s or %s is not unique", f.Path, f.Env)
		}
		paths[f.Path], envs[f.Env] = true, true
		if f.Env != EnvVar(f.Path) {
			t.Errorf("%s: Env %s, EnvVar %s", f.Path, f.Env, EnvVar(f.Path))
		}
		if !slices.Contains([]string{"int", "duration", "string", "bool", "float", "list of strings", "map of strings"}, f.Type) {
			t.Errorf("%s: type %q", f.Path, f.Type)
		}
	}
	byPath := func(p string) Field {
		i := slices.IndexFunc(fields, func(f Field) bool { return f.Path == p })
		if i < 0 {
			t.Fatalf("no field %s", p)
		}
		return fields[i]
	}
	for _, want := range []Field{
		{Path: "kafka.brokers", Env: "NERSTREAM_KAFKA_BROKERS", Type: "list of strings", Default: ""},
		{Path: "batch.max_docs", Env: "NERSTREAM_BATCH_MAX_DOCS", Type: "int", Default: "32"},
		{Path: "batch.linger", Env: "NERSTREAM_BATCH_LINGER", Type: "duration", Default: "20ms"},
		{Path: "output.create_topics", Env: "NERSTREAM_OUTPUT_CREATE_TOPICS", Type: "bool", Default: "false"},
		{Path: "telemetry.sampling_ratio", Env: "NERSTREAM_TELEMETRY_SAMPLING_RATIO", Type: "float", Default: ""},
		{Path: "telemetry.headers", Env: "NERSTREAM_TELEMETRY_HEADERS", Type: "map of strings", Default: "", Secret: true},
		{Path: "model.prompt.variant", Env: "NERSTREAM_MODEL_PROMPT_VARIANT", Type: "string", Default: "type"},
		{Path: "shutdown_timeout", Env: "NERSTREAM_SHUTDOWN_TIMEOUT", Type: "duration", Default: "10s"},
	} {
		if got := byPath(want.Path); got != want {
			t.Errorf("field %+v, want %+v", got, want)
		}
	}
	if fields[0].Path != "kafka.brokers" || fields[len(fields)-1].Path != "shutdown_timeout" {
		t.Errorf("fields not in struct order: %s ... %s", fields[0].Path, fields[len(fields)-1].Path)
	}
}

// TestFieldsDefaultsRoundTrip: each Default, given back in its variable,
// loads without a problem and gives the default again.
func TestFieldsDefaultsRoundTrip(t *testing.T) {
	def := reflect.ValueOf(Default())
	for _, f := range theSchema().fields {
		cfg, err := LoadFrom("", Sources{Env: []string{f.Env + "=" + f.Default}})
		if err != nil {
			t.Errorf("%s=%q: %v", f.Env, f.Default, err)
			continue
		}
		if got := formatValue(reflect.ValueOf(cfg).FieldByIndex(f.index)); got != f.Default || got != formatValue(def.FieldByIndex(f.index)) {
			t.Errorf("%s=%q loads as %q", f.Env, f.Default, got)
		}
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.Telemetry.Headers = map[string]string{"x-api-key": "s3cret", "empty": ""}
	c.Telemetry.ResourceAttributes = map[string]string{"team": "ner"}
	c.Kafka.Brokers = []string{"a:1"}
	r := c.Redacted()
	if want := map[string]string{"x-api-key": "[redacted]", "empty": ""}; !reflect.DeepEqual(r.Telemetry.Headers, want) {
		t.Errorf("redacted headers %v, want %v", r.Telemetry.Headers, want)
	}
	if c.Telemetry.Headers["x-api-key"] != "s3cret" {
		t.Errorf("the original changed: %v", c.Telemetry.Headers)
	}
	// What is no secret stays.
	r.Telemetry.Headers = c.Telemetry.Headers
	if !reflect.DeepEqual(r, c) {
		t.Errorf("Redacted changed more than the secrets:\n%+v\n%+v", r, c)
	}
	if Default().Redacted().Telemetry.Headers != nil {
		t.Error("no headers became some")
	}
}

// TestRedactedAddresses is a regression test of issue 16's finding that
// config print showed the secrets of addresses. Reproduction, before the
// fix: with model.openai.endpoints: [https://user:PASS@gpu-1:8000/v1] and
// telemetry.endpoint: https://user:PASS@collector:4318, `nerstream config
// print` printed both passwords, and a model.path presigned for its
// download printed its signature, since only fields tagged secret were
// hidden. Now every address is shown redacted, whichever field holds it.
func TestRedactedAddresses(t *testing.T) {
	c := Default()
	c.Model.OpenAI.Endpoints = []string{"https://user:PASSSECRET@gpu-1:8000/v1", "http://gpu-2:8000/v1"}
	c.Telemetry.Endpoint = "https://user:PASSSECRET@collector:4318"
	c.Model.Path = "https://bucket.example/m.gguf?X-Amz-Credential=AKID&X-Amz-Signature=SIGSECRET"
	c.Telemetry.ResourceAttributes = map[string]string{"repo": "https://TOKSECRET@git.example/ner"}
	c.Kafka.Brokers = []string{"kafka-1:9093"}
	r := c.Redacted()
	tests := []struct{ path, got, want string }{
		{"model.openai.endpoints[0]", r.Model.OpenAI.Endpoints[0], "https://REDACTED:REDACTED@gpu-1:8000/v1"},
		{"model.openai.endpoints[1]", r.Model.OpenAI.Endpoints[1], "http://gpu-2:8000/v1"},
		{"telemetry.endpoint", r.Telemetry.Endpoint, "https://REDACTED:REDACTED@collector:4318"},
		{"model.path", r.Model.Path, "https://bucket.example/m.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{"telemetry.resource_attributes", r.Telemetry.ResourceAttributes["repo"], "https://REDACTED@git.example/ner"},
		{"kafka.brokers", r.Kafka.Brokers[0], "kafka-1:9093"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.path, tt.got, tt.want)
		}
	}
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "SECRET") {
		t.Errorf("the redacted configuration shows a secret:\n%s", out)
	}
	if c.Model.OpenAI.Endpoints[0] != "https://user:PASSSECRET@gpu-1:8000/v1" || c.Telemetry.ResourceAttributes["repo"] != "https://TOKSECRET@git.example/ner" {
		t.Error("Redacted changed the original")
	}
}

// TestRedactedKinds: the secret tag works on strings, lists and maps,
// and leaves untagged fields alone.
func TestRedactedKinds(t *testing.T) {
	type secrets struct {
		Password string            `yaml:"password" secret:"true"`
		Empty    string            `yaml:"empty" secret:"true"`
		Tokens   []string          `yaml:"tokens" secret:"true"`
		Keys     map[string]string `yaml:"keys" secret:"true"`
		NilKeys  map[string]string `yaml:"nil_keys" secret:"true"`
		User     string            `yaml:"user"`
	}
	orig := secrets{Password: "p", Tokens: []string{"t", ""}, Keys: map[string]string{"k": "v"}, User: "u"}
	got := orig
	redact(reflect.ValueOf(&got).Elem(), buildSchema(reflect.ValueOf(secrets{})).fields)
	want := secrets{Password: "[redacted]", Tokens: []string{"[redacted]", ""}, Keys: map[string]string{"k": "[redacted]"}, User: "u"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("redacted %+v, want %+v", got, want)
	}
	if orig.Tokens[0] != "t" || orig.Keys["k"] != "v" {
		t.Errorf("the original changed: %+v", orig)
	}
}
