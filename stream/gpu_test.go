package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/gputest"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/llama"
)

// TestStreamOnTwoDevices: one member whose engine has two workers, the CPU
// and the GPU device (lavapipe in CI), behind one recognizer. Every document
// is annotated once, and both devices did part of the work.
func TestStreamOnTwoDevices(t *testing.T) {
	mod := gputest.Find(t)
	tiny := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := gguf.SynthFile(tiny, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := engines.Open(context.Background(), tiny, engines.Options{
		Llama: llama.Options{Threads: 1, GPULayers: -1}, BackendsDir: mod.Dir, Devices: []string{"CPU", mod.Device},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Workers) != 2 || m.Local != nil {
		t.Fatalf("workers %+v", m.Workers)
	}
	const n = 40
	c := kafkatest.StartBroker(t, 4)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, n)
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.MaxNewTokens = 4
	cfg.Batch.MaxDocs = 4 // many small batches, for both workers
	s, err := New(cfg, m.Engine, WithModelName("tiny"), WithLogger(slog.New(slog.NewTextHandler(kafkatest.LogWriter{T: t, Name: "member"}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 4, 3*time.Minute)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3) {
		var a struct{ ID string }
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		ids[a.ID]++
	}
	for i := range n {
		if id := fmt.Sprintf("doc-%d", i); ids[id] != 1 {
			t.Errorf("%s annotated %d times", id, ids[id])
		}
	}
	for _, w := range m.Workers {
		st := w.Engine.Stats()
		if st.DecodeCalls == 0 {
			t.Errorf("%s decoded nothing", w.Device)
		}
		t.Logf("%s: %d decode calls, %d tokens generated", w.Device, st.DecodeCalls, st.GeneratedTokens)
	}
}
