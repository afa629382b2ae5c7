package engines

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/internal/shareddata"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
)

// TestOpenRefusesBadSpecs: a spec that names no model is an ErrSpec, in one
// line, with no secret of the spec in it; llama.cpp never sees a file that
// is not GGUF.
func TestOpenRefusesBadSpecs(t *testing.T) {
	for _, spec := range badSpecs(t) {
		m, err := Open(context.Background(), spec, Options{Llama: llama.Options{Threads: 1}})
		if m != nil {
			m.Close()
		}
		if !errors.Is(err, ErrSpec) {
			t.Errorf("Open(%q) = %v, want an ErrSpec", spec, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.ContainsAny(msg, "\n\x00") {
			t.Errorf("Open(%q): the error %q shows a secret or breaks the line", spec, msg)
		}
	}
}

// badSpecs are specs that name no model, each of its own kind.
func badSpecs(t *testing.T) []string {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "notes.gguf")
	os.WriteFile(notGGUF, []byte("plain text, not a model"), 0o644)
	short := filepath.Join(dir, "short.gguf")
	os.WriteFile(short, []byte("GG"), 0o644)
	return []string{
		"", "   ",
		filepath.Join(dir, "missing.gguf"),
		dir, // a folder
		notGGUF, short,
		"synth:", "synth:huge", "synth:../tiny",
		"openai:", "openai:,,", "openai:ftp://host/v1", "openai:http://", "openai:localhost:8000",
		"openai:http://user:s3cret@gpu-1/v1,ftp://user:s3cret@gpu-2/v1",
		"hf://owner", "hf://owner/repo/model.bin", "hf://../../etc/x.gguf",
		"https://user:s3cret@example.com/m.gguf", "http://example.com/m.gguf", "https://example.com/m.txt",
		"https://host/\x00.gguf",
	}
}

// TestCheck: Check refuses every spec that Open refuses for its form, as
// an ErrSpec in one line without the spec's secrets, and the files that
// the gate refuses; it takes the good specs without loading, pulling or
// sending a request.
func TestCheck(t *testing.T) {
	for _, spec := range badSpecs(t) {
		err := Check(spec, Options{})
		if !errors.Is(err, ErrSpec) {
			t.Errorf("Check(%q) = %v, want an ErrSpec", spec, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.ContainsAny(msg, "\n\x00") {
			t.Errorf("Check(%q): the error %q shows a secret or breaks the line", spec, msg)
		}
	}
	dir := t.TempDir()
	for i, c := range gguftest.Cases() {
		path := filepath.Join(dir, fmt.Sprintf("case-%d.gguf", i))
		if err := c.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		err := Check(path, Options{Llama: llama.Options{VocabOnly: c.Mode == gguf.LoadVocab}})
		switch {
		case c.Refused == "" && err != nil:
			t.Errorf("%s: Check = %v, want nil (the file loads)", c.Name, err)
		case c.Refused != "" && (!errors.Is(err, ErrSpec) || !strings.Contains(fmt.Sprint(err), c.Refused)):
			t.Errorf("%s: Check = %v, want an ErrSpec that says %q", c.Name, err, c.Refused)
		}
	}
	// The good specs: no request reaches a server, no pull starts.
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	tiny := filepath.Join(dir, "tiny.gguf")
	if err := gguf.SynthFile(tiny, gguf.SynthOptions{Preset: "tiny", Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{tiny, "synth:tiny", "openai:" + srv.URL + "/v1", "hf://owner/repo/m.gguf", "https://example.invalid/m.gguf"} {
		opts := Options{OpenAI: openai.Options{Tokenizer: "synth:tiny"}, Pull: hub.Options{Dir: t.TempDir(), Endpoint: srv.URL}}
		if err := Check(spec, opts); err != nil {
			t.Errorf("Check(%q) = %v, want nil", spec, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("Check sent %d requests", n)
	}
	// The openai engine's tokenizer and options are checked too.
	for _, o := range []openai.Options{{Tokenizer: filepath.Join(dir, "none.gguf")}, {Tokenizer: "openai:" + srv.URL}, {Dialect: "nonsense"},
		{APIKeyFile: filepath.Join(dir, "no-key")}} {
		if err := Check("openai:"+srv.URL+"/v1", Options{OpenAI: o}); !errors.Is(err, ErrSpec) {
			t.Errorf("Check with %+v = %v, want an ErrSpec", o, err)
		}
	}
}

// TestOpenSpecs: each kind of spec opens, with its name; Status hears the
// steps, and Close is safe twice.
func TestOpenSpecs(t *testing.T) {
	ctx := context.Background()
	var steps []string
	m, err := Open(ctx, "synth:tiny", Options{Llama: llama.Options{Threads: 1}, Status: func(s string) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if m.Local == nil || m.Path != "" || !strings.HasPrefix(m.Name, "synthetic-tiny") || len(steps) != 1 || steps[0] != "loading synth:tiny" {
		t.Errorf("synth:tiny: %+v, steps %q", m, steps)
	}
	if id, err := m.Identity(); err != nil || id != "synth:tiny/f16/seed=1" {
		t.Errorf("synth:tiny identity %q, %v", id, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := Open(ctx, "openai:http://127.0.0.1:1/v1, http://127.0.0.1:2/v1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Local != nil || r.Name != "openai" || r.Engine.ContextTokens() != 2048 {
		t.Errorf("openai: %+v", r)
	}
	named, err := Open(ctx, "openai:http://127.0.0.1:1/v1", Options{Name: "UniNER-7B-type"})
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	if named.Name != "UniNER-7B-type" {
		t.Errorf("name %q", named.Name)
	}
	// The result cache's key names the served model and its servers.
	idR, _ := r.Identity()
	idN, _ := named.Identity()
	if idN != "openai:UniNER-7B-type@http://127.0.0.1:1/v1" || idR == idN {
		t.Errorf("identities %q, %q", idR, idN)
	}
}

func TestFromConfig(t *testing.T) {
	c := config.Default()
	c.Model.Path = "/models/UniNER-7B-type.Q4_K_M.gguf"
	c.Model.Threads = 3
	spec, opts := FromConfig(c.Model)
	if spec != c.Model.Path || opts.Llama.Threads != 3 || opts.Llama.GPULayers != -1 || opts.Name != "" {
		t.Errorf("llama engine: %q, %+v", spec, opts)
	}
	if opts.Pull.MaxBytes != int64(c.Model.PullMaxBytes) || opts.Pull.MaxBytes != hub.DefaultMaxBytes {
		t.Errorf("pull limit %d, want model.pull_max_bytes, %d", opts.Pull.MaxBytes, c.Model.PullMaxBytes)
	}
	c.Model.Engine = config.EngineOpenAI
	c.Model.OpenAI.Endpoints = []string{"http://gpu-1:8000/v1"}
	spec, opts = FromConfig(c.Model)
	if spec != OpenAIPrefix || opts.OpenAI.Endpoints[0] != "http://gpu-1:8000/v1" || opts.Name != "UniNER-7B-type.Q4_K_M.gguf" {
		t.Errorf("openai engine: %q, %+v", spec, opts)
	}
	// A presigned model.path names the model by its file, not its query.
	c.Model.Path = "https://bucket.example/UniNER-7B-type.Q4_K_M.gguf?X-Amz-Signature=SIGSECRET"
	if _, opts = FromConfig(c.Model); opts.Name != "UniNER-7B-type.Q4_K_M.gguf" {
		t.Errorf("openai engine named %q", opts.Name)
	}
}

func TestFlags(t *testing.T) {
	parse := func(args ...string) (*Flags, error) {
		f := &Flags{MaxNewTokens: 64}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.Register(fs, "the model")
		return f, fs.Parse(args)
	}
	for _, c := range []struct {
		args []string
		spec string
		bad  bool
	}{
		{[]string{"--model", "m.gguf"}, "m.gguf", false},
		{[]string{"--model", "openai:http://a/v1"}, "openai:http://a/v1", false},
		{[]string{"--engine", "openai", "--endpoint", "http://a/v1", "--endpoint", "http://b/v1", "--model", "served"}, "openai:http://a/v1,http://b/v1", false},
		{[]string{"--engine", "openai"}, "", true},
		{[]string{"--endpoint", "http://a/v1", "--model", "m.gguf"}, "", true},
		{[]string{"--engine", "tgi"}, "", true},
	} {
		f, err := parse(c.args...)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := f.Spec()
		if (err != nil) != c.bad || spec != c.spec {
			t.Errorf("%q: spec %q, %v", c.args, spec, err)
		}
	}
	f, _ := parse("--engine", "openai", "--endpoint", "http://a/v1", "--model", "served", "--threads", "2", "--dialect", "vllm")
	o, err := f.Options()
	if err != nil || o.OpenAI.Model != "served" || o.OpenAI.Dialect != "vllm" || o.Llama.Threads != 2 || o.Llama.GPULayers != -1 || f.MaxNewTokens != 64 {
		t.Errorf("options %+v, %v", o, err)
	}
	f, _ = parse("--model", "m.gguf", "--threads", "-1")
	if _, err := f.Options(); err == nil {
		t.Error("negative threads taken")
	}
	// The served model and the tokenizer, for any openai spec.
	for _, c := range []struct {
		args  []string
		model string
		bad   bool
	}{
		{[]string{"--model", "openai:http://a/v1", "--served-model", "uniner", "--tokenizer", "u.gguf"}, "uniner", false},
		{[]string{"--engine", "openai", "--endpoint", "http://a/v1", "--served-model", "uniner"}, "uniner", false},
		{[]string{"--engine", "openai", "--endpoint", "http://a/v1", "--served-model", "uniner", "--model", "uniner"}, "uniner", false},
		{[]string{"--engine", "openai", "--endpoint", "http://a/v1", "--served-model", "uniner", "--model", "other"}, "", true},
	} {
		f, _ := parse(c.args...)
		o, err := f.Options()
		if (err != nil) != c.bad || o.OpenAI.Model != c.model || (!c.bad && c.args[len(c.args)-2] == "--tokenizer" && o.OpenAI.Tokenizer != "u.gguf") {
			t.Errorf("%q: %+v, %v", c.args, o.OpenAI, err)
		}
	}
	// A flag the command declared first stays the command's.
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	own := fs.Duration("request-timeout", time.Minute, "the command's own")
	var g Flags
	g.Register(fs, "the model")
	if err := fs.Parse([]string{"--request-timeout", "5m"}); err != nil || *own != 5*time.Minute || g.Timeout != 0 {
		t.Errorf("--request-timeout: the command's %v, the engine's %v, %v", *own, g.Timeout, err)
	}
}

// TestOpenRemoteNamesServedModel: an openai: model is named after the
// served model: --served-model when given, else what the servers list at
// /v1/models, else "openai" when none answers at start. The server is a
// test double that answers the start-up probe and lists one model, as
// llama-server does (its file's path); cmd/nerstream's
// TestOpenAIEngineAgainstServe checks the same through nerstream serve.
// Reproduction of the defect: annotations through a server said "model":
// "openai".
func TestOpenRemoteNamesServedModel(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/models":
			io.WriteString(w, `{"object": "list", "data": [{"id": "/models/UniNER-7B-type.Q4_K_M.gguf", "object": "model"}]}`)
		case "/v1/completions":
			io.WriteString(w, `{"choices": [{"index": 0, "text": " []", "finish_reason": "stop"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for i, c := range []struct {
		spec string
		opts Options
		want string
	}{
		{"openai:" + srv.URL + "/v1", Options{}, "UniNER-7B-type.Q4_K_M.gguf"},
		{"openai:" + srv.URL + "/v1", Options{OpenAI: openai.Options{Model: "uniner"}}, "uniner"},
		{"openai:" + srv.URL + "/v1", Options{Name: "from-config"}, "from-config"},
		{"openai:http://127.0.0.1:1/v1", Options{}, "openai"},
	} {
		m, err := Open(ctx, c.spec, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != c.want {
			t.Errorf("Open(%s), case %d: name %q, want %q", c.spec, i, m.Name, c.want)
		}
		m.Close()
	}
}

// TestOpenRemoteTokenizer: an openai spec with a tokenizer loads it
// without weights and counts with it, sending nothing; the log says how
// tokens are counted, in one INFO line.
func TestOpenRemoteTokenizer(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		dialect, tokenizer, want string
	}{
		{"ollama", "synth:tiny", "token_count=\"local tokenizer synth:tiny\" prompt_tokens_checked=true"},
		{"ollama", "", "token_count=\"estimate: bytes+1"},
		{"llama-server", "", "token_count=\"the server's /tokenize (llama-server)\" prompt_tokens_checked=true"},
		{"vllm", "", "prompt_tokens_checked=false"},
	} {
		var log bytes.Buffer
		m, err := Open(ctx, "openai:http://127.0.0.1:1/v1", Options{OpenAI: openai.Options{Dialect: openai.Dialect(c.dialect), Tokenizer: c.tokenizer},
			Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		var line string // the one "model: remote" line
		for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			if strings.Contains(l, "model: remote") {
				line = l
			}
		}
		if !strings.Contains(line, c.want) || !strings.Contains(line, "level=INFO") {
			t.Errorf("%s %q: log %q, want %q", c.dialect, c.tokenizer, log.String(), c.want)
		}
		if c.tokenizer != "" {
			// Port 1 answers nothing: the count is local.
			if n, err := m.Engine.TokenCount(ctx, "Ada Lovelace"); err != nil || n <= 0 {
				t.Errorf("TokenCount = %d, %v", n, err)
			}
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := Open(ctx, "openai:http://127.0.0.1:1/v1", Options{OpenAI: openai.Options{Dialect: "ollama", Tokenizer: filepath.Join(t.TempDir(), "none.gguf")}}); !errors.Is(err, ErrSpec) {
		t.Errorf("a missing tokenizer: %v, want an ErrSpec", err)
	}
}

// TestOpenRefusesHostileFiles: every file of the hostile corpus that the
// gate refuses is an ErrSpec from Open, in one line that says what is
// wrong, before llama.cpp sees it (package llama runs the corpus through
// llama.cpp itself, in child processes). A vocabulary-only open takes
// LLaMA's vocabulary, a file without tensors.
func TestOpenRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	refused := 0
	for i, c := range gguftest.Cases() {
		if c.Refused == "" {
			continue
		}
		refused++
		path := filepath.Join(dir, fmt.Sprintf("case-%d.gguf", i))
		if err := c.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		m, err := Open(context.Background(), path, Options{Llama: llama.Options{Threads: 1, VocabOnly: c.Mode == gguf.LoadVocab}})
		if m != nil {
			m.Close()
		}
		switch {
		case !errors.Is(err, ErrSpec):
			t.Errorf("%s: %v, want an ErrSpec", c.Name, err)
		case !strings.Contains(err.Error(), c.Refused) || strings.ContainsAny(err.Error(), "\n\r"):
			t.Errorf("%s: %q, want one line that says %q", c.Name, err, c.Refused)
		}
	}
	if refused < 25 {
		t.Errorf("%d hostile files, want at least 25", refused)
	}

	vocab := shareddata.Vocab(t) // the rest needs LLaMA's vocabulary
	m, err := Open(context.Background(), vocab, Options{Llama: llama.Options{Threads: 1, VocabOnly: true}})
	if err != nil {
		t.Fatalf("LLaMA's vocabulary, vocabulary only: %v", err)
	}
	m.Close()
	if _, err := Open(context.Background(), vocab, Options{Llama: llama.Options{Threads: 1}}); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "token_embd.weight") {
		t.Errorf("LLaMA's vocabulary as a model: %v, want an ErrSpec for its missing tensors", err)
	}
}

// TestOpenRedactsPresignedRef is a regression test of issue 16's finding
// that a model reference's query was shown. Reproduction, before the fix:
// run with model.path: https://bucket/m.gguf?X-Amz-Signature=… set its
// readiness to "pulling https://bucket/m.gguf?X-Amz-Signature=…" (served
// on /readyz) and logged "model: in the cache" with the whole reference;
// a failed download named it whole in its error. Now Status, the log and
// the error show it redacted, and the model is named after its file.
func TestOpenRedactsPresignedRef(t *testing.T) {
	var tiny bytes.Buffer
	if err := gguf.Synth(&tiny, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dl/tiny.gguf" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(tiny.Bytes()))
	}))
	defer srv.Close()
	const query = "?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET"
	tests := []struct {
		name, path string
		wantErr    bool
	}{
		{"pulled and loaded", "/dl/tiny.gguf", false},
		{"not found", "/dl/missing.gguf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var steps []string
			var log, progress bytes.Buffer
			opts := Options{
				Llama:  llama.Options{Threads: 1},
				Status: func(s string) { steps = append(steps, s) },
				Logger: slog.New(slog.NewJSONHandler(&log, nil)), // a plain handler: the source must not log secrets
				Pull:   hub.Options{Dir: t.TempDir(), Progress: &progress},
			}
			m, err := Open(context.Background(), srv.URL+tt.path+query, opts)
			if m != nil {
				defer m.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v", err, tt.wantErr)
			}
			shown := strings.Join(steps, "\n") + "\n" + log.String() + progress.String()
			if err != nil {
				shown += err.Error()
			}
			if strings.Contains(shown, "SECRET") {
				t.Errorf("shows a secret:\n%s", shown)
			}
			if len(steps) == 0 || !strings.HasPrefix(steps[0], "pulling "+srv.URL+tt.path+"?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED") {
				t.Errorf("steps %q", steps)
			}
			if m != nil && m.Name != "tiny.gguf" {
				t.Errorf("model named %q, want tiny.gguf", m.Name)
			}
		})
	}
}

// TestOpenBareName is the regression test of issue 17's finding that a
// bare model.path (`model.path: UniNER-7B-type.Q4_K_M.gguf`, as the example
// configuration had it) resolved against the working folder only: run
// failed with "open UniNER-7B-type.Q4_K_M.gguf: no such file or directory",
// although the model was in the cache, and said nothing of model pull.
// Now a file name alone is the working folder's file, else the cache's;
// missing, it says how to pull it. A path with a folder keeps resolving
// against the working folder, whatever the cache holds.
func TestOpenBareName(t *testing.T) {
	cache := t.TempDir()
	t.Chdir(t.TempDir())
	// A model put in the cache folder by hand, as the compose example
	// says to (pulled models are found too: see hub's TestFind).
	if err := gguf.SynthFile(filepath.Join(cache, "tiny.gguf"), gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("models", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := gguf.SynthFile(filepath.Join("models", "here.gguf"), gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		spec              string
		wantPath, wantErr string // one of them
	}{
		{spec: "tiny.gguf", wantPath: filepath.Join(cache, "tiny.gguf")},
		{spec: "models/here.gguf", wantPath: "models/here.gguf"},
		{spec: "./tiny.gguf", wantErr: "no such file"}, // a path: the working folder only
		{spec: "missing.gguf", wantErr: `"missing.gguf" is neither a file of the working folder nor in the model cache (` + cache + "); fetch it with: nerstream model pull hf://OWNER/REPO/missing.gguf"},
		{spec: hub.DefaultModelFile, wantErr: "fetch it with: nerstream model pull " + hub.DefaultModelRef},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			var log bytes.Buffer
			// Check, which commands run before they listen, agrees with
			// Open: a name the cache holds passes, the others say the same.
			checked := Check(c.spec, Options{Pull: hub.Options{Dir: cache}})
			if (checked == nil) != (c.wantErr == "") || (checked != nil && (!errors.Is(checked, ErrSpec) || !strings.Contains(checked.Error(), c.wantErr))) {
				t.Errorf("Check(%q) = %v; want nil or an ErrSpec that says %q, as Open", c.spec, checked, c.wantErr)
			}
			m, err := Open(context.Background(), c.spec, Options{Llama: llama.Options{Threads: 1}, Pull: hub.Options{Dir: cache},
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if c.wantErr != "" {
				if m != nil {
					m.Close()
				}
				if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Open(%q) = %v, want an ErrSpec that says %q", c.spec, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "--model") {
					t.Errorf("the error names a flag, which run does not have: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Path != c.wantPath || m.Name != filepath.Base(c.spec) {
				t.Errorf("Open(%q): path %q, name %q; want %q, %q", c.spec, m.Path, m.Name, c.wantPath, filepath.Base(c.spec))
			}
			if inCache := m.Path != c.spec; inCache != strings.Contains(log.String(), "model: in the cache") {
				t.Errorf("the log says where the model came from? %s", log.String())
			}
		})
	}
}
