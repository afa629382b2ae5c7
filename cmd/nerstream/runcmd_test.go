package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/hub"
)

// TestRunCommand runs `nerstream run` as its own process on the synthetic
// tiny model, against the embedded broker, and stops it with SIGTERM: it
// annotates everything, commits, leaves the group and exits 0.
func TestRunCommand(t *testing.T) {
	const n = 40
	c := kafkatest.StartBroker(t, 3)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	// The model is a reference: run pulls it into the cache on first use.
	var model bytes.Buffer
	if err := gguf.Synth(&model, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "tiny.gguf", time.Time{}, bytes.NewReader(model.Bytes()))
	}))
	defer srv.Close()
	cacheDir := t.TempDir()
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.Path = srv.URL + "/models/tiny.gguf"
	cfg.Model.MaxNewTokens = 8
	cfg.Model.Threads = 1
	cmd := exec.Command(os.Args[0], "run", "--config", kafkatest.WriteConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MAIN=1", "NERSTREAM_MODEL_DIR="+cacheDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 3, 60*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("run exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop after SIGTERM; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "nerstream: stopped") || !strings.Contains(stderr.String(), `"annotated":40`) {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	recs := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
	if len(recs) != n {
		t.Fatalf("%d annotation records, want %d", len(recs), n)
	}
	if !bytes.Contains(recs[0].Value, []byte(`"model":"tiny.gguf"`)) {
		t.Errorf("record %s does not name the model", recs[0].Value)
	}
	if !strings.Contains(stderr.String(), "pulling "+cfg.Model.Path) {
		t.Errorf("run did not say it pulls the model; stderr:\n%s", stderr.String())
	}
	ref, err := hub.ParseRef(cfg.Model.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(ref.CachePath(cacheDir)); err != nil || st.Size() != int64(model.Len()) {
		t.Errorf("the model is not in the cache: %v", err)
	}
}

// TestRunRedactsPresignedModel is a regression test of issue 16's finding
// that run showed a presigned model reference. Reproduction, before the
// fix: `nerstream run` with model.path:
// https://bucket/m.gguf?X-Amz-Signature=… answered /readyz, which needs
// no authentication, with "model: pulling https://bucket/m.gguf?X-Amz-Signature=…"
// for as long as the download took, and wrote the same address to its
// log stream ("pulling … into …"). Now both show it REDACTED.
func TestRunRedactsPresignedModel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The start of a model, then nothing: run stays at "pulling".
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("GGUF"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := kafkatest.StreamConfig([]string{"127.0.0.1:1"}) // the model comes first: no broker is reached
	cfg.Model.Path = srv.URL + "/models/tiny.gguf?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET"
	cmd := exec.Command(os.Args[0], "run", "--config", kafkatest.WriteConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MAIN=1", "NERSTREAM_MODEL_DIR="+t.TempDir())
	member := kafkatest.StartMember(t, cmd)
	base, stderr := member.Base, member.Stderr
	var body string
	waitUntil(t, 30*time.Second, "/readyz saying the model is being pulled", func() bool {
		var code int
		code, body = get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "model: pulling")
	})
	want := "model: pulling " + srv.URL + "/models/tiny.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
	if strings.Contains(body, "SECRET") || !strings.Contains(body, want) {
		t.Errorf("/readyz %q, want %q and no secret", body, want)
	}
	waitUntil(t, 10*time.Second, "the pull announced on stderr", func() bool { return strings.Contains(stderr.String(), "pulling ") })
	if s := stderr.String(); strings.Contains(s, "SECRET") {
		t.Errorf("run's stderr shows a secret:\n%s", s)
	}
}

func TestRunCommandBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "kafka: {brokerz: [a:1]}\n", "brokerz"},
		{"missing sections", "model: {path: m.gguf}\n", "kafka.brokers: required"},
		{"bad values", "kafka: {brokers: [localhost]}\ninput: {topics: [docs], format: xml}\noutput: {topic: o, dead_letter_topic: d}\nmodel: {path: m.gguf, entity_types: [person]}\n", "input.format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", "run", "--config", write(c.name+".yaml", c.yaml))
			checkOneLineError(t, code, 2, errs, c.want)
		})
	}
	code, _, errs := runCLI(t, "", "run")
	checkOneLineError(t, code, 2, errs, "--config is required")
}

// TestRunModelByName is the regression test of issue 17's finding that
// `nerstream run --config examples/nerstream.yaml` failed on
// `stat UniNER-7B-type.Q4_K_M.gguf: no such file` although the file name
// alone could have named the cache's model, and said neither which
// setting nor how to fetch it. Now a bare model.path is the working
// folder's file, else the cache's: run annotates with it; missing, the one
// line names model.path and the pull, and no flag that run lacks.
func TestRunModelByName(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("NERSTREAM_MODEL_DIR", cache)
	t.Chdir(t.TempDir())
	if err := gguf.SynthFile(filepath.Join(cache, "tiny.gguf"), gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}

	t.Run("missing", func(t *testing.T) {
		cfg := kafkatest.StreamConfig([]string{"127.0.0.1:1"}) // the model comes first: no broker is reached
		cfg.Model.Path = hub.DefaultModelFile
		cfg.HTTP.Address = "" // no log line before the error
		code, _, errs := runCLI(t, "", "run", "--config", kafkatest.WriteConfig(t, cfg))
		checkOneLineError(t, code, 2, errs, "nerstream run: model.path: ")
		for _, want := range []string{"nor in the model cache (" + cache + ")", "nerstream model pull " + hub.DefaultModelRef} {
			if !strings.Contains(errs, want) {
				t.Errorf("stderr %q does not say %q", errs, want)
			}
		}
		if strings.Contains(errs, "--model") {
			t.Errorf("stderr %q names --model, which run does not have", errs)
		}
	})

	t.Run("in the cache", func(t *testing.T) {
		c := kafkatest.StartBroker(t, 2)
		brokers := c.ListenAddrs()
		kafkatest.ProduceDocs(t, brokers, 0, 4)
		cfg := kafkatest.StreamConfig(brokers)
		cfg.Model.Path, cfg.Model.MaxNewTokens, cfg.Model.Threads = "tiny.gguf", 8, 1
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		var errs syncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- run(ctx, []string{"run", "--config", kafkatest.WriteConfig(t, cfg)}, strings.NewReader(""), io.Discard, &errs)
		}()
		waitCommitted(t, brokers, cfg.Kafka.GroupID, 2, exited, &errs)
		stop()
		if code := <-exited; code != 0 {
			t.Fatalf("run exited %d; stderr:\n%s", code, errs.String())
		}
		recs := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
		if len(recs) != 4 || !bytes.Contains(recs[0].Value, []byte(`"model":"tiny.gguf"`)) {
			t.Errorf("%d records, the first %s; want 4, naming tiny.gguf", len(recs), recs[0].Value)
		}
		if !strings.Contains(errs.String(), `"msg":"model: in the cache","name":"tiny.gguf","path":"`+filepath.Join(cache, "tiny.gguf")) {
			t.Errorf("the log does not say where the model came from:\n%s", errs.String())
		}
	})
}

// TestRunAddressInUse is the regression test of issue 17's finding that
// run on a machine where another program held port 8080 failed with
// `telemetry: listening on ":8080": listen tcp :8080: bind: address already
// in use`, naming no setting. Now the one line names http.address and
// how to change it, and the exit code is 1 (the configuration is valid).
func TestRunAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := kafkatest.StreamConfig([]string{"127.0.0.1:1"})
	cfg.Model.Path = "synth:tiny"
	cfg.HTTP.Address = taken.Addr().String()
	code, _, errs := runCLI(t, "", "run", "--config", kafkatest.WriteConfig(t, cfg))
	checkOneLineError(t, code, 1, errs, `nerstream run: http.address "`+taken.Addr().String()+`": address already in use: another program listens there; stop it or set another address (--set http.address=127.0.0.1:0 picks a free port`)
}

// TestRunChecksModelFirst: a model setting that cannot load stops run
// before it listens or logs anything: one line, exit 2.
func TestRunChecksModelFirst(t *testing.T) {
	cfg := kafkatest.StreamConfig([]string{"127.0.0.1:1"})
	cfg.Model.Path = filepath.Join(t.TempDir(), "absent.gguf")
	cfg.HTTP.Address = "127.0.0.1:0"
	code, _, errs := runCLI(t, "", "run", "--config", kafkatest.WriteConfig(t, cfg))
	checkOneLineError(t, code, 2, errs, "nerstream run: model.path: ")
	if strings.Contains(errs, "serving") {
		t.Errorf("run listened before it checked the model: %s", errs)
	}
}

// TestServeAddressInUse: serve on a taken --listen address says so in one
// line naming the flag, as run does for http.address.
func TestServeAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, _, errs := runCLI(t, "", "serve", "--model", "synth:tiny", "--listen", taken.Addr().String())
	checkOneLineError(t, code, 1, errs, `nerstream serve: --listen "`+taken.Addr().String()+`": address already in use: another program listens there`)
}

// waitCommitted waits, as kafkatest.WaitCommittedAtEnd does, until the
// group has committed the input topic's end on every partition; a command
// run in-process that exits first (its code on exited) fails the test at
// once, with its stderr.
func waitCommitted(t *testing.T, brokers []string, group string, partitions int, exited <-chan int, stderr *syncBuffer) {
	t.Helper()
	end := kafkatest.EndOffsets(t, brokers, kafkatest.InTopic, partitions)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := kafkatest.Committed(brokers, group, partitions)
		if err == nil && fmt.Sprint(got) == fmt.Sprint(end) {
			return
		}
		select {
		case code := <-exited:
			t.Fatalf("exited %d before committing the log end %v; stderr:\n%s", code, end, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v never reached the log end %v; stderr:\n%s", got, end, stderr.String())
		}
	}
}
