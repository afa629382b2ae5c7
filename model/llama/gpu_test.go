package llama

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/gputest"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
)

// The GPU tests run a real GPU backend module: in CI the Vulkan module
// (make vulkan) on Mesa's lavapipe, a Vulkan driver on the CPU, so that
// loading, device listing, offload and the Vulkan kernels are tested on
// machines without a GPU; in scripts/gpu-check the CUDA module on a GPU
// (see internal/gputest).

// gpuDevice loads the module under test and returns the name of its first
// device.
func gpuDevice(t *testing.T) string {
	t.Helper()
	mod := gputest.Find(t)
	bs, err := LoadBackends(mod.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if filepath.Base(b.Path) == "libggml-"+strings.ToLower(mod.Backend)+".so" && b.Err != nil {
			t.Fatalf("loading the %s module: %v", mod.Backend, b.Err)
		}
	}
	for _, d := range Devices() {
		if d.Backend == mod.Backend {
			return d.Name
		}
	}
	t.Fatalf("the %s module loaded but shows no device (devices: %+v); for Vulkan, is mesa-vulkan-drivers installed?", mod.Backend, Devices())
	return ""
}

func TestGPUDevices(t *testing.T) {
	name := gpuDevice(t)
	mod := gputest.Find(t)
	var cpu, vk *Device
	for _, d := range Devices() {
		switch {
		case d.Name == "CPU":
			cpu = &d
		case d.Name == name:
			vk = &d
		}
	}
	if cpu == nil || cpu.Type != DeviceCPU || cpu.Backend != "CPU" {
		t.Errorf("CPU device: %+v", cpu)
	}
	if vk == nil || name != mod.Device || vk.Type != DeviceGPU || vk.TotalBytes == 0 || vk.FreeBytes > vk.TotalBytes || vk.Description == "" {
		t.Errorf("%s device: %+v", mod.Backend, vk)
	}
	t.Logf("%+v", Devices())
	// A second load is the first's result, not a second copy.
	again, err := LoadBackends(mod.Dir)
	if err != nil || len(again) == 0 || again[0].Name != mod.Backend {
		t.Errorf("loading again: %+v, %v", again, err)
	}
	if n := len(Devices()); n != 2 {
		t.Errorf("%d devices after loading twice, want 2", n)
	}
}

// TestGPUMatchesCPU: the tiny model, offloaded whole to the GPU
// device, gives greedy answers token for token equal to the CPU's, and its
// batched, prefix-shared scheduling on the device equals decoding each
// prompt alone there.
func TestGPUMatchesCPU(t *testing.T) {
	name := gpuDevice(t)
	opts := Options{Sequences: 16, Cells: 4096, BatchTokens: 256, ExactCache: true, GPULayers: -1}
	cpu := loadTiny(t, opts)
	opts.Device = name
	start := time.Now()
	gpu := loadTiny(t, opts)
	t.Logf("loaded on %s in %s", name, time.Since(start))
	// Few and short: lavapipe takes tens of milliseconds a decode.
	groups := testGroups(5)
	gen := model.GenerateOptions{MaxNewTokens: 8}
	ctx := context.Background()
	want, err := cpu.Generate(ctx, groups, gen)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	got, err := gpu.Generate(ctx, groups, gen)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("batched in %s", time.Since(start))
	start = time.Now()
	alone, err := gpu.GenerateUnbatched(ctx, groups, gen)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one prompt at a time in %s", time.Since(start))
	n := 0
	for g := range groups {
		for p := range groups[g].Prompts {
			n++
			w, b, a := want[g][p], got[g][p], alone[g][p]
			if w.Err != nil || b.Err != nil || a.Err != nil {
				t.Fatalf("group %d prompt %d: %v / %v / %v", g, p, w.Err, b.Err, a.Err)
			}
			if b.Text != w.Text || b.GeneratedTokens != w.GeneratedTokens {
				t.Errorf("group %d prompt %d: %s %q (%d tokens), CPU %q (%d)", g, p, name, b.Text, b.GeneratedTokens, w.Text, w.GeneratedTokens)
			}
			if a.Text != b.Text {
				t.Errorf("group %d prompt %d: on %s, batched %q, alone %q", g, p, name, b.Text, a.Text)
			}
		}
	}
	if st := gpu.Stats(); st.DecodeCalls == 0 || st.SharedTokens == 0 {
		t.Errorf("the GPU engine decoded nothing, or shared nothing: %+v", st)
	}
	t.Logf("%d prompts equal on CPU and %s, such as %q and %q", n, name, want[0][0].Text, want[len(want)-1][0].Text)
}

// TestGPUSmallLogits: the small preset (12 layers, LLaMA's 32,000-token
// vocabulary) at Q8_0, the 7b preset's type, gives on the GPU device the
// CPU's logits within a tolerance: at every position of a UniNER prompt,
// no logit differs from the CPU's by more than smallLogitTolerance of the
// CPU's logit range there, and the arg-max is the same wherever the CPU's
// two best are further apart than that. Tokens are compared exactly only
// on tiny: with random weights many logits are near ties, and the
// kernels' different summation orders may swap them.
func TestGPUSmallLogits(t *testing.T) {
	const smallLogitTolerance = 0.03
	name := gpuDevice(t)
	path := filepath.Join(t.TempDir(), "small-q8_0.gguf")
	if err := gguf.SynthFile(path, gguf.SynthOptions{Preset: "small", Type: gguf.TypeQ8_0, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	logits := func(device string) [][]float32 {
		t.Helper()
		e, err := Load(path, Options{Threads: 2, Device: device, GPULayers: -1, NoGrammar: true, Sequences: 1, Cells: 256, BatchTokens: 128})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		tmpl, _ := model.NewTemplate(model.PromptOptions{})
		toks, err := e.Tokenize(tmpl.Prompt("Ada Lovelace met Charles Babbage in London.", "person"))
		if err != nil {
			t.Fatal(err)
		}
		// A context of its own, beside the engine's idle one.
		c, err := newContext(e.model, contextParams{cells: 256, batchTokens: len(toks), sequences: 1, threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer c.free()
		b := newBatch(len(toks))
		for i, tok := range toks {
			b.add(tok, int32(i), []int32{0}, true)
		}
		if err := c.decode(&b); err != nil {
			t.Fatal(err)
		}
		out := make([][]float32, len(toks))
		for i := range out {
			out[i] = slices.Clone(c.logits(int32(i)))
		}
		return out
	}
	cpu, gpu := logits("CPU"), logits(name)
	if len(cpu) != len(gpu) || len(cpu) < 40 {
		t.Fatalf("%d and %d positions", len(cpu), len(gpu))
	}
	worst, compared := 0.0, 0
	for pos := range cpu {
		c, g := cpu[pos], gpu[pos]
		lo, hi := slices.Min(c), slices.Max(c)
		span := float64(hi - lo)
		if span <= 0 || len(g) != len(c) {
			t.Fatalf("position %d: CPU logits span %v, %d and %d logits", pos, span, len(c), len(g))
		}
		for i := range c {
			worst = max(worst, math.Abs(float64(c[i]-g[i]))/span)
		}
		best, second := topTwo(c)
		if float64(c[best]-c[second]) > smallLogitTolerance*span {
			compared++
			if gb, _ := topTwo(g); gb != best {
				t.Errorf("position %d: arg-max %d on %s, %d on the CPU, whose two best are %.3f apart (span %.3f)", pos, gb, name, best, c[best]-c[second], span)
			}
		}
	}
	if worst > smallLogitTolerance {
		t.Errorf("a logit on %s differs from the CPU's by %.2f%% of the logit range, over the %.0f%% tolerance", name, 100*worst, 100*smallLogitTolerance)
	}
	t.Logf("%d positions × %d logits: the largest difference is %.3f%% of the range; arg-max compared at %d positions", len(cpu), len(cpu[0]), 100*worst, compared)
}

// topTwo returns the indices of the largest and second largest values.
func topTwo(v []float32) (best, second int) {
	best, second = 0, 1
	if v[1] > v[0] {
		best, second = 1, 0
	}
	for i := 2; i < len(v); i++ {
		switch {
		case v[i] > v[best]:
			best, second = i, best
		case v[i] > v[second]:
			second = i
		}
	}
	return best, second
}

func TestUnknownDevice(t *testing.T) {
	path, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(path, Options{Threads: 1, Device: "Vulkan7"})
	if err == nil || !strings.Contains(err.Error(), `unknown device "Vulkan7"`) || !strings.Contains(err.Error(), "CPU") {
		t.Fatalf("Load on an unknown device: %v", err)
	}
}
