package llama

import (
	"context"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
)

// TestResidentPrefixEngine is the equivalence proof against real
// llama.cpp: with the resident prefix, answers are token for token those
// without it, and scores equal to 1e-6, with roomy and tight caches, and
// after a request cancelled mid-flight. Scores are not equal bit for bit:
// the preamble's keys and values come from another batch, and any change
// of a batch's make-up moves float rounding (about 1e-7 here), as it does
// between batched and one-at-a-time decoding.
func TestResidentPrefixEngine(t *testing.T) {
	tiny, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	models := []struct {
		name string
		path func(*testing.T) string
	}{
		{"synthetic vocabulary", func(*testing.T) string { return tiny }},
		{"LLaMA vocabulary", func(t *testing.T) string { return gguftest.LLaMAVocabTiny(t, gguf.TypeF32) }},
	}
	configs := []struct {
		name string
		o    Options
	}{
		{"roomy", Options{Sequences: 16, Cells: 4096, BatchTokens: 256}},
		{"tight", Options{Sequences: 6, Cells: 512, BatchTokens: 32}},
	}
	for _, m := range models {
		path := m.path(t)
		for _, c := range configs {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				load := func(noResident bool) *Engine {
					o := c.o
					o.Threads, o.Device, o.ExactCache, o.NoResidentPrefix = 1, "CPU", true, noResident
					e, err := Load(path, o)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { e.Close() })
					return e
				}
				off, on := load(true), load(false)
				// Two first documents that begin alike teach the prefix
				// more than the preamble; the next ones cut it back.
				tmpl, _ := model.NewTemplate(model.PromptOptions{})
				var groups []model.PromptGroup
				for _, text := range []string{"Zoë Ōkubo moved to Zürich in 2020.", "Zoë Ōkubo moved to Zürich in 2021."} {
					groups = append(groups, model.PromptGroup{Prompts: []model.Prompt{tmpl.Prompt(text, "person"), tmpl.Prompt(text, "location")}})
				}
				groups = append(groups, testGroups(24)...)
				opts := model.GenerateOptions{MaxNewTokens: 12}
				want, err := off.Generate(context.Background(), groups, opts)
				if err != nil {
					t.Fatal(err)
				}
				check := func(when string, got [][]model.Completion) {
					t.Helper()
					worst := 0.0
					for g := range groups {
						for p := range groups[g].Prompts {
							a, b := got[g][p], want[g][p]
							if a.Err != nil || a.Text != b.Text || a.GeneratedTokens != b.GeneratedTokens || a.PromptTokens != b.PromptTokens {
								t.Errorf("%s: group %d prompt %d:\n on  %q (%d tokens, %v)\n off %q (%d tokens)", when, g, p, a.Text, a.GeneratedTokens, a.Err, b.Text, b.GeneratedTokens)
								continue
							}
							if err := checkLogProbs(a.Tokens, b.Tokens); err != nil {
								t.Errorf("%s: group %d prompt %d: %v", when, g, p, err)
								continue
							}
							for i := range a.Tokens {
								worst = max(worst, math.Abs(a.Tokens[i].LogProb-b.Tokens[i].LogProb))
							}
						}
					}
					t.Logf("%s: the largest score difference is %.1e", when, worst)
				}
				got, err := on.Generate(context.Background(), groups, opts)
				if err != nil {
					t.Fatal(err)
				}
				check("first run", got)
				stOn, stOff := on.Stats(), off.Stats()
				if stOn.ResidentTokens == 0 || stOff.ResidentTokens != 0 {
					t.Fatalf("resident tokens: on %d, off %d", stOn.ResidentTokens, stOff.ResidentTokens)
				}
				if stOn.DecodeTokens >= stOff.DecodeTokens {
					t.Errorf("decoded tokens: on %d, off %d", stOn.DecodeTokens, stOff.DecodeTokens)
				}
				t.Logf("decoded tokens: on %d, off %d; decode calls: on %d, off %d; resident tokens %d",
					stOn.DecodeTokens, stOff.DecodeTokens, stOn.DecodeCalls, stOff.DecodeCalls, stOn.ResidentTokens)
				// The scheduler is idle: Generate returned.
				a, err := on.Tokenize(groups[0].Prompts[0])
				if err != nil {
					t.Fatal(err)
				}
				b, err := on.Tokenize(groups[len(groups)-1].Prompts[0])
				if err != nil {
					t.Fatal(err)
				}
				if n, shared := len(on.sched.res.tokens), commonPrefix(a, b); n == 0 || n > shared {
					t.Errorf("a resident prefix of %d tokens, want 1..%d, what the first and last documents share", n, shared)
				}

				// Cancel a request once it is being decoded, then ask again.
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := on.Generate(ctx, testGroups(40), model.GenerateOptions{MaxNewTokens: 64})
					done <- err
				}()
				for calls := on.Stats().DecodeCalls; on.Stats().DecodeCalls < calls+3; {
					select {
					case err := <-done:
						t.Fatalf("the request ended (%v) before it could be cancelled", err)
					default:
						runtime.Gosched()
					}
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled: %v", err)
				}
				got, err = on.Generate(context.Background(), groups, opts)
				if err != nil {
					t.Fatal(err)
				}
				check("after a cancel", got)
				if on.Stats().ResidentTokens <= stOn.ResidentTokens {
					t.Error("no group attached to the resident prefix after the cancel")
				}
			})
		}
	}
}

// TestResidentPrefixToggle: SetResidentPrefix turns it off and on between
// requests on one engine, answers unchanged.
func TestResidentPrefixToggle(t *testing.T) {
	e := loadTiny(t, Options{Sequences: 8, Cells: 1024, BatchTokens: 64, ExactCache: true})
	groups := testGroups(8)
	opts := model.GenerateOptions{MaxNewTokens: 8}
	var first [][]model.Completion
	for i, on := range []bool{true, false, true} {
		e.SetResidentPrefix(on)
		before := e.Stats().ResidentTokens
		got, err := e.Generate(context.Background(), groups, opts)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
		}
		for g := range got {
			for p, c := range got[g] {
				if c.Text != first[g][p].Text || c.Err != nil {
					t.Errorf("round %d (on=%v) group %d prompt %d: %q (%v), first round %q", i, on, g, p, c.Text, c.Err, first[g][p].Text)
				} else if err := checkLogProbs(c.Tokens, first[g][p].Tokens); err != nil {
					t.Errorf("round %d (on=%v) group %d prompt %d: %v", i, on, g, p, err)
				}
			}
		}
		if attached := e.Stats().ResidentTokens - before; (attached > 0) != on {
			t.Errorf("round %d (on=%v): %d resident tokens attached", i, on, attached)
		}
	}
}
