package llama

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/gputest"
	"github.com/nerstream/nerstream/model"
)

// The GPU tests run the real Vulkan backend module (make vulkan) on Mesa's
// lavapipe, a Vulkan driver on the CPU, so that loading, device listing,
// offload and the Vulkan kernels are tested on machines without a GPU (see
// internal/gputest).

// vulkanDevice loads the Vulkan module and returns the name of its first
// device.
func vulkanDevice(t *testing.T) string {
	t.Helper()
	dir := gputest.VulkanDir(t)
	bs, err := LoadBackends(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if strings.HasSuffix(b.Path, "libggml-vulkan.so") && b.Err != nil {
			t.Fatalf("loading the Vulkan module: %v", b.Err)
		}
	}
	for _, d := range Devices() {
		if d.Backend == "Vulkan" {
			return d.Name
		}
	}
	t.Fatalf("the Vulkan module loaded but shows no device (devices: %+v); is mesa-vulkan-drivers installed?", Devices())
	return ""
}

func TestVulkanDevices(t *testing.T) {
	name := vulkanDevice(t)
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
	if vk == nil || name != "Vulkan0" || vk.Type != DeviceGPU || vk.TotalBytes == 0 || vk.FreeBytes > vk.TotalBytes || vk.Description == "" {
		t.Errorf("Vulkan device: %+v", vk)
	}
	t.Logf("%+v", Devices())
	// A second load is the first's result, not a second copy.
	again, err := LoadBackends(gputest.VulkanDir(t))
	if err != nil || len(again) == 0 || again[0].Name != "Vulkan" {
		t.Errorf("loading again: %+v, %v", again, err)
	}
	if n := len(Devices()); n != 2 {
		t.Errorf("%d devices after loading twice, want 2", n)
	}
}

// TestVulkanMatchesCPU: the tiny model, offloaded whole to the Vulkan
// device, gives greedy answers token for token equal to the CPU's, and its
// batched, prefix-shared scheduling on the device equals decoding each
// prompt alone there.
func TestVulkanMatchesCPU(t *testing.T) {
	name := vulkanDevice(t)
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
				t.Errorf("group %d prompt %d: Vulkan %q (%d tokens), CPU %q (%d)", g, p, b.Text, b.GeneratedTokens, w.Text, w.GeneratedTokens)
			}
			if a.Text != b.Text {
				t.Errorf("group %d prompt %d: on Vulkan, batched %q, alone %q", g, p, b.Text, a.Text)
			}
		}
	}
	if st := gpu.Stats(); st.DecodeCalls == 0 || st.SharedTokens == 0 {
		t.Errorf("the Vulkan engine decoded nothing, or shared nothing: %+v", st)
	}
	t.Logf("%d prompts equal on CPU and %s, such as %q and %q", n, name, want[0][0].Text, want[len(want)-1][0].Text)
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
