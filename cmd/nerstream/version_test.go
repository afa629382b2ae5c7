package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/llama"
)

func TestVersion(t *testing.T) {
	t.Setenv("NERSTREAM_HOME", t.TempDir()) // no GPU backend module
	code, out, errs := runCLI(t, "", "version")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"nerstream ", runtime.Version(), "llama.cpp     " + llama.LlamaCppCommit, "github.com/ollama/ollama v0.24.0", "SIMD (build)", "GPU backends  none in", "devices       CPU"} {
		if !strings.Contains(out, want) {
			t.Errorf("version does not say %q:\n%s", want, out)
		}
	}
	if code, again, _ := runCLI(t, "", "--version"); code != 0 || again != out {
		t.Errorf("--version (exit %d) differs from version:\n%s", code, again)
	}
	code, js, _ := runCLI(t, "", "version", "--json")
	var b engines.Build
	if err := json.Unmarshal([]byte(js), &b); code != 0 || err != nil {
		t.Fatalf("version --json: exit %d, %v:\n%s", code, err, js)
	}
	if b.LlamaCpp != llama.LlamaCppCommit || b.GoVersion != runtime.Version() || len(b.Devices) == 0 || b.Devices[0].Name != "CPU" {
		t.Errorf("version --json: %+v", b)
	}
	// The build's SIMD is what this test binary was compiled with.
	if want := llama.DetectSIMD(); !slices.Equal(b.SIMD.Build, want.Build) || !slices.Equal(b.SIMD.Missing, want.Missing) {
		t.Errorf("SIMD %+v, want %+v", b.SIMD, want)
	}
}

func TestVersionHostile(t *testing.T) {
	for _, args := range [][]string{
		{"version", "--backends-dir", filepath.Join(t.TempDir(), "absent")},
		{"version", "extra"},
		{"version", "--nope"},
	} {
		code, out, errs := runCLI(t, "", args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, code, out, errs)
		}
	}
}

// TestPlainBuildWarns builds nerstream with no SIMD flags (a plain go
// build or go install) and runs it on this CPU: it says, in version and
// once at engine start, what it lacks and how to build it (issue 22: a
// plain build ran seven times slower, silently). This test binary, built
// by make test with the Makefile's flags as make build's binary is, stands
// for the other side: it says nothing of the kind.
func TestPlainBuildWarns(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIPPED: the SIMD check is of x86 extensions")
	}
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err != nil || !strings.Contains(string(cpu), " avx2") {
		t.Skip("SKIPPED: this CPU has no AVX2 (or does not say), so a plain build lacks nothing it has")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	build := func(name string, flags ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(goTool, "build", "-o", out, ".")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CGO_CFLAGS=") && !strings.HasPrefix(kv, "CGO_CXXFLAGS=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, flags...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build (%s): %v\n%s", name, err, b)
		}
		return out
	}
	plain := build("plain")
	// This test binary as nerstream (TestMain).
	simd := os.Args[0]

	run := func(bin string, stdin string, args ...string) (string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "NERSTREAM_HOME="+dir, "NERSTREAM_TEST_MAIN=1")
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	const doc = `{"id":"d1","text":"Ada Lovelace met Charles Babbage in London."}` + "\n"
	annotate := []string{"annotate", "--model", "synth:tiny", "--threads", "1", "--types", "person,location"}

	out, _ := run(plain, "", "version")
	if !strings.Contains(out, "warning") || !strings.Contains(out, "AVX2") || !strings.Contains(out, "make build") {
		t.Errorf("the plain build's version does not warn of its missing AVX2:\n%s", out)
	}
	_, errs := run(plain, doc, annotate...)
	if n := strings.Count(errs, "llama.cpp was compiled without SIMD"); n != 1 || !strings.Contains(errs, "AVX2") || !strings.Contains(errs, "CGO_CFLAGS") {
		t.Errorf("the plain build's engine warned %d times (want once, naming AVX2 and the flags):\n%s", n, errs)
	}

	if m := llama.DetectSIMD().Missing; len(m) > 0 {
		t.Logf("this test binary itself lacks %v (go test without the Makefile's flags): the half that wants no warning runs under make test", m)
		return
	}
	out, _ = run(simd, "", "version")
	if strings.Contains(out, "warning") {
		t.Errorf("the build with the Makefile's flags warns:\n%s", out)
	}
	if _, errs := run(simd, doc, annotate...); strings.Contains(errs, "without SIMD") {
		t.Errorf("the build with the Makefile's flags warns at engine start:\n%s", errs)
	}
}

// TestBenchThreadsUsage: bad bench threads flags are one line, exit 2,
// before any model loads or hog starts.
func TestBenchThreadsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "threads"},
		{"bench", "threads", "--model", "synth:tiny", "--counts", "0"},
		{"bench", "threads", "--model", "synth:tiny", "--counts", "1,x"},
		{"bench", "threads", "--model", "synth:tiny", "--threads", "2"},
		{"bench", "threads", "--model", "synth:tiny", "--rounds", "0"},
		{"bench", "threads", "--model", "synth:tiny", "--hogs", "-1"},
		{"bench", "threads", "--model", "openai:http://127.0.0.1:1/v1"},
		{"bench", "threads", "--model", "synth:tiny", "--docs", "0"},
		{"bench", "hog", "extra"},
	} {
		code, out, errs := runCLI(t, "", args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, code, out, errs)
		}
	}
}
