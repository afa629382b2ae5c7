package engines

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/modeltest"
)

// fakeWorker is a test double of a device's engine: a scripted engine with
// a queue depth and a switch that fails every call.
type fakeWorker struct {
	modeltest.ScriptedEngine
	queued int64
	broken atomic.Bool
	calls  atomic.Int64
}

func (f *fakeWorker) Generate(ctx context.Context, g []model.PromptGroup, o model.GenerateOptions) ([][]model.Completion, error) {
	f.calls.Add(1)
	if f.broken.Load() {
		return nil, errors.New("device lost")
	}
	return f.ScriptedEngine.Generate(ctx, g, o)
}
func (f *fakeWorker) QueueDepth() int64                      { return f.queued }
func (f *fakeWorker) Tokenize(model.Prompt) ([]int32, error) { return []int32{1}, nil }
func (f *fakeWorker) Close() error                           { return nil }

func TestPool(t *testing.T) {
	a, b := &fakeWorker{queued: 5}, &fakeWorker{queued: 1}
	p := &pool{workers: []*poolWorker{{device: "A", eng: a}, {device: "B", eng: b}}}
	ctx := context.Background()
	groups := []model.PromptGroup{{Prompts: []model.Prompt{{Parts: []model.Part{{Kind: model.PartText, Text: "t"}}}}}}
	gen := func() error {
		_, err := p.Generate(ctx, groups, model.GenerateOptions{MaxNewTokens: 4})
		return err
	}
	// The least queued worker takes the call.
	for range 3 {
		if err := gen(); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 0 || b.calls.Load() != 3 {
		t.Errorf("calls A %d, B %d: want all on B, the least queued", a.calls.Load(), b.calls.Load())
	}
	// B fails: the call goes on to A, and B is tried last from then on.
	b.broken.Store(true)
	if err := gen(); err != nil {
		t.Fatalf("one device failed, the other did not: %v", err)
	}
	if a.calls.Load() != 1 {
		t.Errorf("A took %d calls after B failed, want 1", a.calls.Load())
	}
	bCalls := b.calls.Load()
	if err := gen(); err != nil || b.calls.Load() != bCalls {
		t.Errorf("B, failing, was tried first again (%d calls), or the call failed: %v", b.calls.Load()-bCalls, err)
	}
	// Every device failing fails the call, naming each.
	a.broken.Store(true)
	err := gen()
	if err == nil || !strings.Contains(err.Error(), "A: device lost") || !strings.Contains(err.Error(), "B: device lost") {
		t.Errorf("every device failed: %v", err)
	}
	// A recovered worker takes calls again.
	a.broken.Store(false)
	if err := gen(); err != nil {
		t.Fatal(err)
	}
	if p.QueueDepth() != 6 || p.ContextTokens() != 2048 {
		t.Errorf("queue %d, context %d", p.QueueDepth(), p.ContextTokens())
	}
	// A cancelled call is not a device's failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Generate(cctx, groups, model.GenerateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestCheckRoom: a model that does not fit a device's free memory is
// refused with its figures, before llama.cpp sees it; the CPU is not
// checked.
func TestCheckRoom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.gguf")
	if err := gguf.SynthFile(path, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16}); err != nil {
		t.Fatal(err)
	}
	small := llama.Device{Name: "CUDA0", Type: llama.DeviceGPU, FreeBytes: 100 << 20, TotalBytes: 16 << 30}
	err := checkRoom(path, small, 8192)
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "GiB, CUDA0 has 0.1 GiB free") {
		t.Errorf("a device too small: %v", err)
	}
	small.FreeBytes = 8 << 30
	if err := checkRoom(path, small, 8192); err != nil {
		t.Errorf("a device large enough: %v", err)
	}
	if err := checkRoom(path, llama.Device{Name: "CPU", Type: llama.DeviceCPU, FreeBytes: 1}, 8192); err != nil {
		t.Errorf("the CPU was checked: %v", err)
	}
	// UniNER-7B's shapes at Q4_K_M-like sizes: about 4 GiB of tensors,
	// and 4 GiB of F16 KV cache for 8,192 cells.
	info := gguf.Info{Embedding: 4096, Layers: 32, Heads: 32, HeadsKV: 32, TensorBytes: 4 << 30}
	if got := float64(estimateBytes(info, 8192)) / (1 << 30); got < 8.5 || got > 9.5 {
		t.Errorf("7B estimate %.2f GiB, want about 9", got)
	}
}

func TestResolveDevices(t *testing.T) {
	d, err := ResolveDevices([]string{"auto"})
	if err != nil || len(d) == 0 {
		t.Fatalf("auto: %v %v", d, err)
	}
	if cpu, err := ResolveDevices([]string{"CPU"}); err != nil || len(cpu) != 1 || cpu[0].Type != llama.DeviceCPU {
		t.Errorf("CPU: %+v %v", cpu, err)
	}
	if _, err := ResolveDevices([]string{"CUDA9"}); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), `unknown device "CUDA9"`) {
		t.Errorf("an unknown device: %v", err)
	}
}
