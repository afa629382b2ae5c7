package llama

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
)

// TestResidentEngineStress runs callers against real llama.cpp with the
// resident prefix toggled, requests cancelled, one-at-a-time requests and
// prefill probes mixed in, on a tight cache, and compares every answer
// with an engine's without the prefix: llama.cpp must refuse nothing and
// abort on nothing.
func TestResidentEngineStress(t *testing.T) {
	for _, o := range []Options{
		{Sequences: 4, Cells: 512, BatchTokens: 32},
		{Sequences: 2, Cells: 128, BatchTokens: 8},
		{Sequences: 8, Cells: 256, BatchTokens: 16},
		{Sequences: 255, Cells: 1024, BatchTokens: 64}, // the resident id is llama.cpp's last
		{Sequences: 256, Cells: 1024, BatchTokens: 64}, // no spare id: no resident prefix
	} {
		t.Run(fmt.Sprintf("%d sequences, %d cells, batch %d", o.Sequences, o.Cells, o.BatchTokens), func(t *testing.T) {
			residentEngineStress(t, o)
		})
	}
}

func residentEngineStress(t *testing.T, o Options) {
	o.Threads, o.Device, o.ExactCache = 1, "CPU", true
	r := o
	r.NoResidentPrefix = true
	ref := loadTiny(t, r)
	e := loadTiny(t, o)
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	texts := []string{"Ada Lovelace wrote the first program.", "Ada Lovelace wrote the first program.", "Ada Lovelace met Babbage in London.", "The Royal Society met.", "x", ""}
	types := []string{"person", "location", "organization"}
	opts := model.GenerateOptions{MaxNewTokens: 6}
	var mu sync.Mutex
	want := map[string]string{}
	answer := func(p model.Prompt) string {
		key := fmt.Sprint(p)
		mu.Lock()
		defer mu.Unlock()
		if a, ok := want[key]; ok {
			return a
		}
		out, err := ref.Generate(context.Background(), []model.PromptGroup{{Prompts: []model.Prompt{p}}}, opts)
		if err != nil {
			t.Error(err)
			return ""
		}
		want[key] = out[0][0].Text
		return want[key]
	}
	var wg sync.WaitGroup
	for c := range 4 {
		rng := rand.New(rand.NewPCG(uint64(c), 3))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				switch rng.IntN(10) {
				case 0:
					e.SetResidentPrefix(rng.IntN(2) == 0)
					continue
				case 1:
					if _, err := e.PrefillLimit(context.Background()); err != nil {
						t.Error(err)
					}
					continue
				}
				var groups []model.PromptGroup
				for range 1 + rng.IntN(3) {
					text := texts[rng.IntN(len(texts))]
					var g model.PromptGroup
					for k := range 1 + rng.IntN(len(types)) {
						g.Prompts = append(g.Prompts, tmpl.Prompt(text, types[k]))
					}
					if rng.IntN(8) == 0 {
						g.Prompts = append(g.Prompts, model.Prompt{}) // BOS alone
					}
					groups = append(groups, g)
				}
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(4) == 0 {
					time.AfterFunc(time.Duration(rng.IntN(20))*time.Millisecond, cancel)
				}
				gen := e.Generate
				if rng.IntN(6) == 0 {
					gen = e.GenerateUnbatched
				}
				out, err := gen(ctx, groups, opts)
				cancel()
				if errors.Is(err, context.Canceled) {
					continue
				}
				if err != nil {
					t.Error(err)
					continue
				}
				for gi, g := range groups {
					for pi, p := range g.Prompts {
						if c := out[gi][pi]; c.Err != nil || c.Text != answer(p) {
							t.Errorf("%q: %q (%v), want %q", p.Parts, c.Text, c.Err, answer(p))
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%+v", e.Stats())
}
