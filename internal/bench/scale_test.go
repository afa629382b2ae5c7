package bench

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestCountKeys counts the records per key of a topic range on a real
// (embedded) broker, as the rebalance phase counts duplicates: records
// before the start offsets must not count.
func TestCountKeys(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	write := func(p int, keys ...string) {
		t.Helper()
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "out", Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return p }),
			BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		defer w.Close()
		for _, k := range keys {
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(k), Value: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, "old", "old")
	write(1, "old")
	cl := &kafka.Client{Addr: kafka.TCP(addr)}
	start, err := bpEndOffsets(ctx, cl, "out", 2)
	if err != nil {
		t.Fatal(err)
	}
	write(0, "a", "b", "a")
	write(1, "a", "c")
	end, err := bpEndOffsets(ctx, cl, "out", 2)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := countKeys(ctx, addr, "out", start, end)
	if err != nil {
		t.Fatal(err)
	}
	d := duplicateStats(counts)
	if len(counts) != 3 || counts["a"] != 3 || counts["b"] != 1 || counts["c"] != 1 {
		t.Errorf("counts = %v, want a:3 b:1 c:1", counts)
	}
	if d.Outputs != 5 || d.UniqueDocs != 3 || d.Duplicates != 2 || d.MaxCopies != 3 {
		t.Errorf("stats = %+v, want 5 outputs, 3 unique, 2 duplicates, at most 3 copies", d)
	}
}
