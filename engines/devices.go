package engines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/llama"
)

// DefaultBackendsDir is where GPU backend modules are looked for when
// model.backends_dir is not set, and where make vulkan and make cuda put
// them: $NERSTREAM_HOME/backends, else $XDG_DATA_HOME/nerstream/backends,
// else ~/.local/share/nerstream/backends.
func DefaultBackendsDir() string {
	if home := os.Getenv("NERSTREAM_HOME"); home != "" {
		return filepath.Join(home, "backends")
	}
	if data := os.Getenv("XDG_DATA_HOME"); data != "" {
		return filepath.Join(data, "nerstream", "backends")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "nerstream", "backends")
	}
	return ""
}

// LoadBackends loads the GPU backend modules of dir, or of
// [DefaultBackendsDir] when dir is "" (a default folder that does not
// exist is no error: there is then no GPU backend). A module that fails to
// load is one line on log (at warn) and in its Backend's Err; the CPU
// still works.
func LoadBackends(dir string, log *slog.Logger) ([]llama.Backend, error) {
	explicit := dir != ""
	if !explicit {
		dir = DefaultBackendsDir()
		if _, err := os.Stat(dir); dir == "" || err != nil {
			return nil, nil
		}
	}
	bs, err := llama.LoadBackends(dir)
	if errors.Is(err, llama.ErrNoBackends) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		if b.Err != nil && log != nil {
			log.Warn("backends: a module did not load; the others and the CPU still work", "err", b.Err)
		}
	}
	return bs, nil
}

// ResolveDevices turns the names of model.devices into devices of
// [llama.Devices]: "auto" is every GPU (else the CPU), and a name must be a
// device's. The backends are loaded first.
func ResolveDevices(names []string) ([]llama.Device, error) {
	all := llama.Devices()
	if len(names) == 0 || (len(names) == 1 && names[0] == config.DevicesAuto) {
		var gpus []llama.Device
		for _, d := range all {
			if d.Type == llama.DeviceGPU || d.Type == llama.DeviceIGPU {
				gpus = append(gpus, d)
			}
		}
		if len(gpus) > 0 {
			return gpus, nil
		}
		names = []string{"CPU"}
	}
	var out []llama.Device
	for _, n := range names {
		i := slices.IndexFunc(all, func(d llama.Device) bool { return d.Name == n })
		if i < 0 {
			known := make([]string, len(all))
			for k, d := range all {
				known[k] = d.Name
			}
			return nil, fmt.Errorf("%w: unknown device %q (there are: %s; GPU backends load from model.backends_dir)", ErrSpec, n, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// ErrNoRoom is a device whose free memory cannot hold the model.
var ErrNoRoom = errors.New("not enough device memory")

// checkRoom refuses to load the model of path on a GPU device whose free
// memory cannot hold its weights, its KV cache of cells and a margin for
// the compute buffers, rather than let llama.cpp fail or abort.
func checkRoom(path string, d llama.Device, cells int) error {
	if d.Type == llama.DeviceCPU || d.TotalBytes == 0 {
		return nil
	}
	f, err := gguf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	need := estimateBytes(gguf.Describe(f), cells)
	if need > d.FreeBytes {
		return fmt.Errorf("%w: the model needs %s, %s has %s free", ErrNoRoom, gib(need), d.Name, gib(d.FreeBytes))
	}
	return nil
}

// estimateBytes is what a model takes on a device: its tensors, an F16 KV
// cache of cells (keys and values of every layer, for the key-value
// heads), and a tenth more and 256 MiB for the compute buffers.
func estimateBytes(info gguf.Info, cells int) uint64 {
	kvWidth := uint64(info.Embedding)
	if info.Heads > 0 && info.HeadsKV > 0 {
		kvWidth = kvWidth * uint64(info.HeadsKV) / uint64(info.Heads)
	}
	kv := uint64(cells) * uint64(info.Layers) * 2 * kvWidth * 2
	base := info.TensorBytes + kv
	return base + base/10 + 256<<20
}

func gib(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// Worker is the in-process engine of one device.
type Worker struct {
	Device string
	Engine *llama.Engine
}

// poolEngine is what the pool needs of a worker's engine: *llama.Engine,
// or a test double.
type poolEngine interface {
	model.Engine
	QueueDepth() int64
	Tokenize(model.Prompt) ([]int32, error)
	Close() error
}

// pool is a model.Engine over the workers of several devices: each call
// goes to the worker with the fewest prompts queued, and a worker whose
// call fails as a whole is passed over (for failCooldown) while the call
// is tried on the others.
type pool struct {
	workers []*poolWorker
	log     *slog.Logger
	next    atomic.Uint64 // breaks ties in turn
}

type poolWorker struct {
	device    string
	eng       poolEngine
	mu        sync.Mutex
	failedAt  time.Time
	lastError error
}

// failCooldown is how long a worker that failed a call is tried last.
const failCooldown = 30 * time.Second

func (w *poolWorker) failing(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.failedAt.IsZero() && now.Sub(w.failedAt) < failCooldown
}

func (w *poolWorker) fail(err error) {
	w.mu.Lock()
	w.failedAt, w.lastError = time.Now(), err
	w.mu.Unlock()
}

func (w *poolWorker) recover() {
	w.mu.Lock()
	w.failedAt = time.Time{}
	w.mu.Unlock()
}

// order is the workers to try: those not failing by queue depth, then the
// failing ones.
func (p *pool) order() []*poolWorker {
	now := time.Now()
	ws := slices.Clone(p.workers)
	start := int(p.next.Add(1) % uint64(len(ws)))
	ws = append(ws[start:], ws[:start]...)
	slices.SortStableFunc(ws, func(a, b *poolWorker) int {
		if fa, fb := a.failing(now), b.failing(now); fa != fb {
			if fa {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.eng.QueueDepth(), b.eng.QueueDepth())
	})
	return ws
}

// Generate implements model.Engine.
func (p *pool) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	var errs []error
	for _, w := range p.order() {
		out, err := w.eng.Generate(ctx, groups, opts)
		if err == nil {
			w.recover()
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		w.fail(err)
		if p.log != nil {
			p.log.Warn("engine: a device failed; trying another", "device", w.device, "err", err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", w.device, err))
	}
	return nil, fmt.Errorf("engines: every device failed: %w", errors.Join(errs...))
}

// TokenCount implements model.Engine: every worker has the same
// vocabulary.
func (p *pool) TokenCount(ctx context.Context, text string) (int, error) {
	var err error
	for _, w := range p.order() {
		var n int
		if n, err = w.eng.TokenCount(ctx, text); err == nil || ctx.Err() != nil {
			return n, err
		}
	}
	return 0, err
}

// ContextTokens implements model.Engine.
func (p *pool) ContextTokens() int {
	n := p.workers[0].eng.ContextTokens()
	for _, w := range p.workers[1:] {
		n = min(n, w.eng.ContextTokens())
	}
	return n
}

// QueueDepth is the prompts queued on every device.
func (p *pool) QueueDepth() int64 {
	var n int64
	for _, w := range p.workers {
		n += w.eng.QueueDepth()
	}
	return n
}

// Tokenize is the first worker's: every worker has the same vocabulary.
func (p *pool) Tokenize(pr model.Prompt) ([]int32, error) { return p.workers[0].eng.Tokenize(pr) }

func (p *pool) close() error {
	var errs []error
	for _, w := range p.workers {
		errs = append(errs, w.eng.Close())
	}
	return errors.Join(errs...)
}
