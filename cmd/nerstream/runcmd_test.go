package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCommand runs `nerstream run` as its own process on the synthetic
// tiny model, against the embedded broker, and stops it with SIGTERM: it
// annotates everything, commits, leaves the group and exits 0.
func TestRunCommand(t *testing.T) {
	const n = 40
	c := startBroker(t, 3)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	cfg := streamConfig(brokers)
	cfg.Model.Path = "synth:tiny"
	cfg.Model.MaxNewTokens = 8
	cfg.Model.Threads = 1
	cmd := exec.Command(os.Args[0], "run", "--config", writeConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MAIN=1")
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
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 3, 60*time.Second)
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
	recs := readTopic(t, brokers, outTopic, 3)
	if len(recs) != n {
		t.Fatalf("%d annotation records, want %d", len(recs), n)
	}
	if !bytes.Contains(recs[0].Value, []byte(`"model":"synthetic-tiny`)) {
		t.Errorf("record %s does not name the model", recs[0].Value)
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
