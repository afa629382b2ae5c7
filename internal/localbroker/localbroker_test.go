package localbroker

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestStart: the broker listens where it says, holds its topics with
// their partitions, creates others on first use, and takes a record and
// gives it back, over TCP to a kafka-go client.
func TestStart(t *testing.T) {
	b, err := Start(Options{Listen: "127.0.0.1:0", Topics: []string{"docs", "entities"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr %q, want 127.0.0.1 and the port picked", b.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: "later", AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("hello")}); err != nil {
		t.Fatalf("writing to a topic made on first use: %v", err)
	}
	meta, err := (&kafka.Client{Addr: kafka.TCP(b.Addr())}).Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tp := range meta.Topics {
		got[tp.Name] = len(tp.Partitions)
	}
	if got["docs"] != 2 || got["entities"] != 2 || got["later"] != 2 {
		t.Errorf("topics and partitions %v, want docs, entities and later with 2 each", got)
	}
	if len(meta.Brokers) != 1 || net.JoinHostPort(meta.Brokers[0].Host, strconv.Itoa(meta.Brokers[0].Port)) != b.Addr() {
		t.Errorf("advertised brokers %+v, want %s", meta.Brokers, b.Addr())
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: "later", Partition: partitionOf(t, ctx, b.Addr(), "later"), MaxWait: 50 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil || string(m.Value) != "hello" {
		t.Errorf("read back %q, %v", m.Value, err)
	}
	b.Close()
	b.Close() // twice is safe
	if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the broker still listens after Close")
	}
}

// partitionOf is the one partition of topic that holds a record.
func partitionOf(t *testing.T, ctx context.Context, addr, topic string) int {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	for _, p := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		pc.Close()
		if err == nil && last > 0 {
			return p.ID
		}
	}
	t.Fatalf("no partition of %s holds a record", topic)
	return 0
}

// TestStartRefuses: options that cannot work are ErrOptions, in one line,
// each control character of a hostile name quoted; a taken address is
// ErrAddrInUse.
func TestStartRefuses(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		says string
	}{
		{"no port", Options{Listen: "127.0.0.1"}, "want host:port"},
		{"every interface", Options{Listen: ":9092"}, "give one they can reach"},
		{"unspecified address", Options{Listen: "0.0.0.0:9092"}, "give one they can reach"},
		{"unspecified IPv6", Options{Listen: "[::]:9092"}, "give one they can reach"},
		{"port out of range", Options{Listen: "127.0.0.1:65536"}, "from 0 to 65535"},
		{"port not a number", Options{Listen: "127.0.0.1:kafka"}, "from 0 to 65535"},
		{"no partitions", Options{Partitions: -1}, "want 1 to 1024"},
		{"too many partitions", Options{Partitions: MaxPartitions + 1}, "want 1 to 1024"},
		{"a space in a topic", Options{Topics: []string{"my docs"}}, `topic name "my docs"`},
		{"a slash in a topic", Options{Topics: []string{"a/b"}}, `topic name "a/b"`},
		{"dot dot", Options{Topics: []string{".."}}, `topic name ".."`},
		{"an empty topic", Options{Topics: []string{""}}, `topic name ""`},
		{"a long topic", Options{Topics: []string{strings.Repeat("t", 250)}}, "1 to 249"},
		{"escape codes", Options{Topics: []string{"x\n\x1b[31mred"}}, `"x\n\x1b[31mred"`},
		{"too many topics", Options{Topics: make([]string, MaxTopics+1)}, "at most 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Start(c.o)
			if err == nil {
				b.Close()
				t.Fatalf("Start(%+v) succeeded", c.o)
			}
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), c.says) || strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Errorf("Start: %q, want an ErrOptions in one line that says %q", err, c.says)
			}
		})
	}

	first, err := Start(Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if b, err := Start(Options{Listen: first.Addr()}); !errors.Is(err, ErrAddrInUse) {
		if b != nil {
			b.Close()
		}
		t.Errorf("a second broker on %s: %v, want ErrAddrInUse", first.Addr(), err)
	}
}
