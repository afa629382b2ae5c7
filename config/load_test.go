package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFile writes a config file into a fresh folder and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nerstream.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFiveMistakes is issue 6's test of done: one file, five different
// mistakes, every one reported with its field path.
func TestFiveMistakes(t *testing.T) {
	p := writeFile(t, `batch:
  max_doc: 64        # unknown key, with a hint
  linger: soon       # a duration of the wrong form
model:
  max_new_tokens: many  # an integer of the wrong form
retry:
  max_attempts: 0    # out of range: Validate
log:
  level: verbose     # not one of the levels: Validate
`)
	cfg, err := LoadFrom(p, Sources{})
	var loaded Problems
	if !errors.As(err, &loaded) {
		t.Fatalf("LoadFrom() = %v, want Problems", err)
	}
	wantLoaded := Problems{
		"batch.max_doc: unknown key (did you mean max_docs?)",
		`batch.linger: "soon" is not a duration (like 20ms or 5s)`,
		`model.max_new_tokens: "many" is not an integer`,
	}
	if !slices.Equal(loaded, wantLoaded) {
		t.Errorf("LoadFrom problems:\n got %q\nwant %q", loaded, wantLoaded)
	}
	var validated Problems
	if !errors.As(cfg.Validate(), &validated) {
		t.Fatalf("Validate() found nothing in %+v", cfg)
	}
	all := append(loaded, validated...)
	for _, path := range []string{"batch.max_doc", "batch.linger", "model.max_new_tokens", "retry.max_attempts", "log.level"} {
		if !slices.ContainsFunc(all, func(s string) bool { return strings.HasPrefix(s, path+": ") }) {
			t.Errorf("no problem at %s in %q", path, all)
		}
	}
	if len(all) != 5 {
		t.Errorf("%d problems, want 5: %q", len(all), all)
	}
}

func TestLoadFromLayers(t *testing.T) {
	const file = `kafka: {brokers: ["f:1"]}
batch: {max_docs: 10, linger: 1s}
telemetry: {sampling_ratio: 0.25, headers: {a: b}}
model: {entity_types: [person], prompt: {dataset: d}}
`
	ratio := func(c Config) float64 {
		if c.Telemetry.SamplingRatio == nil {
			return -1
		}
		return *c.Telemetry.SamplingRatio
	}
	cases := []struct {
		name  string
		file  string // "" is no file
		src   Sources
		check func(Config) bool
	}{
		{"file over defaults", file, Sources{},
			func(c Config) bool { return c.Batch.MaxDocs == 10 && c.Batch.Workers == 2 && ratio(c) == 0.25 }},
		{"env over file", file, Sources{Env: []string{"NERSTREAM_BATCH_MAX_DOCS=20"}},
			func(c Config) bool { return c.Batch.MaxDocs == 20 && c.Batch.Linger == time.Second }},
		{"set over env", file, Sources{Env: []string{"NERSTREAM_BATCH_MAX_DOCS=20"}, Set: []string{"batch.max_docs=30"}},
			func(c Config) bool { return c.Batch.MaxDocs == 30 }},
		{"the last set counts", file, Sources{Set: []string{"batch.max_docs=30", "batch.max_docs=40"}},
			func(c Config) bool { return c.Batch.MaxDocs == 40 }},
		{"no file", "", Sources{Env: []string{"NERSTREAM_BATCH_WORKERS=4"}},
			func(c Config) bool { return c.Batch.Workers == 4 && c.Batch.MaxDocs == 32 && c.Kafka.Brokers == nil }},
		{"env list replaces the file's", file, Sources{Env: []string{"NERSTREAM_KAFKA_BROKERS=a:9092, b:9092"}},
			func(c Config) bool { return slices.Equal(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) }},
		{"env empty list", file, Sources{Env: []string{"NERSTREAM_MODEL_ENTITY_TYPES="}},
			func(c Config) bool { return c.Model.Types != nil && len(c.Model.Types) == 0 }},
		{"env map", file, Sources{Env: []string{"NERSTREAM_TELEMETRY_HEADERS=x-api-key=k=1, b = c"}},
			func(c Config) bool {
				return reflect.DeepEqual(c.Telemetry.Headers, map[string]string{"x-api-key": "k=1", "b": "c"})
			}},
		{"env duration, bool, float", file, Sources{Env: []string{"NERSTREAM_BATCH_LINGER=5ms", "NERSTREAM_HTTP_PPROF=true", "NERSTREAM_TELEMETRY_SAMPLING_RATIO=0.5"}},
			func(c Config) bool { return c.Batch.Linger == 5*time.Millisecond && c.HTTP.Pprof && ratio(c) == 0.5 }},
		{"env empty ratio unsets it", file, Sources{Env: []string{"NERSTREAM_TELEMETRY_SAMPLING_RATIO="}},
			func(c Config) bool { return ratio(c) == -1 }},
		{"env string verbatim", file, Sources{Env: []string{"NERSTREAM_MODEL_PROMPT_DATASET= null #1", "NERSTREAM_LOG_LEVEL=debug"}},
			func(c Config) bool { return c.Model.Prompt.Dataset == " null #1" && c.Log.Level == "debug" }},
		{"env zero duration", file, Sources{Env: []string{"NERSTREAM_TELEMETRY_METRIC_INTERVAL=0"}},
			func(c Config) bool { return c.Telemetry.MetricInterval == 0 }},
		{"set forms", file, Sources{Set: []string{"kafka.brokers=a:1,b:2", "telemetry.sampling_ratio=1", "batch.linger=2s",
			"output.create_topics=true", "model.prompt.definitions=person=a human", "model.prompt.supervised_format=D: {dataset} T: {text}"}},
			func(c Config) bool {
				return slices.Equal(c.Kafka.Brokers, []string{"a:1", "b:2"}) && ratio(c) == 1 && c.Batch.Linger == 2*time.Second &&
					c.Output.CreateTopics && c.Model.Prompt.Definitions["person"] == "a human" &&
					c.Model.Prompt.SupervisedFormat == "D: {dataset} T: {text}"
			}},
		{"reserved and foreign variables", file, Sources{Env: []string{"NERSTREAM_HOME=/h", "NERSTREAM_MODEL_DIR=/m", "NERSTREAM_REQUIRE_KCAT=1",
			"NERSTREAM_REQUIRE_PYTHON=1", "NERSTREAM_TEST_MAIN=x", "NERSTREAM_WRITE_PERTURBED=/p", "PATH=/bin", "nerstream_batch_max_docs=3", "NOEQUALS"}},
			func(c Config) bool { return c.Batch.MaxDocs == 10 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = writeFile(t, c.file)
			}
			cfg, err := LoadFrom(path, c.src)
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(cfg) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

func TestLoadFromProblems(t *testing.T) {
	cases := []struct {
		name string
		file string // "" is no file
		src  Sources
		want []string // every problem, exactly
	}{
		{"env wrong forms", "", Sources{Env: []string{"NERSTREAM_BATCH_LINGER=soon", "NERSTREAM_BATCH_MAX_DOCS=many",
			"NERSTREAM_HTTP_PPROF=", "NERSTREAM_TELEMETRY_SAMPLING_RATIO=half", "NERSTREAM_TELEMETRY_HEADERS=a=b,c", "NERSTREAM_RETRY_MAX_BACKOFF=5"}},
			[]string{
				`NERSTREAM_BATCH_MAX_DOCS (batch.max_docs): "many" is not an integer`,
				`NERSTREAM_BATCH_LINGER (batch.linger): "soon" is not a duration (like 20ms or 5s)`,
				`NERSTREAM_RETRY_MAX_BACKOFF (retry.max_backoff): 5 is a bare number: add a unit: 5ms or 5s`,
				`NERSTREAM_TELEMETRY_HEADERS (telemetry.headers): "c" is not key=value`,
				`NERSTREAM_TELEMETRY_SAMPLING_RATIO (telemetry.sampling_ratio): "half" is not a number`,
				`NERSTREAM_HTTP_PPROF (http.pprof): "" is not true or false`,
			}},
		{"unknown variables", "", Sources{Env: []string{"NERSTREAM_BATCH_MAX_DOC=1", "NERSTREAM_BATCH_BROKERS=a:1", "NERSTREAM_NOTHING_LIKE_IT=1"}},
			[]string{
				"NERSTREAM_BATCH_BROKERS: unknown variable (did you mean NERSTREAM_KAFKA_BROKERS?)",
				"NERSTREAM_BATCH_MAX_DOC: unknown variable (did you mean NERSTREAM_BATCH_MAX_DOCS?)",
				"NERSTREAM_NOTHING_LIKE_IT: unknown variable",
			}},
		{"bad --set", "", Sources{Set: []string{"batch.max_doc=1", "bach.max_docs=1", "batch.brokers=a:1", "batch.max_docs", "kafka=a:1",
			"batch.linger=20", "model.gpu_layers=1.5", "=3"}},
			[]string{
				"--set batch.max_doc: unknown key (did you mean batch.max_docs?)",
				"--set bach.max_docs: unknown key (did you mean batch.max_docs?)",
				"--set batch.brokers: unknown key (did you mean kafka.brokers?)",
				"--set batch.max_docs: want path=value, like batch.max_docs=64",
				"--set kafka: a section, not a field: set its fields, like kafka.brokers",
				"--set batch.linger: 20 is a bare number: add a unit: 20ms or 20s",
				`--set model.gpu_layers: "1.5" is not an integer`,
				"--set =3: want path=value, like batch.max_docs=64",
			}},
		{"file wrong forms", `kafka:
  brokers: localhost:9092
  group_id: [a, b]
model:
  entity_types: [person, {name: x}, place]
  max_entity_types: 99999999999999999999
  prompt: {definitions: {person: [a]}}
telemetry: {insecure: maybe, headers: [a], sampling_ratio: lots}
http: 8080
batch: {linger: 20}
`, Sources{},
			[]string{
				`kafka.brokers: must be a list of strings (like [a, b]), not "localhost:9092"`,
				"kafka.group_id: must be a string, not a list",
				"model.entity_types[1]: must be a string, not a mapping",
				"model.max_entity_types: 99999999999999999999 is out of range",
				"model.prompt.definitions[person]: must be a string, not a list",
				`telemetry.insecure: "maybe" is not true or false`,
				"telemetry.headers: must be a mapping of strings (like {key: value}), not a list",
				`telemetry.sampling_ratio: "lots" is not a number`,
				`http: must be a mapping of keys, not "8080"`,
				"batch.linger: 20 is a bare number: add a unit: 20ms or 20s",
			}},
		{"file unknown keys", `kafka: {brokers: [a:1], session_timout: 1s}
batch: {brokers: [b:1], MaxDocs: 3}
linger: 5s
modle: {}
model: {kafka.brokers: [c:1], prompt.variant: type}
telemetry: {headers: {a: b, a: c}}
log: {level: debug, level: info}
`, Sources{},
			[]string{
				"kafka.session_timout: unknown key (did you mean session_timeout?)",
				"batch.brokers: unknown key (did you mean kafka.brokers?)",
				"batch.MaxDocs: unknown key (did you mean max_docs?)",
				"linger: unknown key (did you mean batch.linger?)",
				"modle: unknown key (did you mean model?)",
				"model.kafka.brokers: unknown key (did you mean kafka.brokers? keys are not paths: nest it at the top level, kafka: {brokers: …})",
				"model.prompt.variant: unknown key (keys are not paths: nest it, prompt: {variant: …})",
				"telemetry.headers[a]: given twice (line 6)",
				"log.level: given twice (line 7)",
			}},
		{"not a mapping", "- a\n- b\n", Sources{}, []string{"FILE: must be a mapping of keys, not a list"}},
		{"two documents", "batch: {workers: 3}\n---\nbatch: {workers: 4}\n", Sources{},
			[]string{"FILE: line 2: a second YAML document (---); a configuration is one document"}},
		{"every layer", "batch: {linger: soon}\n", Sources{Env: []string{"NERSTREAM_BATCH_LINGER=later"}, Set: []string{"batch.linger=never"}},
			[]string{
				`batch.linger: "soon" is not a duration (like 20ms or 5s)`,
				`NERSTREAM_BATCH_LINGER (batch.linger): "later" is not a duration (like 20ms or 5s)`,
				`--set batch.linger: "never" is not a duration (like 20ms or 5s)`,
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = writeFile(t, c.file)
			}
			_, err := LoadFrom(path, c.src)
			var p Problems
			if !errors.As(err, &p) {
				t.Fatalf("LoadFrom() = %v, want Problems", err)
			}
			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = strings.Replace(w, "FILE", path, 1)
			}
			if !slices.Equal(p, want) {
				t.Errorf("problems:\n got %q\nwant %q", p, want)
			}
		})
	}
}

// TestLoadFromKeepsWhatDecoded: beside problems, the good values are
// there, and the bad ones keep their defaults.
func TestLoadFromKeepsWhatDecoded(t *testing.T) {
	p := writeFile(t, `defaults: &d {level: debug}
batch: {linger: soon, max_docs: 7, workers: many}
log:
  <<: *d
  format: text
`)
	cfg, err := LoadFrom(p, Sources{Env: []string{"NERSTREAM_BATCH_MAX_BYTES=oops", "NERSTREAM_INPUT_TOPICS=docs"}})
	var probs Problems
	if !errors.As(err, &probs) || len(probs) != 4 {
		t.Fatalf("LoadFrom() = %v, want 4 problems", err)
	}
	if cfg.Batch.MaxDocs != 7 || cfg.Batch.Linger != 20*time.Millisecond || cfg.Batch.Workers != 2 || cfg.Batch.MaxBytes != 1<<20 ||
		!slices.Equal(cfg.Input.Topics, []string{"docs"}) || cfg.Log.Level != "debug" || cfg.Log.Format != "text" {
		t.Fatalf("config %+v %+v", cfg.Batch, cfg.Log)
	}
}

// TestLoadFromSyntaxError: a file that is not YAML is a SyntaxError
// alone, with its line: not a Problems list in which the problems of the
// other layers, and then Validate's "required" for every key, hide it.
func TestLoadFromSyntaxError(t *testing.T) {
	src := Sources{Env: []string{"NERSTREAM_BATCH_LINGER=later"}, Set: []string{"batch.linger=never"}}
	for _, tc := range []struct{ name, file, want string }{
		{"unclosed flow", "model: {path: x\nbatch: [\n", "FILE: line 1: did not find expected ',' or '}'"},
		{"unclosed list", "kafka:\n  brokers: [\n", "FILE: line 2: did not find expected node content"},
		{"tab indentation", "kafka:\n\tbrokers: [a]\n", "FILE: line 2: found character that cannot start any token"},
		{"in a second document", "batch: {workers: 3}\n---\nbatch: [\n", "FILE: line 3: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			_, err := LoadFrom(path, src)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("LoadFrom() = %v, want a SyntaxError", err)
			}
			if want := strings.Replace(tc.want, "FILE", path, 1); err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			var p Problems
			if errors.As(err, &p) {
				t.Errorf("a SyntaxError that is Problems too: %v", err)
			}
		})
	}
	_, err := Read(strings.NewReader("kafka:\n  brokers: [\n"))
	if se, ok := errors.AsType[*SyntaxError](err); !ok || se.Error() != "config: line 2: did not find expected node content" {
		t.Errorf("Read() = %v, want a SyntaxError at config: line 2", err)
	}
}

func TestLoadFromMissingFile(t *testing.T) {
	_, err := LoadFrom(filepath.Join(t.TempDir(), "none.yaml"), Sources{Env: []string{"NERSTREAM_BATCH_MAX_DOCS=x"}})
	var p Problems
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &p) {
		t.Fatalf("err = %v, want a not-exist error, not Problems", err)
	}
}

func TestReservedEnv(t *testing.T) {
	for name, want := range map[string]bool{
		"NERSTREAM_HOME": true, "NERSTREAM_MODEL_DIR": true, "NERSTREAM_REQUIRE_KCAT": true, "NERSTREAM_REQUIRE_PYTHON": true,
		"NERSTREAM_WRITE_PERTURBED": true, "NERSTREAM_TEST_MEMBER": true, "NERSTREAM_TEST_": true,
		"NERSTREAM_BUILD_CACHE": true, "NERSTREAM_GGML_SOURCES": true, "NERSTREAM_GPU_KIT": true, "NERSTREAM_CI_CACHE": true,
		"NERSTREAM_MODEL_PATH": false, "NERSTREAM_TEST": false, "NERSTREAM_HOMES": false,
	} {
		if got := reservedEnv(name); got != want {
			t.Errorf("reservedEnv(%s) = %v, want %v", name, got, want)
		}
	}
	// No reserved variable is a field's.
	for _, f := range Fields() {
		if reservedEnv(f.Env) {
			t.Errorf("%s of %s is reserved", f.Env, f.Path)
		}
	}
}
