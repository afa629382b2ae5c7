package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
)

// This file holds the helpers of the streaming tests: an embedded
// Kafka-protocol broker (kfake) on loopback, and kafka-go clients that talk
// TCP to it, as any other client would.

const (
	inTopic  = "docs"
	outTopic = "entities"
	dlqTopic = "entities-dlq"
)

// startBroker starts kfake with the input topic (partitions) and the two
// output topics (3 partitions each).
func startBroker(t *testing.T, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, inTopic),
		kfake.SeedTopics(3, outTopic, dlqTopic),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// streamConfig is a configuration for a test member: short group timers,
// so that rebalances take a fraction of a second.
func streamConfig(brokers []string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.GroupID = "nerstream-test"
	cfg.Kafka.SessionTimeout = 2 * time.Second
	cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
	cfg.Kafka.RebalanceTimeout = 5 * time.Second
	cfg.Input.Topics = []string{inTopic}
	cfg.Input.FetchMaxWait = 50 * time.Millisecond
	cfg.Output.Topic = outTopic
	cfg.Output.DeadLetterTopic = dlqTopic
	cfg.Model.Path = "test double"
	cfg.Model.EntityTypes = []string{"person"}
	cfg.Retry.InitialBackoff = 20 * time.Millisecond
	cfg.Retry.MaxBackoff = 200 * time.Millisecond
	cfg.ShutdownTimeout = 1500 * time.Millisecond
	cfg.HTTP.Address = "127.0.0.1:0" // tests run side by side
	return cfg
}

// instantRecognizer is a test double of the model: it finds every "Ada" in
// the text as a person, at once.
type instantRecognizer struct {
	delay time.Duration // per call, to keep a batch in flight
	mu    sync.Mutex
	calls int
	docs  int
}

func (r *instantRecognizer) Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
	r.mu.Lock()
	r.calls++
	r.docs += len(docs)
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	anns := make([]model.Annotation, len(docs))
	for i, d := range docs {
		anns[i] = model.Annotation{ID: d.ID, Types: []string{"person"}}
		runes := []rune(d.Text)
		for k := 0; k+3 <= len(runes); k++ {
			if string(runes[k:k+3]) == "Ada" {
				anns[i].Entities = append(anns[i].Entities, record.Entity{Text: "Ada", Type: "person", Start: k, End: k + 3})
			}
		}
	}
	return anns, nil
}

// seen is the documents the recognizer was given so far.
func (r *instantRecognizer) seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.docs
}

// runMember runs a member in the background until the returned stop is
// called (gracefully) or the test ends.
func runMember(t *testing.T, cfg config.Config, rec *instantRecognizer, name string) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testLogWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := newMember(cfg, rec, "test-double", log, observability{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.run(ctx) }()
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

// testLogWriter sends a member's log lines to the test log.
type testLogWriter struct {
	t    *testing.T
	name string
}

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("[%s] %s", w.name, strings.TrimSpace(string(p)))
	return len(p), nil
}

// produceDocs writes n JSON documents "doc-i" keyed by id, spread over the
// partitions by kafka-go's round robin.
func produceDocs(t *testing.T, brokers []string, from, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: inTopic, Balancer: &kafka.RoundRobin{}, BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	var msgs []kafka.Message
	for i := from; i < from+n; i++ {
		v, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("doc-%d", i), "text": fmt.Sprintf("Ada wrote note %d.", i)})
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "doc-%d", i), Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		k := min(len(msgs), 2000)
		if err := w.WriteMessages(ctx, msgs[:k]...); err != nil {
			t.Fatalf("producing: %v", err)
		}
		msgs = msgs[k:]
	}
}

// produceRaw writes the given records to the input topic's partition 0.
func produceRaw(t *testing.T, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: inTopic, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func client(brokers []string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
}

// endOffsets returns each partition's log end.
func endOffsets(t *testing.T, brokers []string, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := client(brokers).ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("list offsets %s/%d: %v", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out
}

// committed returns the group's committed offsets of the input topic; -1
// for none. An error (a broker down) comes back rather than failing.
func committed(brokers []string, group string, partitions int) (map[int]int64, error) {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client(brokers).OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{inTopic: ps}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[inTopic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// waitCommittedAtEnd waits until the group's committed offsets reach the
// input topic's log end on every partition.
func waitCommittedAtEnd(t *testing.T, brokers []string, group string, partitions int, timeout time.Duration) {
	t.Helper()
	end := endOffsets(t, brokers, inTopic, partitions)
	deadline := time.Now().Add(timeout)
	var got map[int]int64
	for time.Now().Before(deadline) {
		var err error
		if got, err = committed(brokers, group, partitions); err == nil && fmt.Sprint(got) == fmt.Sprint(end) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("committed offsets %v never reached the log end %v", got, end)
}

// outRecord is one record read back from an output topic.
type outRecord struct {
	Partition int
	Offset    int64
	Key       string
	Value     []byte
	Headers   map[string]string // the last value of each key
	// HeaderList is the headers as they came, repeats included.
	HeaderList []kafka.Header
}

// readTopic reads every record of a topic up to its current end.
func readTopic(t *testing.T, brokers []string, topic string, partitions int) []outRecord {
	t.Helper()
	end := endOffsets(t, brokers, topic, partitions)
	var out []outRecord
	for p := range partitions {
		if end[p] == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
			rec := outRecord{Partition: p, Offset: m.Offset, Key: string(m.Key), Value: m.Value, Headers: map[string]string{}, HeaderList: m.Headers}
			for _, h := range m.Headers {
				rec.Headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
			if m.Offset+1 >= end[p] {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// annotationIDs reads the output topic and counts each document id, and
// checks every record's spans against its source text ("Ada wrote note
// N.").
func annotationIDs(t *testing.T, brokers []string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range readTopic(t, brokers, outTopic, 3) {
		var a struct {
			ID       string `json:"id"`
			Entities []struct {
				Text       string `json:"text"`
				Start, End int
			} `json:"entities"`
			Source struct {
				Topic     string `json:"topic"`
				Partition int    `json:"partition"`
				Offset    int64  `json:"offset"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("output record %q: %v", r.Value, err)
		}
		if a.ID != r.Key || a.Source.Topic != inTopic {
			t.Fatalf("output record key %q, value %s", r.Key, r.Value)
		}
		if len(a.Entities) != 1 || a.Entities[0].Text != "Ada" || a.Entities[0].Start != 0 || a.Entities[0].End != 3 {
			t.Fatalf("output record %s: entities wrong", r.Value)
		}
		ids[a.ID]++
	}
	return ids
}

// checkAllIDs checks that doc-0 … doc-(n-1) are all in ids, and returns
// how many records were duplicates.
func checkAllIDs(t *testing.T, ids map[string]int, n int) (duplicates int) {
	t.Helper()
	var missing []string
	for i := range n {
		id := fmt.Sprintf("doc-%d", i)
		c := ids[id]
		if c == 0 {
			missing = append(missing, id)
		}
		if c > 1 {
			duplicates += c - 1
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%d of %d documents lost, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
	}
	if len(ids) != n {
		t.Fatalf("%d distinct ids in the output, want %d", len(ids), n)
	}
	return duplicates
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
	m, err := newMember(cfg, &instantRecognizer{delay: 30 * time.Millisecond}, "test-double", log, observability{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := m.run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// writeConfig writes cfg as YAML for a member process.
func writeConfig(t *testing.T, cfg config.Config) string {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nerstream.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// offsetWatch polls the group's committed offsets and records any that
// moves backwards.
type offsetWatch struct {
	mu        sync.Mutex
	last      map[int]int64
	backwards []string
	polls     int
	stop      chan struct{}
	done      chan struct{}
}

func watchOffsets(brokers []string, group string, partitions int) *offsetWatch {
	w := &offsetWatch{last: map[int]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			got, err := committed(brokers, group, partitions)
			if err != nil {
				continue
			}
			w.observe(got)
		}
	}()
	return w
}

func (w *offsetWatch) observe(got map[int]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	for p, off := range got {
		if prev, ok := w.last[p]; ok && off < prev {
			w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d after %d", p, off, prev))
		}
		if off > w.last[p] || w.last[p] == 0 {
			w.last[p] = off
		}
	}
}

// check stops the watch and fails the test if an offset moved backwards.
func (w *offsetWatch) check(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.backwards) > 0 {
		t.Fatalf("committed offsets moved backwards: %v", w.backwards)
	}
	if w.polls < 5 {
		t.Fatalf("only %d polls of the committed offsets", w.polls)
	}
}

// snapshot is the committed offsets now; it fails the test on an error.
func (w *offsetWatch) snapshot(t *testing.T, brokers []string, group string, partitions int) map[int]int64 {
	t.Helper()
	got, err := committed(brokers, group, partitions)
	if err != nil {
		t.Fatal(err)
	}
	w.observe(got)
	return got
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
