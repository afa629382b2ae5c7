package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/telemetry"
)

// TestStreamManyDocsTwoMembers: 10,000 documents through 6 partitions and 2
// group members. Every id reaches the output, and the committed offsets end
// at the log end.
func TestStreamManyDocsTwoMembers(t *testing.T) {
	const n = 10000
	c := kafkatest.StartBroker(t, 6)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	r1, r2 := &kafkatest.InstantRecognizer{}, &kafkatest.InstantRecognizer{}
	runMember(t, cfg, r1, "a")
	runMember(t, cfg, r2, "b")
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)
	dups := kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), n)
	t.Logf("members saw %d and %d documents; %d duplicates", r1.Seen(), r2.Seen(), dups)
	if r1.Seen() == 0 || r2.Seen() == 0 {
		t.Errorf("one member did all the work (%d, %d): the group did not share the partitions", r1.Seen(), r2.Seen())
	}
}

// TestStreamMemberKilled: a member process is killed (SIGKILL, no graceful
// path) with batches in flight. Its partitions go to the survivor, nothing
// is lost, and the duplicates stay within the killed member's in-flight
// bound.
func TestStreamMemberKilled(t *testing.T) {
	const n = 3000
	c := kafkatest.StartBroker(t, 6)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Batch.MaxDocs = 16
	cfg.Batch.MaxInFlight = 64
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MEMBER="+kafkatest.WriteConfig(t, cfg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Let the member (slow: 30ms a batch) take all six partitions and
	// commit some of its work, then kill it mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := kafkatest.Committed(brokers, cfg.Kafka.GroupID, 6)
		var sum int64
		for _, off := range got {
			sum += max(off, 0)
		}
		if sum > 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member committed nothing; its stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	atKill, _ := kafkatest.Committed(brokers, cfg.Kafka.GroupID, 6)
	t.Logf("killed the member with %v committed", atKill)
	var sum int64
	for _, off := range atKill {
		sum += max(off, 0)
	}
	if sum >= n {
		t.Fatalf("the member finished before it was killed (%d committed); the test proves nothing", sum)
	}
	survivor := &kafkatest.InstantRecognizer{}
	runMember(t, cfg, survivor, "survivor")
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)
	dups := kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), n)
	t.Logf("%d duplicates after the kill; the survivor saw %d documents", dups, survivor.Seen())
	if dups > cfg.Batch.MaxInFlight {
		t.Fatalf("%d duplicates, over the in-flight bound %d", dups, cfg.Batch.MaxInFlight)
	}
}

// TestStreamRebalanceWithSlowBatch: a second member joins while the first
// has a slow batch at the model, then leaves again. The rebalance happens:
// the group's coordinator gives the joiner partitions, and the joiner
// annotates documents. The committed offsets never move backwards, in
// polls all along and after each step, and nothing is lost.
func TestStreamRebalanceWithSlowBatch(t *testing.T) {
	const n = 2000
	c := kafkatest.StartBroker(t, 6)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Batch.MaxDocs = 50
	cfg.Batch.MaxInFlight = 100
	group := cfg.Kafka.GroupID
	watch := kafkatest.WatchOffsets(brokers, group, 6)
	steps := []map[int]int64{}
	step := func(name string) {
		got := watch.Snapshot(t)
		if len(steps) > 0 {
			for p, off := range got {
				if off < steps[len(steps)-1][p] {
					t.Fatalf("after %s: partition %d committed %d, before it was %d", name, p, off, steps[len(steps)-1][p])
				}
			}
		}
		steps = append(steps, got)
		t.Logf("after %s: committed %v", name, got)
	}
	// assigned waits until the group's assignment, by client id, passes ok.
	assigned := func(what string, ok func(map[string][]int) bool) map[string][]int {
		t.Helper()
		var got map[string][]int
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if got, err = kafkatest.Assignments(brokers, group); err == nil && ok(got) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: the assignment never came (last %v, %v)", what, got, err)
		return nil
	}

	slowCfg, joinCfg := cfg, cfg
	slowCfg.Kafka.ClientID, joinCfg.Kafka.ClientID = "slow", "joiner"
	slow := &kafkatest.InstantRecognizer{Delay: 400 * time.Millisecond}
	runMember(t, slowCfg, slow, "slow")
	assigned("the slow member alone", func(a map[string][]int) bool { return len(a["slow"]) == 6 })
	for slow.Seen() == 0 || sumOffsets(watch.Snapshot(t)) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	step("the slow member's first commits")
	// A batch is at the model now; the join below rebalances under it.
	joiner := &kafkatest.InstantRecognizer{Delay: 5 * time.Millisecond}
	stopJoiner := runMember(t, joinCfg, joiner, "joiner")
	a := assigned("the join", func(a map[string][]int) bool { return len(a["slow"]) > 0 && len(a["joiner"]) > 0 })
	t.Logf("after the join: partitions %v", a)
	for joiner.Seen() == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	step("the join")
	stopJoiner()
	assigned("the joiner's leave", func(a map[string][]int) bool { return len(a["slow"]) == 6 && len(a["joiner"]) == 0 })
	step("the joiner's graceful leave")
	kafkatest.WaitCommittedAtEnd(t, brokers, group, 6, 60*time.Second)
	step("the end")
	watch.Check(t)
	kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), n)
	t.Logf("the slow member saw %d documents, the joiner %d", slow.Seen(), joiner.Seen())
}

func sumOffsets(m map[int]int64) int64 {
	var s int64
	for _, off := range m {
		s += max(off, 0)
	}
	return s
}

// TestStreamBrokerFaults: NOT_LEADER_FOR_PARTITION on produce,
// REBALANCE_IN_PROGRESS on commit, and the broker stopped and restarted
// from its data folder. Nothing is lost and the stream goes on.
func TestStreamBrokerFaults(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	port := kafkatest.FreePort(t)
	opts := []kfake.Opt{kfake.Ports(port), kfake.DataDir(dir)}
	c := kafkatest.StartBroker(t, 6, opts...)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	notLeader := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafkatest.OutTopic, Err: kerr.NotLeaderForPartition, Count: 6})
	rebalancing := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RebalanceInProgress, Count: 6})
	cfg := kafkatest.StreamConfig(brokers)
	rec := &kafkatest.InstantRecognizer{Delay: 2 * time.Millisecond}
	stop := runMember(t, cfg, rec, "member")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notLeader.Wait(ctx, 6); err != nil {
		t.Fatalf("the produce faults never fired: %v", err)
	}
	if err := rebalancing.Wait(ctx, 6); err != nil {
		t.Fatalf("the commit faults never fired: %v", err)
	}
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)

	// Stop the broker under the running member, and bring it back on the
	// same port from its data folder with more input waiting.
	c.Close()
	time.Sleep(time.Second)
	c2 := kafkatest.StartBroker(t, 6, opts...)
	if got := c2.ListenAddrs(); got[0] != brokers[0] {
		t.Fatalf("restarted broker at %v, want %v", got, brokers)
	}
	kafkatest.ProduceDocs(t, brokers, n, n)
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 90*time.Second)
	stop()
	kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), 2*n)
}

// TestStreamCommitOutage: the broker refuses every offset commit
// (COORDINATOR_NOT_AVAILABLE) while heartbeats, fetches and produces work.
// The member writes until the records written and not committed reach
// batch.max_in_flight, then holds, so that a crash now would redeliver a
// bounded window, not the whole backlog; /readyz says why. When commits
// pass again, every document is annotated and committed.
func TestStreamCommitOutage(t *testing.T) {
	const n, partitions, maxInFlight = 600, 3, 16
	c := kafkatest.StartBroker(t, partitions)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	refuse := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.CoordinatorNotAvailable, Count: -1})
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Batch.MaxDocs, cfg.Batch.MaxInFlight = 4, maxInFlight
	health := telemetry.NewHealth()
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "nerstream-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	stop := runMember(t, cfg, &kafkatest.InstantRecognizer{}, "member", WithTelemetry(tel, health))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Many refused commits: the commit is retried with back-off (20 ms to
	// 200 ms here) while held, long after the backlog would have been
	// written without the hold (it takes well under a second).
	if err := refuse.Wait(ctx, 60); err != nil {
		t.Fatalf("the commit faults never fired: %v", err)
	}
	written := 0
	for _, end := range kafkatest.EndOffsets(t, brokers, kafkatest.OutTopic, partitions) {
		written += int(end)
	}
	if written == 0 || written >= 2*maxInFlight {
		t.Errorf("%d annotations written while every commit was refused, want 1 to %d", written, 2*maxInFlight-1)
	}
	ready, reasons := health.Ready()
	if ready || !slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, "commit: commits failing") }) {
		t.Errorf("ready %v %q while commits are refused", ready, reasons)
	}
	refuse.Remove()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, partitions, 60*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ready, _ = health.Ready(); ready || time.Now().After(deadline) {
			break
		}
	}
	if ready, reasons := health.Ready(); !ready {
		t.Errorf("not ready once commits pass: %q", reasons)
	}
	stop()
	kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), n)
}

// TestStreamDeadLetters: every kind of bad input lands in the dead-letter
// topic with its reason and its source, between good documents that all
// get their annotations; the committed offset reaches the end.
func TestStreamDeadLetters(t *testing.T) {
	c := kafkatest.StartBroker(t, 1)
	brokers := c.ListenAddrs()
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Input.MaxBytes = 1000
	cfg.Model.MaxTypes = 3
	snappyHeader := []kafka.Header{{Key: "content-encoding", Value: []byte("snappy")}}
	good := func(i int) kafka.Message {
		return kafka.Message{Key: fmt.Appendf(nil, "doc-%d", i), Value: fmt.Appendf(nil, `{"id":"doc-%d","text":"Ada wrote note %d."}`, i, i)}
	}
	bad := []struct {
		reason string
		msg    kafka.Message
	}{
		{"invalid_json", kafka.Message{Value: []byte("this is not JSON")}},
		{"missing_text", kafka.Message{Value: []byte(`{"id":"x"}`)}},
		{"empty_text", kafka.Message{Value: []byte(`{"text":"  \n"}`)}},
		{"invalid_utf8", kafka.Message{Value: []byte("{\"text\":\"caf\xe9\"}")}},
		// A lone surrogate escape decodes to U+FFFD: no Unicode text
		// either, and refused as nerstream serve refuses it.
		{"invalid_utf8", kafka.Message{Value: []byte(`{"id":"lone","text":"a \ud800 b"}`)}},
		{"value_too_large", kafka.Message{Value: fmt.Appendf(nil, `{"text":"%s"}`, strings.Repeat("Ada ", 300))}},
		{"too_many_entity_types", kafka.Message{Value: []byte(`{"text":"Ada","entity_types":["a","b","c","d"]}`)}},
		{"invalid_entity_types", kafka.Message{Value: []byte(`{"text":"Ada","entity_types":[]}`)}},
		{"invalid_snappy", kafka.Message{Value: []byte("\x10not snappy at all"), Headers: snappyHeader}},
		// A tombstone (a null value) was an invalid_json dead letter.
		{"empty_value", kafka.Message{Key: []byte("deleted"), Value: nil}},
	}
	var msgs []kafka.Message
	for i, b := range bad {
		msgs = append(msgs, good(i))
		b.msg.Headers = append(b.msg.Headers, kafka.Header{Key: "trace", Value: strconv.AppendInt(nil, int64(i), 10)})
		msgs = append(msgs, b.msg)
	}
	// A good document compressed with snappy, at the end.
	compressed := snappy.Encode(nil, good(len(bad)).Value)
	msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "doc-%d", len(bad)), Value: compressed, Headers: snappyHeader})
	kafkatest.ProduceRaw(t, brokers, msgs...)
	runMember(t, cfg, &kafkatest.InstantRecognizer{}, "member")
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 30*time.Second)
	kafkatest.CheckAllIDs(t, kafkatest.AnnotationIDs(t, brokers), len(bad)+1)
	dlq := kafkatest.ReadTopic(t, brokers, kafkatest.DLQTopic, 3)
	if len(dlq) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(bad))
	}
	for _, r := range dlq {
		i, err := strconv.Atoi(r.Headers["trace"]) // the original header, kept
		if err != nil || i < 0 || i >= len(bad) {
			t.Fatalf("dead letter %q: trace header %q", r.Value, r.Headers["trace"])
		}
		reason, want := bad[i].reason, bad[i].msg.Value
		if r.Headers["nerstream-error"] != reason {
			t.Errorf("dead letter %q: nerstream-error %q, want %q", r.Value, r.Headers["nerstream-error"], reason)
		}
		if !bytes.Equal(r.Value, want) {
			t.Errorf("dead letter for %s: value %q, want the original %q", reason, r.Value, want)
		}
		if r.Headers["nerstream-source-topic"] != kafkatest.InTopic || r.Headers["nerstream-source-partition"] != "0" || r.Headers["nerstream-source-offset"] == "" {
			t.Errorf("dead letter for %s: source headers %v", reason, r.Headers)
		}
	}
}

// TestStreamKcat: a non-Go client on both ends. kcat (librdkafka) produces
// snappy-compressed input and reads the snappy-compressed output.
func TestStreamKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_KCAT") != "" {
			t.Fatal("kcat is not installed, and NERSTREAM_REQUIRE_KCAT is set (CI installs it: apt-get install kcat)")
		}
		t.Skip("kcat is not installed (apt-get install kcat); .ci/run installs it and sets NERSTREAM_REQUIRE_KCAT")
	}
	const n = 200
	c := kafkatest.StartBroker(t, 3)
	brokers := c.ListenAddrs()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "doc-%d\t{\"id\":\"doc-%d\",\"text\":\"Ada wrote note %d.\"}\n", i, i, i)
	}
	produce := exec.Command(kcat, "-b", brokers[0], "-t", kafkatest.InTopic, "-P", "-K", "\t", "-z", "snappy")
	produce.Stdin = strings.NewReader(in.String())
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Output.Compression = "snappy"
	runMember(t, cfg, &kafkatest.InstantRecognizer{}, "member")
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 3, 30*time.Second)
	consume := exec.Command(kcat, "-b", brokers[0], "-t", kafkatest.OutTopic, "-C", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
	out, err := consume.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	ids := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, value, _ := strings.Cut(line, "\t")
		var a struct {
			ID       string                  `json:"id"`
			Entities []struct{ Text string } `json:"entities"`
		}
		if err := json.Unmarshal([]byte(value), &a); err != nil || a.ID != key || len(a.Entities) != 1 {
			t.Fatalf("kcat read %q (%v)", line, err)
		}
		ids[a.ID]++
	}
	kafkatest.CheckAllIDs(t, ids, n)
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv("NERSTREAM_TEST_MEMBER"); cfg != "" {
		os.Exit(testMemberMain(cfg))
	}
	os.Exit(m.Run())
}

// testMemberMain runs a member with a slow test-double model in this
// process until it is killed. NERSTREAM_TEST_MEMBER names its config.
func testMemberMain(cfgPath string) int {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, nil, WithRecognizer(&kafkatest.InstantRecognizer{Delay: 30 * time.Millisecond}), WithModelName("test-double"), WithLogger(log))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runMember runs a member in the background until the returned stop is
// called (gracefully) or the test ends.
func runMember(t *testing.T, cfg config.Config, rec pipeline.Recognizer, name string, opts ...Option) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: name}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, nil, append([]Option{WithRecognizer(rec), WithModelName("test-double"), WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("member %s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("member %s did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
