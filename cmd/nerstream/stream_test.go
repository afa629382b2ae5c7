package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStreamManyDocsTwoMembers: 10,000 documents through 6 partitions and 2
// group members. Every id reaches the output, and the committed offsets end
// at the log end.
func TestStreamManyDocsTwoMembers(t *testing.T) {
	const n = 10000
	c := startBroker(t, 6)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	cfg := streamConfig(brokers)
	r1, r2 := &instantRecognizer{}, &instantRecognizer{}
	runMember(t, cfg, r1, "a")
	runMember(t, cfg, r2, "b")
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)
	dups := checkAllIDs(t, annotationIDs(t, brokers), n)
	t.Logf("members saw %d and %d documents; %d duplicates", r1.seen(), r2.seen(), dups)
	if r1.seen() == 0 || r2.seen() == 0 {
		t.Errorf("one member did all the work (%d, %d): the group did not share the partitions", r1.seen(), r2.seen())
	}
}

// TestStreamMemberKilled: a member process is killed (SIGKILL, no graceful
// path) with batches in flight. Its partitions go to the survivor, nothing
// is lost, and the duplicates stay within the killed member's in-flight
// bound.
func TestStreamMemberKilled(t *testing.T) {
	const n = 3000
	c := startBroker(t, 6)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	cfg := streamConfig(brokers)
	cfg.Batch.MaxDocs = 16
	cfg.Batch.MaxInFlight = 64
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MEMBER="+writeConfig(t, cfg))
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
		got, _ := committed(brokers, cfg.Kafka.GroupID, 6)
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
	atKill, _ := committed(brokers, cfg.Kafka.GroupID, 6)
	t.Logf("killed the member with %v committed", atKill)
	var sum int64
	for _, off := range atKill {
		sum += max(off, 0)
	}
	if sum >= n {
		t.Fatalf("the member finished before it was killed (%d committed); the test proves nothing", sum)
	}
	survivor := &instantRecognizer{}
	runMember(t, cfg, survivor, "survivor")
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)
	dups := checkAllIDs(t, annotationIDs(t, brokers), n)
	t.Logf("%d duplicates after the kill; the survivor saw %d documents", dups, survivor.seen())
	if dups > cfg.Batch.MaxInFlight {
		t.Fatalf("%d duplicates, over the in-flight bound %d", dups, cfg.Batch.MaxInFlight)
	}
}

// TestStreamRebalanceWithSlowBatch: a second member joins while the first
// has a slow batch at the model, then leaves again. The committed offsets
// never move backwards, in polls all along and after each step, and
// nothing is lost.
func TestStreamRebalanceWithSlowBatch(t *testing.T) {
	const n = 2000
	c := startBroker(t, 6)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	cfg := streamConfig(brokers)
	cfg.Batch.MaxDocs = 50
	cfg.Batch.MaxInFlight = 100
	group := cfg.Kafka.GroupID
	watch := watchOffsets(brokers, group, 6)
	steps := []map[int]int64{}
	step := func(name string) {
		got := watch.snapshot(t, brokers, group, 6)
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

	slow := &instantRecognizer{delay: 400 * time.Millisecond}
	runMember(t, cfg, slow, "slow")
	for slow.seen() == 0 || sumOffsets(watch.snapshot(t, brokers, group, 6)) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	step("the slow member's first commits")
	// A batch is at the model now; the join below rebalances under it.
	stopFast := runMember(t, cfg, &instantRecognizer{delay: 5 * time.Millisecond}, "joiner")
	time.Sleep(1500 * time.Millisecond)
	step("the join")
	stopFast()
	step("the joiner's graceful leave")
	waitCommittedAtEnd(t, brokers, group, 6, 60*time.Second)
	step("the end")
	watch.check(t)
	checkAllIDs(t, annotationIDs(t, brokers), n)
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
	port := freePort(t)
	opts := []kfake.Opt{kfake.Ports(port), kfake.DataDir(dir)}
	c := startBroker(t, 6, opts...)
	brokers := c.ListenAddrs()
	produceDocs(t, brokers, 0, n)
	notLeader := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: outTopic, Err: kerr.NotLeaderForPartition, Count: 6})
	rebalancing := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RebalanceInProgress, Count: 6})
	cfg := streamConfig(brokers)
	rec := &instantRecognizer{delay: 2 * time.Millisecond}
	stop := runMember(t, cfg, rec, "member")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notLeader.Wait(ctx, 6); err != nil {
		t.Fatalf("the produce faults never fired: %v", err)
	}
	if err := rebalancing.Wait(ctx, 6); err != nil {
		t.Fatalf("the commit faults never fired: %v", err)
	}
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 60*time.Second)

	// Stop the broker under the running member, and bring it back on the
	// same port from its data folder with more input waiting.
	c.Close()
	time.Sleep(time.Second)
	c2 := startBroker(t, 6, opts...)
	if got := c2.ListenAddrs(); got[0] != brokers[0] {
		t.Fatalf("restarted broker at %v, want %v", got, brokers)
	}
	produceDocs(t, brokers, n, n)
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 6, 90*time.Second)
	stop()
	checkAllIDs(t, annotationIDs(t, brokers), 2*n)
}

// TestStreamDeadLetters: every kind of bad input lands in the dead-letter
// topic with its reason and its source, between good documents that all
// get their annotations; the committed offset reaches the end.
func TestStreamDeadLetters(t *testing.T) {
	c := startBroker(t, 1)
	brokers := c.ListenAddrs()
	cfg := streamConfig(brokers)
	cfg.Input.MaxBytes = 1000
	cfg.Model.MaxEntityTypes = 3
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
		{"value_too_large", kafka.Message{Value: fmt.Appendf(nil, `{"text":"%s"}`, strings.Repeat("Ada ", 300))}},
		{"too_many_entity_types", kafka.Message{Value: []byte(`{"text":"Ada","entity_types":["a","b","c","d"]}`)}},
		{"invalid_entity_types", kafka.Message{Value: []byte(`{"text":"Ada","entity_types":[]}`)}},
		{"invalid_snappy", kafka.Message{Value: []byte("\x10not snappy at all"), Headers: snappyHeader}},
	}
	var msgs []kafka.Message
	for i, b := range bad {
		msgs = append(msgs, good(i))
		b.msg.Headers = append(b.msg.Headers, kafka.Header{Key: "trace", Value: []byte(b.reason)})
		msgs = append(msgs, b.msg)
	}
	// A good document compressed with snappy, at the end.
	compressed := snappy.Encode(nil, good(len(bad)).Value)
	msgs = append(msgs, kafka.Message{Key: []byte("doc-8"), Value: compressed, Headers: snappyHeader})
	produceRaw(t, brokers, msgs...)
	runMember(t, cfg, &instantRecognizer{}, "member")
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 1, 30*time.Second)
	checkAllIDs(t, annotationIDs(t, brokers), len(bad)+1)
	dlq := readTopic(t, brokers, dlqTopic, 3)
	if len(dlq) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(bad))
	}
	for _, r := range dlq {
		reason := r.Headers["trace"] // the original header, kept
		var want []byte
		for _, b := range bad {
			if b.reason == reason {
				want = b.msg.Value
			}
		}
		if r.Headers["nerstream-error"] != reason {
			t.Errorf("dead letter %q: nerstream-error %q, want %q", r.Value, r.Headers["nerstream-error"], reason)
		}
		if !bytes.Equal(r.Value, want) {
			t.Errorf("dead letter for %s: value %q, want the original %q", reason, r.Value, want)
		}
		if r.Headers["nerstream-source-topic"] != inTopic || r.Headers["nerstream-source-partition"] != "0" || r.Headers["nerstream-source-offset"] == "" {
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
	c := startBroker(t, 3)
	brokers := c.ListenAddrs()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "doc-%d\t{\"id\":\"doc-%d\",\"text\":\"Ada wrote note %d.\"}\n", i, i, i)
	}
	produce := exec.Command(kcat, "-b", brokers[0], "-t", inTopic, "-P", "-K", "\t", "-z", "snappy")
	produce.Stdin = strings.NewReader(in.String())
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	cfg := streamConfig(brokers)
	cfg.Output.Compression = "snappy"
	runMember(t, cfg, &instantRecognizer{}, "member")
	waitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 3, 30*time.Second)
	consume := exec.Command(kcat, "-b", brokers[0], "-t", outTopic, "-C", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
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
	checkAllIDs(t, ids, n)
}
