package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/internal/localbroker"
)

// TestBrokerCommand: `nerstream broker` prints its address as the one line
// of standard output, holds the topics asked for, serves a stream member
// (run's), and stops on the signal's context with exit 0.
func TestBrokerCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var errb syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"broker", "--listen", "127.0.0.1:0", "--topics", " docs, entities,entities-dlq ,", "--partitions", "2"}, strings.NewReader(""), outW, &errb)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		t.Fatalf("no address on stdout; exit %d, stderr %q", <-exited, errb.String())
	}
	addr := lines.Text()
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("stdout %q is not the address listened on", addr)
	}
	if !strings.Contains(errb.String(), "listening on "+addr+"; topics docs, entities, entities-dlq (2 partitions each)") {
		t.Errorf("stderr %q", errb.String())
	}
	// run over it, on the synthetic model: every document gets its
	// annotation.
	brokers := []string{addr}
	kafkatest.ProduceDocs(t, brokers, 0, 5)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.Path, cfg.Model.MaxNewTokens, cfg.Model.Threads = "synth:tiny", 8, 1
	rctx, stopRun := context.WithCancel(context.Background())
	var runErr syncBuffer
	runExited := make(chan int, 1)
	go func() {
		runExited <- run(rctx, []string{"run", "--config", kafkatest.WriteConfig(t, cfg)}, strings.NewReader(""), io.Discard, &runErr)
	}()
	waitCommitted(t, brokers, cfg.Kafka.GroupID, 2, runExited, &runErr)
	stopRun()
	if code := <-runExited; code != 0 {
		t.Errorf("run exited %d; stderr:\n%s", code, runErr.String())
	}
	if recs := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 2); len(recs) != 5 {
		t.Errorf("%d annotations, want 5", len(recs))
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 || !strings.HasSuffix(errb.String(), "broker: stopped\n") {
			t.Errorf("exit %d after the signal, stderr %q", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the broker did not stop")
	}
	if lines.Scan() {
		t.Errorf("stdout has more than the address: %q", lines.Text())
	}
}

// TestBrokerCommandRefuses: bad flags are one line and exit 2; an address
// that another program holds is one line, naming --listen, and exit 1.
func TestBrokerCommandRefuses(t *testing.T) {
	cases := []struct {
		args []string
		says string
	}{
		{[]string{"--listen", ":9092"}, "give one they can reach"},
		{[]string{"--listen", "localhost"}, "want host:port"},
		{[]string{"--listen", "127.0.0.1:99999"}, "from 0 to 65535"},
		{[]string{"--topics", "docs,my docs"}, `topic name "my docs"`},
		{[]string{"--topics", "docs,\x1b[2J"}, `topic name "\x1b[2J"`},
		{[]string{"--partitions", "0"}, "--partitions 0: want 1 to 1024"},
		{[]string{"--partitions", "100000"}, "want 1 to 1024"},
		{[]string{"--partitions", "many"}, "invalid value"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errs := runBrokerFor(t, 30*time.Second, c.args...)
			checkOneLineError(t, code, 2, errs, c.says)
			if out != "" || strings.Contains(errs, "\x1b") {
				t.Errorf("stdout %q, stderr %q", out, errs)
			}
		})
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, out, errs := runBrokerFor(t, 30*time.Second, "--listen", taken.Addr().String())
	checkOneLineError(t, code, 1, errs, "--listen "+taken.Addr().String()+": the address is in use by another program")
	if out != "" {
		t.Errorf("stdout %q: no address was listened on", out)
	}
}

// runBrokerFor runs nerstream broker in-process, stopping it after timeout
// if it runs at all (where it should have refused to).
func runBrokerFor(t *testing.T, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"broker"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestLocalExample: examples/local.yaml, the Quickstart's configuration,
// passes run's checks and points at what `nerstream broker` gives with no
// flags (its address and topics), with a model that needs no download and
// an HTTP address that cannot be taken.
func TestLocalExample(t *testing.T) {
	code, out, errs := runCLI(t, "", "config", "check", "--config", "../../examples/local.yaml")
	if code != 0 || out != "../../examples/local.yaml: ok\n" {
		t.Fatalf("config check: exit %d, %q %q", code, out, errs)
	}
	cfg, err := config.Load("../../examples/local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topics := append(slices.Clone(cfg.Input.Topics), cfg.Output.Topic, cfg.Output.DeadLetterTopic)
	for _, tp := range topics {
		if !slices.Contains(localbroker.DefaultTopics, tp) {
			t.Errorf("topic %q is not one that nerstream broker creates (%q)", tp, localbroker.DefaultTopics)
		}
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{localbroker.DefaultListen}) {
		t.Errorf("brokers %q, want nerstream broker's %s", cfg.Kafka.Brokers, localbroker.DefaultListen)
	}
	if !strings.HasPrefix(cfg.Model.Path, engines.SynthPrefix) {
		t.Errorf("model.path %q needs a download", cfg.Model.Path)
	}
	if _, port, _ := net.SplitHostPort(cfg.HTTP.Address); port != "0" {
		t.Errorf("http.address %q: a fixed port may be taken", cfg.HTTP.Address)
	}
}
