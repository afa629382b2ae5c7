package producers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nerstream/nerstream/record"
)

const testPartitions = 3

// newCluster starts an embedded single-broker cluster on loopback with the
// topics "out" and "dlq" of three partitions each, plus opts.
func newCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, "out", "dlq")}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// newTestWriter returns a Writer on brokers, closed when the test ends
// (before the cluster, as cleanups run last-in first-out).
func newTestWriter(t *testing.T, o Options) *Writer {
	t.Helper()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readPartition reads every record of one partition back with kafka-go's
// own consumer connection, from the log start to the high watermark.
func readPartition(t *testing.T, addr, topic string, partition int) []kafka.Message {
	t.Helper()
	ctx := testCtx(t, 5*time.Second)
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, partition)
	if err != nil {
		t.Fatalf("dial leader %s/%d: %v", topic, partition, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	first, last, err := conn.ReadOffsets()
	if err != nil {
		t.Fatalf("offsets %s/%d: %v", topic, partition, err)
	}
	if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
		t.Fatalf("seek %s/%d: %v", topic, partition, err)
	}
	var msgs []kafka.Message
	for next := first; next < last; {
		batch := conn.ReadBatch(1, 10<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
			next = m.Offset + 1
		}
		if err := batch.Close(); err != nil {
			t.Fatalf("fetch %s/%d: %v", topic, partition, err)
		}
	}
	return msgs
}

// readTopic reads every record of every partition of topic.
func readTopic(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	var all []kafka.Message
	for p := range testPartitions {
		all = append(all, readPartition(t, addr, topic, p)...)
	}
	return all
}

func headersEqual(got []kafka.Header, want []record.Header) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) {
			return false
		}
	}
	return true
}

func TestNewWriterOptions(t *testing.T) {
	brokers := []string{"127.0.0.1:9092"}
	tests := []struct {
		name    string
		opts    Options
		wantErr string // substring; "" means success
		check   func(t *testing.T, kw *kafka.Writer, tr *kafka.Transport)
	}{
		{
			name: "defaults",
			opts: Options{Brokers: brokers},
			check: func(t *testing.T, kw *kafka.Writer, tr *kafka.Transport) {
				if tr.ClientID != "nerstream" {
					t.Errorf("ClientID = %q", tr.ClientID)
				}
				if kw.Compression != kafka.Snappy {
					t.Errorf("Compression = %v, want snappy", kw.Compression)
				}
				if kw.BatchTimeout != 2*time.Millisecond || kw.BatchSize != 1000 || kw.BatchBytes != 1<<20 {
					t.Errorf("batching = %v/%d/%d", kw.BatchTimeout, kw.BatchSize, kw.BatchBytes)
				}
				if kw.AllowAutoTopicCreation {
					t.Error("AllowAutoTopicCreation on by default")
				}
				if kw.WriteTimeout != 10*time.Second || kw.MaxAttempts != 3 {
					t.Errorf("WriteTimeout, MaxAttempts = %v, %d", kw.WriteTimeout, kw.MaxAttempts)
				}
				if kw.RequiredAcks != kafka.RequireAll {
					t.Errorf("RequiredAcks = %v", kw.RequiredAcks)
				}
				if _, ok := kw.Balancer.(*kafka.Murmur2Balancer); !ok {
					t.Errorf("Balancer = %T", kw.Balancer)
				}
				if kw.Topic != "" {
					t.Errorf("Topic = %q, want empty", kw.Topic)
				}
				if kw.Transport != tr {
					t.Error("writer does not use the configured transport")
				}
			},
		},
		{
			name: "explicit values kept",
			opts: Options{Brokers: []string{" a:1 ", "", "b:2"}, ClientID: "me", Compression: "ZSTD",
				BatchTimeout: time.Second, BatchSize: 7, BatchBytes: 99, CreateTopics: true,
				WriteTimeout: time.Minute, MaxAttempts: 9},
			check: func(t *testing.T, kw *kafka.Writer, tr *kafka.Transport) {
				if tr.ClientID != "me" || kw.Compression != kafka.Zstd || kw.BatchTimeout != time.Second ||
					kw.BatchSize != 7 || kw.BatchBytes != 99 || !kw.AllowAutoTopicCreation ||
					kw.WriteTimeout != time.Minute || kw.MaxAttempts != 9 {
					t.Errorf("options not applied: %+v", kw)
				}
				if got := kw.Addr.String(); got != "a:1,b:2" {
					t.Errorf("Addr = %q", got)
				}
			},
		},
		{name: "none", opts: Options{Brokers: brokers, Compression: "none"},
			check: func(t *testing.T, kw *kafka.Writer, _ *kafka.Transport) {
				if kw.Compression != 0 {
					t.Errorf("Compression = %v, want none", kw.Compression)
				}
			}},
		{name: "no brokers", opts: Options{}, wantErr: "Brokers"},
		{name: "blank brokers", opts: Options{Brokers: []string{" "}}, wantErr: "Brokers"},
		{name: "unknown compression", opts: Options{Brokers: brokers, Compression: "brotli"},
			wantErr: `unknown codec "brotli" (allowed: none, snappy, gzip, lz4, zstd)`},
		{name: "negative batch size", opts: Options{Brokers: brokers, BatchSize: -1}, wantErr: "BatchSize"},
		{name: "negative batch bytes", opts: Options{Brokers: brokers, BatchBytes: -1}, wantErr: "BatchBytes"},
		{name: "negative batch timeout", opts: Options{Brokers: brokers, BatchTimeout: -1}, wantErr: "BatchTimeout"},
		{name: "negative write timeout", opts: Options{Brokers: brokers, WriteTimeout: -1}, wantErr: "WriteTimeout"},
		{name: "negative attempts", opts: Options{Brokers: brokers, MaxAttempts: -1}, wantErr: "MaxAttempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			tt.check(t, w.kw, w.transport)
		})
	}
}

// TestWriteRoundTrip writes annotations and dead letters to two topics in
// one Write through one Writer, checks that produce requests ask for
// acks=all, and reads keys, values and headers back over the wire.
func TestWriteRoundTrip(t *testing.T) {
	c, addrs := newCluster(t)
	var acks sync.Map // acks value seen on produce requests
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Observe: true, Count: -1,
		When: func(req kmsg.Request) bool {
			acks.Store(req.(*kmsg.ProduceRequest).Acks, true)
			return true
		}})
	w := newTestWriter(t, Options{Brokers: addrs})

	ann, err := AnnotationMessage("out", record.Annotation{ID: "doc-1", Model: "m.gguf", EntityTypes: []string{"person"},
		Entities: []record.Entity{{Text: "Ada", Type: "person", Start: 0, End: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		ann,
		{Topic: "out", Key: []byte("doc-2"), Value: []byte(`{"id":"doc-2"}`),
			Headers: []record.Header{{Key: "traceparent", Value: []byte("00-abc-def-01")}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}}},
		DeadLetter("dlq", record.Source{Topic: "docs", Partition: 2, Offset: 41}, []byte("k"), []byte("not json"),
			[]record.Header{{Key: "content-type", Value: []byte("text/plain")}}, "invalid JSON"),
		DeadLetter("dlq", record.Source{Topic: "docs", Partition: 0, Offset: 7}, nil, []byte{0xff, 0x00}, nil, "bad encoding"),
	}
	if err := w.Write(testCtx(t, 10*time.Second), msgs); err != nil {
		t.Fatalf("Write: %v", err)
	}

	acks.Range(func(k, _ any) bool {
		if k.(int16) != -1 {
			t.Errorf("produce request with acks=%d, want -1 (all)", k)
		}
		return true
	})
	if _, ok := acks.Load(int16(-1)); !ok {
		t.Error("no produce request with acks=-1 seen")
	}

	got := map[string][]kafka.Message{"out": readTopic(t, addrs[0], "out"), "dlq": readTopic(t, addrs[0], "dlq")}
	if len(got["out"]) != 2 || len(got["dlq"]) != 2 {
		t.Fatalf("read back %d out, %d dlq records; want 2, 2", len(got["out"]), len(got["dlq"]))
	}
	for _, want := range msgs {
		found := false
		for _, m := range got[want.Topic] {
			if bytes.Equal(m.Value, want.Value) {
				found = true
				if !bytes.Equal(m.Key, want.Key) {
					t.Errorf("%s %q: key = %q, want %q", want.Topic, want.Value, m.Key, want.Key)
				}
				if !headersEqual(m.Headers, want.Headers) {
					t.Errorf("%s %q: headers = %v, want %v", want.Topic, want.Value, m.Headers, want.Headers)
				}
			}
		}
		if !found {
			t.Errorf("%s: record %q not found", want.Topic, want.Value)
		}
	}
}

// TestWritePartitionsByKey checks that keyed records are partitioned as the
// Java client would (murmur2), so that one key always lands on one partition.
func TestWritePartitionsByKey(t *testing.T) {
	_, addrs := newCluster(t)
	w := newTestWriter(t, Options{Brokers: addrs})

	var msgs []Message
	for round := range 2 {
		for i := range 20 {
			msgs = append(msgs, Message{Topic: "out", Key: fmt.Appendf(nil, "doc-%d", i), Value: fmt.Appendf(nil, "%d/%d", i, round)})
		}
	}
	if err := w.Write(testCtx(t, 10*time.Second), msgs); err != nil {
		t.Fatalf("Write: %v", err)
	}

	balancer := &kafka.Murmur2Balancer{}
	keyPartition := map[string]int{}
	used := map[int]bool{}
	total := 0
	for p := range testPartitions {
		recs := readPartition(t, addrs[0], "out", p)
		total += len(recs)
		for _, m := range recs {
			used[p] = true
			if want := balancer.Balance(kafka.Message{Key: m.Key}, 0, 1, 2); p != want {
				t.Errorf("key %q on partition %d, murmur2 says %d", m.Key, p, want)
			}
			if prev, ok := keyPartition[string(m.Key)]; ok && prev != p {
				t.Errorf("key %q on partitions %d and %d", m.Key, prev, p)
			}
			keyPartition[string(m.Key)] = p
		}
		// Order within a partition is the order given to Write.
		for i := 1; i < len(recs); i++ {
			var ai, ar, bi, br int
			fmt.Sscanf(string(recs[i-1].Value), "%d/%d", &ai, &ar)
			fmt.Sscanf(string(recs[i].Value), "%d/%d", &bi, &br)
			if ar > br || (ar == br && ai > bi) {
				t.Errorf("partition %d: %q before %q", p, recs[i-1].Value, recs[i].Value)
			}
		}
	}
	if total != len(msgs) {
		t.Errorf("read back %d records, wrote %d", total, len(msgs))
	}
	if len(used) < 2 {
		t.Errorf("20 keys all landed on partitions %v", used)
	}
}

// TestWriteCompression checks that each codec is really used on the wire
// (the produced batch's attributes name it) and that records round-trip.
func TestWriteCompression(t *testing.T) {
	tests := []struct {
		name  string
		codec int16 // Kafka's record batch codec id
	}{
		{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}, {"", 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			t.Parallel()
			c, addrs := newCluster(t)
			var mu sync.Mutex
			var codecs []int16
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Observe: true, Count: -1,
				When: func(req kmsg.Request) bool {
					for _, tp := range req.(*kmsg.ProduceRequest).Topics {
						for _, pp := range tp.Partitions {
							var rb kmsg.RecordBatch
							if rb.ReadFrom(pp.Records) == nil {
								mu.Lock()
								codecs = append(codecs, rb.Attributes&0x07)
								mu.Unlock()
							}
						}
					}
					return true
				}})
			w := newTestWriter(t, Options{Brokers: addrs, Compression: tt.name})

			value := bytes.Repeat([]byte(`{"text":"Ada Lovelace wrote the first program."}`), 50)
			msgs := []Message{
				{Topic: "out", Key: []byte("a"), Value: value, Headers: []record.Header{{Key: "h", Value: []byte("v")}}},
				{Topic: "out", Key: []byte("a"), Value: []byte("second")},
			}
			if err := w.Write(testCtx(t, 10*time.Second), msgs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := readTopic(t, addrs[0], "out")
			if len(got) != 2 || !bytes.Equal(got[0].Value, value) || string(got[1].Value) != "second" ||
				!headersEqual(got[0].Headers, msgs[0].Headers) {
				t.Fatalf("read back %d records, not what was written", len(got))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(codecs) == 0 {
				t.Fatal("no produce request seen")
			}
			for _, cd := range codecs {
				if cd != tt.codec {
					t.Errorf("batch codec %d, want %d", cd, tt.codec)
				}
			}
		})
	}
}

// topicExists asks the cluster afresh (a new transport, so no cached
// metadata) whether it knows topic, without asking it to create it.
func topicExists(t *testing.T, addr, topic string) bool {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr}
	resp, err := cl.Metadata(testCtx(t, 5*time.Second), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for _, tp := range resp.Topics {
		if tp.Name == topic && tp.Error == nil {
			return true
		}
	}
	return false
}

// TestWriteMissingTopic checks CreateTopics against a broker that would
// create topics on request: off, a Write to an unknown topic fails fast and
// creates nothing; on, the topic is created and the record written.
func TestWriteMissingTopic(t *testing.T) {
	tests := []struct {
		name         string
		createTopics bool
	}{
		{"off", false},
		{"on", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, addrs := newCluster(t, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(testPartitions))
			w := newTestWriter(t, Options{Brokers: addrs, CreateTopics: tt.createTopics})
			start := time.Now()
			err := w.Write(testCtx(t, 5*time.Second), []Message{{Topic: "nope", Key: []byte("k"), Value: []byte("v")}})
			elapsed := time.Since(start)
			if !tt.createTopics {
				if err == nil {
					t.Fatal("Write to a missing topic succeeded")
				}
				if !errors.Is(err, kafka.UnknownTopicOrPartition) {
					t.Errorf("err = %v, want it to wrap UnknownTopicOrPartition", err)
				}
				if !strings.HasPrefix(err.Error(), "producers: ") {
					t.Errorf("err = %q, want our prefix", err)
				}
				if elapsed > 2*time.Second {
					t.Errorf("failing took %v", elapsed)
				}
				if topicExists(t, addrs[0], "nope") {
					t.Error("the topic was created")
				}
				return
			}
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if !topicExists(t, addrs[0], "nope") {
				t.Fatal("the topic was not created")
			}
			if got := readTopic(t, addrs[0], "nope"); len(got) != 1 || string(got[0].Value) != "v" {
				t.Errorf("read back %v", got)
			}
		})
	}
}

// TestWriteSurvivesNotLeader injects NOT_LEADER_FOR_PARTITION into the
// first produce requests: kafka-go retries, Write returns nil, and the
// record is in the log exactly once (the faulted requests were rejected
// before the broker appended anything).
func TestWriteSurvivesNotLeader(t *testing.T) {
	c, addrs := newCluster(t)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotLeaderForPartition, Count: 2})
	w := newTestWriter(t, Options{Brokers: addrs})

	if err := w.Write(testCtx(t, 10*time.Second), []Message{{Topic: "out", Key: []byte("k"), Value: []byte("v")}}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := fault.Hits(); n != 2 {
		t.Errorf("fault answered %d produce requests, want 2", n)
	}
	// Retries totals over calls (kafka-go's own Stats resets on each).
	for range 2 {
		if n := w.Retries(); n != 2 {
			t.Errorf("Retries() = %d, want 2", n)
		}
	}
	got := readTopic(t, addrs[0], "out")
	if len(got) != 1 || string(got[0].Key) != "k" || string(got[0].Value) != "v" {
		t.Fatalf("read back %d records: %v", len(got), got)
	}
}

// TestWriteGivesUp checks that a fault that outlasts MaxAttempts fails the
// Write with an error that wraps the Kafka error, after exactly MaxAttempts
// produce requests, with nothing written.
func TestWriteGivesUp(t *testing.T) {
	c, addrs := newCluster(t)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotLeaderForPartition, Count: -1})
	w := newTestWriter(t, Options{Brokers: addrs, MaxAttempts: 2})

	msgs := []Message{{Topic: "out", Key: []byte("k"), Value: []byte("v")}, {Topic: "out", Key: []byte("k"), Value: []byte("w")}}
	err := w.Write(testCtx(t, 10*time.Second), msgs)
	if err == nil {
		t.Fatal("Write succeeded under a permanent fault")
	}
	if !errors.Is(err, kafka.NotLeaderForPartition) {
		t.Errorf("err = %v, want it to wrap NotLeaderForPartition", err)
	}
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || werrs.Count() != len(msgs) {
		t.Errorf("err = %v, want kafka.WriteErrors with %d failures", err, len(msgs))
	}
	if strings.Count(err.Error(), "Not Leader For Partition") != 1 {
		t.Errorf("err = %q, want the cause named once", err)
	}
	if n := fault.Hits(); n != 2 {
		t.Errorf("fault answered %d produce requests, want MaxAttempts = 2", n)
	}
	fault.Remove()
	if got := readTopic(t, addrs[0], "out"); len(got) != 0 {
		t.Errorf("%d records written by a failed Write", len(got))
	}
}

// TestWriteWithoutBroker covers what needs no broker: an empty Write does
// not contact one, a Message without a topic is refused, and an unreachable
// cluster fails within the Write's context.
func TestWriteWithoutBroker(t *testing.T) {
	w := newTestWriter(t, Options{Brokers: []string{"127.0.0.1:1"}})
	ctx := testCtx(t, 500*time.Millisecond)
	if err := w.Write(ctx, nil); err != nil {
		t.Errorf("Write(nil) = %v", err)
	}
	if err := w.Write(ctx, []Message{{Key: []byte("k")}}); err == nil || !strings.Contains(err.Error(), "no topic") {
		t.Errorf("Write without topic = %v", err)
	}
	start := time.Now()
	err := w.Write(ctx, []Message{{Topic: "out", Value: []byte("v")}})
	if err == nil {
		t.Fatal("Write to an unreachable cluster succeeded")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Write took %v to fail", time.Since(start))
	}
}
