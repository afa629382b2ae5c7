package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/gputest"
	"github.com/nerstream/nerstream/model/gguf"
)

// TestDevicesCommand: nerstream devices lists the CPU, and the Vulkan
// device of the module in --backends-dir; a folder that is not there is
// bad usage.
func TestDevicesCommand(t *testing.T) {
	code, out, errs := runCLI(t, "", "devices", "--json")
	if code != 0 || !strings.Contains(out, `"name": "CPU"`) {
		t.Fatalf("devices: exit %d, %s %s", code, out, errs)
	}
	code, _, errs = runCLI(t, "", "devices", "--backends-dir", filepath.Join(t.TempDir(), "none"))
	checkOneLineError(t, code, 2, errs, "--backends-dir")

	dir := gputest.VulkanDir(t)
	code, out, errs = runCLI(t, "", "devices", "--backends-dir", dir, "--json")
	var r struct {
		Backends []struct{ Name, Error string }
		Devices  []struct{ Name, Backend, Type string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("devices --json: exit %d, %s %s", code, out, errs)
	}
	if len(r.Backends) != 1 || r.Backends[0].Name != "Vulkan" || r.Backends[0].Error != "" {
		t.Errorf("backends %+v", r.Backends)
	}
	if len(r.Devices) != 2 || r.Devices[1].Name != "Vulkan0" || r.Devices[1].Backend != "Vulkan" || r.Devices[1].Type != "GPU" {
		t.Errorf("devices %+v", r.Devices)
	}
	code, out, _ = runCLI(t, "", "devices", "--backends-dir", dir)
	if code != 0 || !strings.Contains(out, "Vulkan0") || !strings.Contains(out, "DESCRIPTION") {
		t.Errorf("devices table:\n%s", out)
	}
}

// TestAnnotateOnVulkan: annotate on the Vulkan device gives the CPU's
// records, byte for byte, and eval's raw answers (random text from the
// tiny model, so that equal answers mean something) are equal too.
func TestAnnotateOnVulkan(t *testing.T) {
	dir := gputest.VulkanDir(t)
	tiny := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := gguf.SynthFile(tiny, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	// A mixed file, small: lavapipe takes tens of milliseconds a decode.
	input := `{"id": "a", "text": "Ada Lovelace met Charles Babbage in London."}
not JSON
{"text": "Zoë flew from Zürich to São Paulo 🇧🇷 with Łukasz.", "entity_types": ["person", "location"], "metadata": {"k": 1}}
{"id": "empty", "text": " "}
`
	data := filepath.Join(t.TempDir(), "data.json")
	os.WriteFile(data, []byte(`[{"id": "q1", "conversations": [
		{"from": "human", "value": "Text: Ada Lovelace met Charles Babbage ."}, {"from": "gpt", "value": "I've read this text."},
		{"from": "human", "value": "What describes person in the text?"}, {"from": "gpt", "value": "[\"Ada Lovelace\"]"}]}]`), 0o644)
	run := func(device string) (records, answers string) {
		t.Helper()
		common := []string{"--model", tiny, "--backends-dir", dir, "--devices", device, "--threads", "1", "--max-new-tokens", "6"}
		code, out, errs := runCLI(t, input, append([]string{"annotate"}, common...)...)
		if code != 0 {
			t.Fatalf("annotate on %s: exit %d: %s", device, code, errs)
		}
		saved := filepath.Join(t.TempDir(), "answers.jsonl")
		if code, _, errs := runCLI(t, "", append([]string{"eval", "--data", data, "--save-predictions", saved}, common...)...); code != 0 {
			t.Fatalf("eval on %s: exit %d: %s", device, code, errs)
		}
		b, _ := os.ReadFile(saved)
		return out, string(b)
	}
	cpuRecords, cpuAnswers := run("CPU")
	vkRecords, vkAnswers := run("Vulkan0")
	if cpuRecords != vkRecords {
		t.Errorf("records differ:\nCPU\n%s\nVulkan0\n%s", cpuRecords, vkRecords)
	}
	if cpuAnswers != vkAnswers || len(cpuAnswers) < 20 {
		t.Errorf("raw answers differ or are empty:\nCPU     %s\nVulkan0 %s", cpuAnswers, vkAnswers)
	}
	t.Logf("%d record lines equal; the raw answer: %s", strings.Count(cpuRecords, "\n"), strings.TrimSpace(cpuAnswers))
}
