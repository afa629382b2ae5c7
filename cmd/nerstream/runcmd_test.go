package main

import (
	"bytes"
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
	if st, err := os.Stat(filepath.Join(cacheDir, "tiny.gguf")); err != nil || st.Size() != int64(model.Len()) {
		t.Errorf("the model is not in the cache: %v", err)
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
