package bench

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/producers"
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

// TestTallyCrash counts duplicates per span between marks and lost
// records below the committed offsets, from hand-made copies.
func TestTallyCrash(t *testing.T) {
	in := func(p, off int64) inputRecord { return inputRecord{p, off} }
	out := func(p int, off int64) outputRecord { return outputRecord{p, off} }
	// Output partition 0 ends at 10 at the first kill and 20 at the
	// second; partition 1 at 5 and 8.
	marks := []map[int]int64{{0: 10, 1: 5}, {0: 20, 1: 8}}
	for _, tc := range []struct {
		name      string
		copies    map[inputRecord][]outputRecord
		committed map[int]int64
		want      crashTally
	}{
		{"one output each, all committed",
			map[inputRecord][]outputRecord{in(0, 0): {out(0, 1)}, in(0, 1): {out(1, 2)}, in(1, 0): {out(0, 12)}},
			map[int]int64{0: 2, 1: 1},
			crashTally{outputs: 3, unique: 3, committed: 3, perSpan: []int64{0, 0, 0}}},
		{"redone after each kill",
			map[inputRecord][]outputRecord{
				in(0, 0): {out(0, 1), out(0, 11)},             // first crash
				in(0, 1): {out(1, 6), out(1, 4)},              // order of reading does not matter
				in(0, 2): {out(0, 12), out(0, 25), out(1, 9)}, // written after the first kill, twice again after the second
				in(1, 0): {out(0, 3), out(0, 4)},              // before any kill
				in(1, 1): {out(0, -1), out(0, 21)},            // a dead letter, then an output after the second kill
			},
			map[int]int64{0: 3, 1: 2},
			crashTally{outputs: 11, unique: 5, committed: 5, perSpan: []int64{1, 2, 3}}},
		{"committed without an output is lost; beyond committed is not",
			map[inputRecord][]outputRecord{in(0, 0): {out(0, 1)}, in(0, 2): {out(0, 2)}, in(1, 5): {out(1, 1)}},
			map[int]int64{0: 3, 1: 2},
			crashTally{outputs: 3, unique: 3, committed: 5, lost: 3, perSpan: []int64{0, 0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tallyCrash(tc.copies, marks, tc.committed)
			if got.outputs != tc.want.outputs || got.unique != tc.want.unique || got.committed != tc.want.committed ||
				got.lost != tc.want.lost || !slices.Equal(got.perSpan, tc.want.perSpan) {
				t.Errorf("tally = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestExitStatus tells a process killed by SIGKILL from one that exited
// or was ended by another signal, on real processes.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kill    os.Signal // nil: let it exit
		script  string
		sigkill bool
		exit    string
	}{
		{"exit 0", nil, "exit 0", false, "exit status 0"},
		{"exit 3", nil, "exit 3", false, "exit status 3"},
		{"SIGTERM", syscall.SIGTERM, "exec sleep 60", false, "signal: terminated"},
		{"SIGKILL", syscall.SIGKILL, "exec sleep 60", true, "signal: killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tc.kill != nil {
				if err := cmd.Process.Signal(tc.kill); err != nil {
					t.Fatal(err)
				}
			}
			exit, sigkill := exitStatus(cmd.Wait())
			if exit != tc.exit || sigkill != tc.sigkill {
				t.Errorf("exitStatus = %q, %v, want %q, %v", exit, sigkill, tc.exit, tc.sigkill)
			}
		})
	}
}

// TestAnnotationAndDeadLetterSource reads the input record that an
// annotation or a dead letter names, and refuses records that name none.
func TestAnnotationAndDeadLetterSource(t *testing.T) {
	got, err := annotationSource([]byte(`{"id":"doc-1","source":{"topic":"` + bpInputTopic + `","partition":3,"offset":1042}}`))
	if err != nil || got != (inputRecord{3, 1042}) {
		t.Errorf("annotationSource = %v, %v, want {3 1042}", got, err)
	}
	for _, v := range []string{`{}`, `not json`, `{"source":{"topic":"other","partition":3,"offset":1}}`, `{"source":{"topic":"` + bpInputTopic + `","partition":3}}`} {
		if _, err := annotationSource([]byte(v)); err == nil {
			t.Errorf("annotationSource(%s) = nil error", v)
		}
	}
	hs := []kafka.Header{{Key: producers.HeaderSourcePartition, Value: []byte("2")}, {Key: producers.HeaderSourceOffset, Value: []byte("7")}}
	if got, err := deadLetterSource(hs); err != nil || got != (inputRecord{2, 7}) {
		t.Errorf("deadLetterSource = %v, %v, want {2 7}", got, err)
	}
	if _, err := deadLetterSource(hs[:1]); err == nil {
		t.Error("a dead letter without an offset header: nil error")
	}
	if _, err := deadLetterSource([]kafka.Header{hs[0], {Key: producers.HeaderSourceOffset, Value: []byte("x")}}); err == nil {
		t.Error("a dead letter with offset x: nil error")
	}
}
