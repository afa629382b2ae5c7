package llama

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/record"
)

// tinyModel writes the synthetic tiny LLaMA model once per test binary.
var tinyModel = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "nerstream-tiny-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tiny.gguf")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := gguf.Synth(f, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF32, Seed: 1}); err != nil {
		return "", err
	}
	return path, f.Close()
})

func loadTiny(t *testing.T, opts Options) *Engine {
	t.Helper()
	path, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Threads == 0 {
		// One thread: the tiny model needs no more, and go test runs
		// packages side by side on small CI machines, where llama.cpp's
		// spinning worker threads would fight over the cores.
		opts.Threads = 1
	}
	if opts.Device == "" {
		// The CPU, whatever GPU backend another test has loaded into
		// the process.
		opts.Device = "CPU"
	}
	e, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testGroups builds n documents of different lengths, each asked about
// several entity types, as the Recognizer would.
func testGroups(n int) []model.PromptGroup {
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	types := []string{"person", "organization", "location", "programming language", "award"}
	words := strings.Fields("Ada Lovelace wrote the first program for the Analytical Engine of Charles Babbage in London while the Royal Society met")
	var groups []model.PromptGroup
	for d := range n {
		text := strings.Join(words[:3+(d*7)%(len(words)-3)], " ") + fmt.Sprintf(" (doc %d).", d)
		var g model.PromptGroup
		for k := range 1 + d%len(types) {
			g.Prompts = append(g.Prompts, tmpl.Prompt(text, types[k]))
		}
		groups = append(groups, g)
	}
	return groups
}

// TestBatchedEqualsUnbatched is the equivalence proof: batched,
// prefix-shared greedy decoding gives token for token what decoding each
// prompt alone gives.
func TestBatchedEqualsUnbatched(t *testing.T) {
	for _, grammar := range []bool{true, false} {
		t.Run(fmt.Sprintf("grammar=%v", grammar), func(t *testing.T) {
			e := loadTiny(t, Options{NoGrammar: !grammar, Sequences: 16, Cells: 4096, BatchTokens: 256, ExactCache: true})
			groups := testGroups(24)
			opts := model.GenerateOptions{MaxNewTokens: 20}
			ctx := context.Background()
			batched, err := e.Generate(ctx, groups, opts)
			if err != nil {
				t.Fatal(err)
			}
			alone, err := e.GenerateUnbatched(ctx, groups, opts)
			if err != nil {
				t.Fatal(err)
			}
			prompts, differ := 0, 0
			for g := range groups {
				for p := range groups[g].Prompts {
					prompts++
					b, a := batched[g][p], alone[g][p]
					if b.Err != nil || a.Err != nil {
						t.Fatalf("group %d prompt %d: %v / %v", g, p, b.Err, a.Err)
					}
					if b.Text != a.Text || b.GeneratedTokens != a.GeneratedTokens || b.PromptTokens != a.PromptTokens {
						differ++
						t.Errorf("group %d prompt %d:\n batched %q (%d tokens)\n alone   %q (%d tokens)", g, p, b.Text, b.GeneratedTokens, a.Text, a.GeneratedTokens)
					}
				}
			}
			st := e.Stats()
			if st.SharedTokens == 0 {
				t.Error("no prefix was shared")
			}
			t.Logf("%d prompts, %d differ; %d decode calls, %d tokens decoded, %d shared", prompts, differ, st.DecodeCalls, st.DecodeTokens, st.SharedTokens)
		})
	}
}

func TestGrammarHoldsAnswersToAList(t *testing.T) {
	e := loadTiny(t, Options{})
	out, err := e.Generate(context.Background(), testGroups(8), model.GenerateOptions{MaxNewTokens: 64})
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	for _, g := range out {
		for _, c := range g {
			s := strings.TrimSpace(c.Text)
			if !strings.HasPrefix(s, "[") {
				t.Errorf("answer %q does not start a list", c.Text)
			}
			var items []string
			if json.Unmarshal([]byte(s), &items) == nil {
				closed++
			} else if c.GeneratedTokens < 64 {
				t.Errorf("answer %q stopped after %d tokens without closing its list", c.Text, c.GeneratedTokens)
			}
		}
	}
	t.Logf("%d answers closed their list", closed)
}

func TestSmallCacheAndFewSequences(t *testing.T) {
	// A group larger than the sequences, and a cache that holds only a
	// few groups at once: the work is split and queued, and the answers
	// do not change.
	e := loadTiny(t, Options{Sequences: 3, Cells: 400, BatchTokens: 64})
	groups := testGroups(10)
	opts := model.GenerateOptions{MaxNewTokens: 12}
	got, err := e.Generate(context.Background(), groups, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.GenerateUnbatched(context.Background(), groups, opts)
	if err != nil {
		t.Fatal(err)
	}
	for g := range groups {
		for p := range groups[g].Prompts {
			if got[g][p].Text != want[g][p].Text || got[g][p].Err != nil {
				t.Errorf("group %d prompt %d: %q (%v), want %q", g, p, got[g][p].Text, got[g][p].Err, want[g][p].Text)
			}
		}
	}
}

func TestConcurrentCallers(t *testing.T) {
	e := loadTiny(t, Options{Sequences: 32})
	groups := testGroups(12)
	opts := model.GenerateOptions{MaxNewTokens: 10}
	want, err := e.Generate(context.Background(), groups, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := groups[c*2 : c*2+2]
			got, err := e.Generate(context.Background(), mine, opts)
			if err != nil {
				t.Error(err)
				return
			}
			for g := range mine {
				for p := range mine[g].Prompts {
					if got[g][p].Text != want[c*2+g][p].Text {
						t.Errorf("caller %d group %d prompt %d: %q, want %q", c, g, p, got[g][p].Text, want[c*2+g][p].Text)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestGuards(t *testing.T) {
	e := loadTiny(t, Options{})
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	long := strings.Repeat("word ", 3000)
	groups := []model.PromptGroup{
		{Prompts: []model.Prompt{tmpl.Prompt("fine", "person"), tmpl.Prompt(long, "person")}},
		{Prompts: []model.Prompt{tmpl.Prompt("bad \xff utf-8", "person")}},
	}
	out, err := e.Generate(context.Background(), groups, model.GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0].Err != nil {
		t.Errorf("the good prompt failed: %v", out[0][0].Err)
	}
	if !errors.Is(out[0][1].Err, ErrPromptTooLong) {
		t.Errorf("long prompt: %v, want ErrPromptTooLong", out[0][1].Err)
	}
	if out[1][0].Err == nil || !strings.Contains(out[1][0].Err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", out[1][0].Err)
	}
	if _, err := e.TokenCount(context.Background(), "x\xffy"); err == nil {
		t.Error("TokenCount took invalid UTF-8")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Generate(ctx, testGroups(2), model.GenerateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	e.Close()
	if _, err := e.Generate(context.Background(), testGroups(1), model.GenerateOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("closed engine: %v", err)
	}
	e.Close() // twice is fine
	if _, err := e.TokenCount(context.Background(), "after close"); !errors.Is(err, ErrClosed) {
		t.Errorf("TokenCount after Close: %v", err)
	}
}

func TestCancelInFlight(t *testing.T) {
	e := loadTiny(t, Options{NoGrammar: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Generate(ctx, testGroups(40), model.GenerateOptions{MaxNewTokens: 256})
		done <- err
	}()
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	// The engine still works afterwards.
	if _, err := e.Generate(context.Background(), testGroups(2), model.GenerateOptions{MaxNewTokens: 4}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "x.gguf")
	os.WriteFile(notGGUF, []byte("this is not a model"), 0o644)
	truncated := filepath.Join(dir, "t.gguf")
	os.WriteFile(truncated, []byte("GGUF\x03\x00\x00\x00"), 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.gguf"), dir, notGGUF, truncated} {
		if e, err := Load(p, Options{}); err == nil {
			e.Close()
			t.Errorf("Load(%s) succeeded", p)
		}
	}
	path, _ := tinyModel()
	e, err := Load(path, Options{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Generate(context.Background(), testGroups(1), model.GenerateOptions{}); err == nil {
		t.Error("a vocabulary-only engine generated")
	}
	if _, err := Load(path, Options{Sequences: 300}); err == nil {
		t.Error("300 sequences accepted")
	}
}

// TestRecognizerOnTinyModel runs the whole task on a real engine: every
// entity satisfies DESIGN.md's invariant.
func TestRecognizerOnTinyModel(t *testing.T) {
	e := loadTiny(t, Options{})
	r, err := model.NewRecognizer(e, model.RecognizerOptions{Types: []string{"person", "location"}, MaxNewTokens: 32})
	if err != nil {
		t.Fatal(err)
	}
	docs := []record.Document{
		{ID: "a", Text: "Ada Lovelace met Charles Babbage in London."},
		{ID: "b", Text: "Zoë Ōkubo moved to Zürich 🇨🇭 in 2020."},
		{ID: "c", Text: strings.Repeat("A long text about the Royal Society and its members. ", 300)},
		{ID: "d", Text: ""},
	}
	anns, err := r.Recognize(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range anns[:3] {
		if a.Err != nil {
			t.Fatalf("doc %s: %v", a.ID, a.Err)
		}
		runes := []rune(docs[i].Text)
		for _, en := range a.Entities {
			if string(runes[en.Start:en.End]) != en.Text {
				t.Errorf("doc %s: entity %+v breaks the invariant", a.ID, en)
			}
		}
	}
	if anns[2].Windows < 2 {
		t.Errorf("the long document took %d windows", anns[2].Windows)
	}
	var ie *record.InputError
	if !errors.As(anns[3].Err, &ie) {
		t.Errorf("empty doc: %v", anns[3].Err)
	}
}

// TestSubstringAnswers checks the substring-constrained mode: every string
// an answer completes is a substring of its passage, escapes decoded.
func TestSubstringAnswers(t *testing.T) {
	e := loadTiny(t, Options{SubstringAnswers: true})
	groups := testGroups(12)
	out, err := e.Generate(context.Background(), groups, model.GenerateOptions{MaxNewTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	mentions := 0
	for g, group := range groups {
		var passage string
		for _, part := range group.Prompts[0].Parts {
			if part.Kind == model.PartText {
				passage = part.Text
			}
		}
		for p := range group.Prompts {
			c := out[g][p]
			if c.Err != nil {
				t.Fatal(c.Err)
			}
			for _, m := range model.ParseLenient(c.Text) {
				mentions++
				if !strings.Contains(passage, m) {
					t.Errorf("answer %q names %q, which %q does not hold", c.Text, m, passage)
				}
			}
		}
	}
	if mentions == 0 {
		t.Error("no answer named anything: the test proves nothing")
	}
	t.Logf("%d mentions, all in their passages", mentions)
}

func TestQuoteTracker(t *testing.T) {
	cases := []struct {
		pieces []string
		ok     bool
	}{
		{[]string{` ["Ada`, ` Love`, `lace"]`}, true},
		{[]string{` ["Ada Lovelace", "Zoë"]`}, true},
		{[]string{` ["Zo\u00`, `eb"]`}, true},
		{[]string{` ["Grace`}, false},
		{[]string{` [""]`}, false},
		{[]string{` ["Ada\q"]`}, false},
		{[]string{` ["Ada\n"]`}, false},
		{[]string{` ["Zo`, "\xc3", "\xab\"]"}, true},
		{[]string{` ["Lo`, "\xdb"}, false},
		{[]string{` [" Ada"]`}, false},
	}
	for _, c := range cases {
		q := &quoteTracker{passage: "Ada Lovelace met Zoë in London."}
		ok := true
		for _, p := range c.pieces {
			if !q.accepts([]byte(p)) {
				ok = false
				break
			}
			q.feed([]byte(p))
		}
		if ok != c.ok {
			t.Errorf("%q: ok = %v, want %v", c.pieces, ok, c.ok)
		}
	}
}

// TestQueueDepth: the prompts of a Generate call count while it runs, and
// no longer once it has returned, cancelled or not.
func TestQueueDepth(t *testing.T) {
	e := loadTiny(t, Options{NoGrammar: true})
	if d := e.QueueDepth(); d != 0 {
		t.Fatalf("idle engine: depth %d", d)
	}
	groups := testGroups(40)
	prompts := 0
	for _, g := range groups {
		prompts += len(g.Prompts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.Generate(ctx, groups, model.GenerateOptions{MaxNewTokens: 256})
		done <- err
	}()
	var seen int64
	for seen == 0 {
		select {
		case err := <-done:
			t.Fatalf("Generate returned (%v) before its prompts were seen in the queue", err)
		default:
		}
		seen = e.QueueDepth()
		runtime.Gosched()
	}
	if seen > int64(prompts) {
		t.Errorf("depth %d, more than the %d prompts", seen, prompts)
	}
	cancel()
	<-done
	if d := e.QueueDepth(); d != 0 {
		t.Errorf("depth %d after Generate returned", d)
	}
}

// TestEmptyPromptNoBOS: with a vocabulary that adds no BOS, a prompt
// without parts is no tokens at all. Generate must answer it (with an
// error for that prompt) rather than hold its request for ever.
func TestEmptyPromptNoBOS(t *testing.T) {
	tiny, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(tiny)
	if err != nil {
		t.Fatal(err)
	}
	v, err := gguf.ReadVocab(f)
	if err != nil {
		t.Fatal(err)
	}
	v.AddBOS = false
	path := filepath.Join(t.TempDir(), "tiny-no-bos.gguf")
	if err := gguf.SynthFile(path, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF32, Seed: 1, Vocab: v}); err != nil {
		t.Fatal(err)
	}
	e, err := Load(path, Options{Threads: 1, Device: "CPU", Sequences: 4, Cells: 512, BatchTokens: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	groups := append(testGroups(2), model.PromptGroup{Prompts: []model.Prompt{{}}})
	out, err := e.Generate(ctx, groups, model.GenerateOptions{MaxNewTokens: 4})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if c := out[len(out)-1][0]; c.Err == nil {
		t.Errorf("an empty prompt answered %q, want an error", c.Text)
	}
	// The engine still answers.
	if _, err := e.Generate(context.Background(), testGroups(2), model.GenerateOptions{MaxNewTokens: 4}); err != nil {
		t.Fatal(err)
	}
}
