// Package kafkatest holds the helpers of nerstream's Kafka tests: an
// embedded Kafka-protocol broker (kfake) on loopback, kafka-go clients that
// talk TCP to it as any other client would, readers of what a stream wrote,
// a watch on the group's committed offsets, and InstantRecognizer, a test
// double of the model. The tests of stream and cmd/nerstream share them.
package kafkatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

const (
	InTopic  = "docs"
	OutTopic = "entities"
	DLQTopic = "entities-dlq"
)

// StartBroker starts kfake with the input topic (partitions) and the two
// output topics (3 partitions each).
func StartBroker(t testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, InTopic),
		kfake.SeedTopics(3, OutTopic, DLQTopic),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// StreamConfig is a configuration for a test member: short group timers,
// so that rebalances take a fraction of a second.
func StreamConfig(brokers []string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.GroupID = "nerstream-test"
	cfg.Kafka.SessionTimeout = 2 * time.Second
	cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
	cfg.Kafka.RebalanceTimeout = 5 * time.Second
	cfg.Input.Topics = []string{InTopic}
	cfg.Input.FetchMaxWait = 50 * time.Millisecond
	cfg.Output.Topic = OutTopic
	cfg.Output.DeadLetterTopic = DLQTopic
	cfg.Model.Path = "test double"
	cfg.Model.Types = []string{"person"}
	cfg.Retry.InitialBackoff = 20 * time.Millisecond
	cfg.Retry.MaxBackoff = 200 * time.Millisecond
	cfg.ShutdownTimeout = 1500 * time.Millisecond
	cfg.HTTP.Address = "127.0.0.1:0" // tests run side by side
	return cfg
}

// InstantRecognizer is a test double of the model: it finds every "Ada" in
// the text as a person, at once.
type InstantRecognizer struct {
	Delay time.Duration // per call, to keep a batch in flight
	mu    sync.Mutex
	calls int
	docs  int
}

func (r *InstantRecognizer) Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error) {
	r.mu.Lock()
	r.calls++
	r.docs += len(docs)
	r.mu.Unlock()
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
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

// Seen is the documents the recognizer was given so far.
func (r *InstantRecognizer) Seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.docs
}

// LogWriter sends a member's log lines to the test log, each behind the
// member's name.
type LogWriter struct {
	T    testing.TB
	Name string
}

func (w LogWriter) Write(p []byte) (int, error) {
	w.T.Logf("[%s] %s", w.Name, strings.TrimSpace(string(p)))
	return len(p), nil
}

// ProduceDocs writes n JSON documents "doc-i" keyed by id, spread over the
// partitions by kafka-go's round robin.
func ProduceDocs(t testing.TB, brokers []string, from, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: InTopic, Balancer: &kafka.RoundRobin{}, BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
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

// ProduceRaw writes the given records to the input topic's partition 0.
func ProduceRaw(t testing.TB, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: InTopic, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// Client is a kafka-go client of the brokers.
func Client(brokers []string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
}

// EndOffsets returns each partition's log end.
func EndOffsets(t testing.TB, brokers []string, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := Client(brokers).ListOffsets(context.Background(), req)
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

// Committed returns the group's committed offsets of the input topic; -1
// for none. An error (a broker down) comes back rather than failing.
func Committed(brokers []string, group string, partitions int) (map[int]int64, error) {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := Client(brokers).OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{InTopic: ps}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[InTopic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// WaitCommittedAtEnd waits until the group's committed offsets reach the
// input topic's log end on every partition.
func WaitCommittedAtEnd(t testing.TB, brokers []string, group string, partitions int, timeout time.Duration) {
	t.Helper()
	end := EndOffsets(t, brokers, InTopic, partitions)
	deadline := time.Now().Add(timeout)
	var got map[int]int64
	for time.Now().Before(deadline) {
		var err error
		if got, err = Committed(brokers, group, partitions); err == nil && fmt.Sprint(got) == fmt.Sprint(end) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("committed offsets %v never reached the log end %v", got, end)
}

// Record is one record read back from an output topic.
type Record struct {
	Partition int
	Offset    int64
	Key       string
	Value     []byte
	Headers   map[string]string // the last value of each key
	// HeaderList is the headers as they came, repeats included.
	HeaderList []kafka.Header
}

// ReadTopic reads every record of a topic up to its current end.
func ReadTopic(t testing.TB, brokers []string, topic string, partitions int) []Record {
	t.Helper()
	end := EndOffsets(t, brokers, topic, partitions)
	var out []Record
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
			rec := Record{Partition: p, Offset: m.Offset, Key: string(m.Key), Value: m.Value, Headers: map[string]string{}, HeaderList: m.Headers}
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

// AnnotationIDs reads the output topic and counts each document id, and
// checks every record's spans against its source text ("Ada wrote note
// N.").
func AnnotationIDs(t testing.TB, brokers []string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range ReadTopic(t, brokers, OutTopic, 3) {
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
		if a.ID != r.Key || a.Source.Topic != InTopic {
			t.Fatalf("output record key %q, value %s", r.Key, r.Value)
		}
		if len(a.Entities) != 1 || a.Entities[0].Text != "Ada" || a.Entities[0].Start != 0 || a.Entities[0].End != 3 {
			t.Fatalf("output record %s: entities wrong", r.Value)
		}
		ids[a.ID]++
	}
	return ids
}

// CheckAllIDs checks that doc-0 … doc-(n-1) are all in ids, and returns
// how many records were duplicates.
func CheckAllIDs(t testing.TB, ids map[string]int, n int) (duplicates int) {
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

// WriteConfig writes cfg as YAML for a member process.
func WriteConfig(t testing.TB, cfg config.Config) string {
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

// OffsetWatch polls the group's committed offsets and records any that
// moves backwards.
//
// One goroutine makes every fetch, the polls and the snapshots alike, and
// observes each answer before it sends the next request. So the answers
// are observed in the order the broker gave them, and an offset that only
// moved forwards on the broker never looks as if it moved backwards. (Two
// fetches in flight at once, one from a poll and one from a snapshot, may
// have their answers observed in the other order: an older reading, seen
// after a newer one, looked like a backward move.)
type OffsetWatch struct {
	fetch func() (map[int]int64, error)
	snap  chan chan snapshot // a snapshot's request, answered by the poller
	stop  chan struct{}
	done  chan struct{}

	// Owned by the poller until done is closed.
	last      map[int]int64
	backwards []string
	polls     int
}

// snapshot is one fetch's answer.
type snapshot struct {
	offsets map[int]int64
	err     error
}

// WatchOffsets starts a watch on the group's committed offsets of the
// input topic's partitions; end it with Check.
func WatchOffsets(brokers []string, group string, partitions int) *OffsetWatch {
	return newOffsetWatch(func() (map[int]int64, error) { return Committed(brokers, group, partitions) })
}

// newOffsetWatch starts a watch whose readings come from fetch.
func newOffsetWatch(fetch func() (map[int]int64, error)) *OffsetWatch {
	w := &OffsetWatch{fetch: fetch, snap: make(chan chan snapshot), stop: make(chan struct{}), done: make(chan struct{}), last: map[int]int64{}}
	go w.poll()
	return w
}

// poll fetches the offsets every 10ms, and at once for each snapshot, one
// fetch at a time, until stop is closed.
func (w *OffsetWatch) poll() {
	defer close(w.done)
	for {
		var reply chan snapshot
		select {
		case <-w.stop:
			return
		case reply = <-w.snap:
		case <-time.After(10 * time.Millisecond):
		}
		got, err := w.fetch()
		if err == nil {
			w.observe(got)
		}
		if reply != nil {
			reply <- snapshot{got, err}
		}
	}
}

func (w *OffsetWatch) observe(got map[int]int64) {
	w.polls++
	for p, off := range got {
		if prev, ok := w.last[p]; ok && off < prev {
			w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d after %d", p, off, prev))
			continue
		}
		w.last[p] = off
	}
}

// Check stops the watch and fails the test if an offset moved backwards.
func (w *OffsetWatch) Check(t testing.TB) {
	t.Helper()
	backwards, polls := w.end()
	if len(backwards) > 0 {
		t.Fatalf("committed offsets moved backwards: %v", backwards)
	}
	if polls < 5 {
		t.Fatalf("only %d polls of the committed offsets", polls)
	}
}

// end stops the watch and returns the backward moves it saw and how many
// readings it took.
func (w *OffsetWatch) end() (backwards []string, polls int) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.backwards, w.polls
}

// Snapshot is the committed offsets now, read after the call and observed
// by the watch like its polls; it fails the test on an error.
func (w *OffsetWatch) Snapshot(t testing.TB) map[int]int64 {
	t.Helper()
	got, err := w.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (w *OffsetWatch) snapshot() (map[int]int64, error) {
	reply := make(chan snapshot, 1)
	select {
	case w.snap <- reply:
	case <-w.done:
		return nil, errors.New("kafkatest: the offset watch has ended")
	}
	s := <-reply
	if s.err != nil {
		return nil, fmt.Errorf("kafkatest: committed offsets: %w", s.err)
	}
	return s.offsets, nil
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Assignments returns the input partitions that each member of the group
// holds now, keyed by the member's client id; an error (a broker down, the
// group rebalancing) comes back rather than failing.
func Assignments(brokers []string, group string) (map[string][]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := Client(brokers).DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, err
	}
	if len(resp.Groups) != 1 {
		return nil, fmt.Errorf("%d groups described", len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return nil, g.Error
	}
	out := map[string][]int{}
	for _, m := range g.Members {
		for _, t := range m.MemberAssignments.Topics {
			if t.Topic == InTopic {
				out[m.ClientID] = append(out[m.ClientID], t.Partitions...)
			}
		}
	}
	return out, nil
}
