package llama

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
)

// The environment of a child process of TestHostileFiles.
const (
	hostileCaseEnv = "NERSTREAM_HOSTILE_CASE" // the case's index in gguftest.Cases
	hostileFileEnv = "NERSTREAM_HOSTILE_FILE" // its file
	hostileOutEnv  = "NERSTREAM_HOSTILE_OUT"  // where the child writes its hostileResult
	// NERSTREAM_HOSTILE_UNGATED=1 runs the corpus past the gate, straight
	// into llama.cpp, and logs what each file does there instead of
	// failing: the evidence for each case's Crash.
	hostileUngatedEnv = "NERSTREAM_HOSTILE_UNGATED"
)

// hostileResult is what a child reports of its load.
type hostileResult struct {
	Loaded bool   // the engine loaded
	Ran    string // what the loaded engine did: tokens counted, generated
	Err    string // the error that refused the file
	Gate   bool   // the error is the gate's (gguf.ErrFormat or gguf.ErrModel)
	Vocab  bool   // the error is ErrVocab: llama.cpp loaded it, the engine refused it
}

// reportLoad writes, for the parent of a child process, what came of a
// load: e (used, then closed) or err.
func reportLoad(t *testing.T, e *Engine, err error) {
	var r hostileResult
	if err != nil {
		r.Err = err.Error()
		r.Gate = errors.Is(err, gguf.ErrFormat) || errors.Is(err, gguf.ErrModel)
		r.Vocab = errors.Is(err, ErrVocab)
	} else {
		r.Loaded = true
		r.Ran = useEngine(e)
		e.Close()
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(hostileOutEnv), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileFiles runs every file of the hostile corpus (gguftest.Cases)
// through Load, with the real llama.cpp behind it, each in a child process
// of this test binary, so that a file that kills the process fails the
// case it is rather than the whole run. A file the gate must refuse must
// be refused in Go, in one line; a file that must load must load, and then
// tokenize and generate.
func TestHostileFiles(t *testing.T) {
	if i := os.Getenv(hostileCaseEnv); i != "" {
		hostileChild(t, i)
		return
	}
	ungated := os.Getenv(hostileUngatedEnv) == "1"
	dir := t.TempDir()
	for i, c := range gguftest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("case-%d.gguf", i))
			if err := c.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, fmt.Sprintf("case-%d.json", i))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileFiles$", "-test.count=1")
			cmd.Env = append(os.Environ(), hostileCaseEnv+"="+strconv.Itoa(i), hostileFileEnv+"="+path, hostileOutEnv+"="+out)
			output, err := cmd.CombinedOutput()
			if err != nil {
				if ungated {
					t.Logf("UNGATED: %s: the process died: %v: %s", c.Name, err, why(output))
					return
				}
				reason := why(output)
				if reason == "" {
					reason = "its last lines:\n" + lastLines(output, 12)
				}
				t.Fatalf("the process died loading the file (%v): %s", err, reason)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("the child reported nothing (%v); its output:\n%s", err, lastLines(output, 12))
			}
			var r hostileResult
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			if ungated {
				if r.Loaded {
					t.Logf("UNGATED: %s: loaded, %s", c.Name, r.Ran)
				} else {
					t.Logf("UNGATED: %s: refused by llama.cpp: %s", c.Name, r.Err)
				}
				return
			}
			switch {
			case c.Refused == "" && !r.Loaded:
				t.Errorf("refused (%s); want it loaded", r.Err)
			case c.Refused == "":
				t.Logf("loaded, %s", r.Ran)
			case r.Loaded:
				t.Errorf("loaded (%s); want it refused with %q", r.Ran, c.Refused)
			case !r.Gate:
				t.Errorf("refused past the gate, by llama.cpp: %s; want the gate to refuse it with %q", r.Err, c.Refused)
			case !strings.Contains(r.Err, c.Refused) || strings.ContainsAny(r.Err, "\n\r"):
				t.Errorf("refused with %q; want one line that says %q", r.Err, c.Refused)
			default:
				t.Logf("refused: %s", r.Err)
			}
		})
	}
}

// hostileChild loads case i's file, uses the engine if it loads, and
// writes what happened; an abort in llama.cpp ends the process before it
// writes anything.
func hostileChild(t *testing.T, i string) {
	idx, err := strconv.Atoi(i)
	cases := gguftest.Cases()
	if err != nil || idx < 0 || idx >= len(cases) {
		t.Fatalf("no case %q", i)
	}
	c := cases[idx]
	opts := Options{Threads: 1, Device: "CPU", Cells: 1024, Sequences: 4, VocabOnly: c.Mode == gguf.LoadVocab}
	path := os.Getenv(hostileFileEnv)
	var e *Engine
	if os.Getenv(hostileUngatedEnv) == "1" {
		if err = opts.fill(); err == nil {
			e, err = load(path, opts)
		}
	} else {
		e, err = Load(path, opts)
	}
	reportLoad(t, e, err)
}

// useEngine tokenizes text with every printable ASCII character and some
// that are not ASCII, and, unless the engine holds a vocabulary only,
// generates an answer; it says what came of it.
func useEngine(e *Engine) string {
	text := "Zoë Ångström met 東京 at 10:45 — naïve café; "
	for c := ' '; c <= '~'; c++ {
		text += string(c)
	}
	n, err := e.TokenCount(context.Background(), text)
	if err != nil {
		return "tokenizing failed: " + err.Error()
	}
	if e.Options().VocabOnly {
		return fmt.Sprintf("%d tokens", n)
	}
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		return err.Error()
	}
	groups := []model.PromptGroup{{Prompts: []model.Prompt{tmpl.Prompt(text, "person"), tmpl.Prompt(text, "city")}}}
	out, err := e.Generate(context.Background(), groups, model.GenerateOptions{MaxNewTokens: 4})
	if err != nil {
		return fmt.Sprintf("%d tokens; generating failed: %v", n, err)
	}
	return fmt.Sprintf("%d tokens; generated %q", n, out[0][0].Text)
}

// why returns the lines of a dead child's output that say why it died: the
// failed assertion, the uncaught exception, the signal.
func why(b []byte) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, s := range []string{"GGML_ASSERT", "GGML_ABORT", "error:", "terminate called", "what():", "SIG", "fatal error"} {
			if strings.Contains(line, s) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return strings.Join(out, " | ")
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestLoadRefusesVocabWithoutEOS: a file past the gate that llama.cpp
// loads, but whose "</s>" is no special token (its token types gone, as a
// random edit of the key's name made them), is refused with ErrVocab, in
// one line that says why, and not as a failure of the engine.
func TestLoadRefusesVocabWithoutEOS(t *testing.T) {
	m, err := gguftest.Base()
	if err != nil {
		t.Fatal(err)
	}
	m.Delete(gguf.KeyTokenTypes)
	path := filepath.Join(t.TempDir(), "no-token-types.gguf")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := gguf.OpenLlama(path, gguf.LoadModel); err != nil {
		t.Fatalf("the gate refuses the file (%v): this test wants one past it", err)
	}
	for _, vocabOnly := range []bool{false, true} {
		e, err := Load(path, Options{Threads: 1, Device: "CPU", Cells: 512, VocabOnly: vocabOnly})
		if err == nil {
			e.Close()
			t.Fatalf("vocabulary only %v: loaded; want ErrVocab", vocabOnly)
		}
		if !errors.Is(err, ErrVocab) || !strings.Contains(err.Error(), `"</s>" is `) || !strings.Contains(err.Error(), gguf.KeyTokenTypes) || strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("vocabulary only %v: %v; want one ErrVocab line about </s> and %s", vocabOnly, err, gguf.KeyTokenTypes)
		}
	}
}
