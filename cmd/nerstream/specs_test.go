package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/server"
)

// TestModelSpecs runs every command that takes a model through every kind
// of model spec: a GGUF file, synth:PRESET, an hf:// reference and an
// http(s) address (both pulled from a server on loopback into a fresh
// model cache), and openai:URL (nerstream's own HTTP worker, in this
// process). Each command must run to the end with each, as engines.Open is
// the one way they open a model.
func TestModelSpecs(t *testing.T) {
	var tiny bytes.Buffer
	if err := gguf.Synth(&tiny, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := os.WriteFile(file, tiny.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hugging Face and any other download: the same file, from loopback.
	var pulls atomic.Int64
	hf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pulls.Add(1)
		if !strings.HasSuffix(r.URL.Path, "/tiny.gguf") {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "tiny.gguf", time.Time{}, bytes.NewReader(tiny.Bytes()))
	}))
	defer hf.Close()
	pullEnv(t)
	t.Setenv("HF_ENDPOINT", hf.URL)
	// OpenAI-compatible servers: package server over the tiny model.
	m, err := engines.Open(context.Background(), file, engines.Options{Llama: llama.Options{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	api, err := server.New(server.Options{MaxNewTokens: 8, Types: []string{"person"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.SetModel(m.Engine, "tiny-over-http"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range api.Routes() {
		mux.Handle(p, h)
	}
	worker := httptest.NewServer(mux)
	defer worker.Close()

	specs := []struct {
		kind, spec, name string
	}{
		{"file", file, "tiny.gguf"},
		{"synth", "synth:tiny", "synthetic-tiny (random weights: entities are meaningless)"},
		{"hf", "hf://acme/uniner/tiny.gguf", "tiny.gguf"},
		{"https", hf.URL + "/downloads/tiny.gguf", "tiny.gguf"},
		// Named as the worker lists its model at /v1/models.
		{"openai", "openai:" + worker.URL + "/v1", "tiny-over-http"},
	}
	data := filepath.Join(t.TempDir(), "data.json")
	os.WriteFile(data, []byte(`[{"id": "q1", "conversations": [
		{"from": "human", "value": "Text: Ada Lovelace met Charles Babbage ."}, {"from": "gpt", "value": "I've read this text."},
		{"from": "human", "value": "What describes person in the text?"}, {"from": "gpt", "value": "[\"Ada Lovelace\", \"Charles Babbage\"]"}]}]`), 0o644)
	_, teacher := newTestTeacher(t, 0)
	docs := writeDistillInput(t)
	broker := kafkatest.StartBroker(t, 1)
	t.Setenv("NERSTREAM_TEST_MAIN", "1") // bench pipeline's broker is this binary

	// The commands, each with its model flag set to spec, and a check of
	// what it printed.
	commands := []struct {
		name  string
		args  func(spec string) []string
		stdin string
		check func(t *testing.T, name, out string)
	}{
		{"annotate", func(spec string) []string {
			return []string{"annotate", "--model", spec, "--threads", "1", "--max-new-tokens", "4"}
		}, `{"id": "a", "text": "Ada Lovelace met Charles Babbage."}` + "\n", func(t *testing.T, name, out string) {
			var rec struct{ ID, Model string }
			if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.ID != "a" || rec.Model != name {
				t.Errorf("annotation %q", out)
			}
		}},
		{"eval", func(spec string) []string {
			return []string{"eval", "--data", data, "--model", spec, "--threads", "1", "--max-new-tokens", "4"}
		}, "", func(t *testing.T, _, out string) {
			var r struct {
				Queries int `json:"queries"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Queries != 1 {
				t.Errorf("report %q", out)
			}
		}},
		{"bench engine", func(spec string) []string {
			return []string{"bench", "engine", "--model", spec, "--threads", "1", "--docs", "2", "--types", "2", "--doc-tokens", "16",
				"--max-new-tokens", "2", "--skip-naive", "--clients", "1"}
		}, "", func(t *testing.T, _, out string) {
			var r struct {
				Local  float64 `json:"engine_docs_per_s"`
				Remote float64 `json:"remote_docs_per_s"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Local+r.Remote <= 0 {
				t.Errorf("figures %q", out)
			}
		}},
		{"bench pipeline", func(spec string) []string {
			return []string{"bench", "pipeline", "--model", spec, "--threads", "1", "--max-new-tokens", "2", "--docs", "20", "--partitions", "1", "--timeout", "60s"}
		}, "", func(t *testing.T, _, out string) {
			var r struct {
				Docs int64 `json:"pipeline_docs"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Docs != 20 {
				t.Errorf("figures %q", out)
			}
		}},
		{"distill", func(spec string) []string {
			return distillArgs(docs, teacher, filepath.Join(t.TempDir(), "out.jsonl"), "--tokenizer", spec)
		}, "", func(t *testing.T, _, out string) {
			var r struct {
				Records int `json:"records"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Records == 0 {
				t.Errorf("report %q", out)
			}
		}},
		{"demo", func(spec string) []string {
			return []string{"demo", "--model", spec, "--threads", "1", "--max-new-tokens", "2", "--json", "--timeout", "60s"}
		}, "", func(t *testing.T, name, out string) {
			if n := strings.Count(out, `"model":"`+strings.ReplaceAll(name, `"`, `\"`)+`"`); n != 7 {
				t.Errorf("%d annotations name the model %q:\n%s", n, name, out)
			}
		}},
	}
	for _, sp := range specs {
		t.Run(sp.kind, func(t *testing.T) {
			t.Setenv("NERSTREAM_MODEL_DIR", t.TempDir()) // a reference is pulled afresh
			for _, c := range commands {
				code, out, errs := runCLI(t, c.stdin, c.args(sp.spec)...)
				if code != 0 {
					t.Errorf("%s --model %s: exit %d: %s", c.name, sp.kind, code, errs)
					continue
				}
				c.check(t, sp.name, out)
			}
			t.Run("serve", func(t *testing.T) { checkServeSpec(t, sp.spec, sp.name) })
			t.Run("run", func(t *testing.T) { checkRunSpec(t, broker.ListenAddrs(), sp.kind, sp.spec, sp.name) })
		})
	}
	if n := pulls.Load(); n < 2 {
		t.Errorf("the references were pulled %d times, want at least once each", n)
	}
}

// checkServeSpec serves the model of spec and annotates one document
// through it.
func checkServeSpec(t *testing.T, spec, name string) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--model", spec, "--threads", "1", "--max-new-tokens", "4", "--listen", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, logs)
	}()
	defer func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d: %s", c, logs.String())
		}
	}()
	ready := regexp.MustCompile(`"msg":"serve: listening","address":"([^"]+)"`)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), `"msg":"serve: ready"`) {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	addr := ready.FindStringSubmatch(logs.String())[1]
	status, body := post(t, "http://"+addr+"/v1/annotate", map[string]any{"id": "a", "text": "Ada Lovelace met Charles Babbage."})
	var rec struct{ ID, Model string }
	if status != http.StatusOK || json.Unmarshal(body, &rec) != nil || rec.ID != "a" || rec.Model != name {
		t.Errorf("annotate: %d %s", status, body)
	}
}

// checkRunSpec runs the stream on the model of spec, as model.path (or,
// for openai:URL, model.engine openai with its endpoint), until one
// document is annotated, with -v.
func checkRunSpec(t *testing.T, brokers []string, kind, spec, name string) {
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Kafka.GroupID = "specs-" + kind
	cfg.Model.MaxNewTokens = 2
	cfg.Model.Threads = 1
	if endpoint, ok := strings.CutPrefix(spec, engines.OpenAIPrefix); ok {
		cfg.Model.Path, cfg.Model.Engine, cfg.Model.OpenAI.Endpoints = "", "openai", []string{endpoint}
	} else {
		cfg.Model.Path = spec
	}
	named := func() (n int) {
		for _, r := range kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3) {
			if bytes.Contains(r.Value, []byte(`"model":`+mustJSON(name))) {
				n++
			}
		}
		return n
	}
	before := named()
	kafkatest.ProduceDocs(t, brokers, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"run", "-v", "--config", kafkatest.WriteConfig(t, cfg)}, strings.NewReader(""), io.Discard, logs)
	}()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, time.Minute)
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("run exited %d: %s", c, logs.String())
	}
	if named() <= before {
		t.Errorf("no annotation naming %q after run; log: %s", name, logs.String())
	}
	// With -v, llama.cpp's own lines are in the log when it runs here.
	if kind != "openai" && !strings.Contains(logs.String(), `"msg":"llama.cpp"`) {
		t.Errorf("run -v logged no line of llama.cpp")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
