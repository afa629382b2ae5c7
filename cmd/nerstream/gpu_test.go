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

// TestDevicesCommand: nerstream devices lists the CPU, and the GPU
// device of the module in --backends-dir; a folder that is not there is
// bad usage.
func TestDevicesCommand(t *testing.T) {
	code, out, errs := runCLI(t, "", "devices", "--json")
	if code != 0 || !strings.Contains(out, `"name": "CPU"`) {
		t.Fatalf("devices: exit %d, %s %s", code, out, errs)
	}
	code, _, errs = runCLI(t, "", "devices", "--backends-dir", filepath.Join(t.TempDir(), "none"))
	checkOneLineError(t, code, 2, errs, "--backends-dir")

	mod := gputest.Find(t)
	code, out, errs = runCLI(t, "", "devices", "--backends-dir", mod.Dir, "--json")
	var r struct {
		Backends []struct{ Name, Error string }
		Devices  []struct{ Name, Backend, Type string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("devices --json: exit %d, %s %s", code, out, errs)
	}
	if len(r.Backends) != 1 || r.Backends[0].Name != mod.Backend || r.Backends[0].Error != "" {
		t.Errorf("backends %+v", r.Backends)
	}
	if len(r.Devices) != 2 || r.Devices[1].Name != mod.Device || r.Devices[1].Backend != mod.Backend || r.Devices[1].Type != "GPU" {
		t.Errorf("devices %+v", r.Devices)
	}
	code, out, _ = runCLI(t, "", "devices", "--backends-dir", mod.Dir)
	if code != 0 || !strings.Contains(out, mod.Device) || !strings.Contains(out, "DESCRIPTION") {
		t.Errorf("devices table:\n%s", out)
	}
}

// TestAnnotateOnGPU: annotate on the GPU device gives the CPU's
// records, byte for byte, and eval's raw answers (random text from the
// tiny model, so that equal answers mean something) are equal too.
func TestAnnotateOnGPU(t *testing.T) {
	mod := gputest.Find(t)
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
		common := []string{"--model", tiny, "--backends-dir", mod.Dir, "--devices", device, "--threads", "1", "--max-new-tokens", "6"}
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
	gpuRecords, gpuAnswers := run(mod.Device)
	if cpuRecords != gpuRecords {
		t.Errorf("records differ:\nCPU\n%s\n%s\n%s", cpuRecords, mod.Device, gpuRecords)
	}
	if cpuAnswers != gpuAnswers || len(cpuAnswers) < 20 {
		t.Errorf("raw answers differ or are empty:\nCPU     %s\n%s %s", cpuAnswers, mod.Device, gpuAnswers)
	}
	t.Logf("%d record lines equal; the raw answer: %s", strings.Count(cpuRecords, "\n"), strings.TrimSpace(cpuAnswers))
}

// TestBenchEngineOnDevices: bench engine on the CPU and a GPU measures each
// device alone and both together, and --prompts-out writes the prompts it
// sends as the engine's token ids.
func TestBenchEngineOnDevices(t *testing.T) {
	mod := gputest.Find(t)
	tiny := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := gguf.SynthFile(tiny, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	prompts := filepath.Join(t.TempDir(), "prompts.jsonl")
	code, out, errs := runCLI(t, "", "bench", "engine", "--model", tiny, "--backends-dir", mod.Dir, "--devices", "CPU,"+mod.Device,
		"--threads", "1", "--docs", "3", "--types", "2", "--doc-tokens", "16", "--max-new-tokens", "4", "--skip-naive", "--prompts-out", prompts)
	if code != 0 {
		t.Fatalf("bench engine: exit %d: %s", code, errs)
	}
	type result struct {
		Device          string   `json:"device"`
		Docs            int      `json:"docs"`
		DocsPerS        float64  `json:"engine_docs_per_s"`
		PrefillRatio    float64  `json:"prefill_ratio"`
		DecodeCalls     int      `json:"engine_decode_calls"`
		GeneratedTokens int      `json:"generated_tokens"`
		Devices         []result `json:"devices"`
	}
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Device != "all" || r.Docs != 3 || r.DocsPerS <= 0 || r.DecodeCalls == 0 || len(r.Devices) != 2 {
		t.Fatalf("overall figures: %s", out)
	}
	for i, want := range []string{"CPU", mod.Device} {
		d := r.Devices[i]
		if d.Device != want || d.DocsPerS <= 0 || d.PrefillRatio <= 0 || d.DecodeCalls == 0 || d.GeneratedTokens == 0 {
			t.Errorf("device %d: %+v, want %s measured", i, d, want)
		}
	}
	// Greedy answers are the same on both devices, so each device alone
	// generated what both together did.
	if r.Devices[0].GeneratedTokens != r.Devices[1].GeneratedTokens || r.GeneratedTokens != r.Devices[0].GeneratedTokens {
		t.Errorf("generated tokens: CPU %d, %s %d, together %d", r.Devices[0].GeneratedTokens, mod.Device, r.Devices[1].GeneratedTokens, r.GeneratedTokens)
	}
	b, err := os.ReadFile(prompts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3*2 {
		t.Fatalf("%d prompt lines, want 6:\n%s", len(lines), b)
	}
	for i, l := range lines {
		var p struct {
			Doc          int     `json:"doc"`
			Type         string  `json:"type"`
			IDs          []int32 `json:"ids"`
			MaxNewTokens int     `json:"max_new_tokens"`
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Doc != i/2 || p.Type == "" || len(p.IDs) < 16 || p.MaxNewTokens != 4 {
			t.Errorf("prompt line %d: %s (%v)", i, l, err)
		}
	}
}
