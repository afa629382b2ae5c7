package llama

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
)

// countingEngine is a test double around the real engine: it counts the
// prompts it passes on, and holds each call until release is closed, so
// that identical documents are in flight together.
type countingEngine struct {
	*Engine
	prompts atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (e *countingEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	for _, g := range groups {
		e.prompts.Add(int64(len(g.Prompts)))
	}
	e.entered <- struct{}{}
	<-e.release
	return e.Engine.Generate(ctx, groups, opts)
}

// TestCacheWithTinyModel: through the real engine, identical documents in
// flight at once are computed once, and a later hit gives a record byte
// for byte equal to the one computed, and to one without the cache.
func TestCacheWithTinyModel(t *testing.T) {
	eng := &countingEngine{Engine: loadTiny(t, Options{}), entered: make(chan struct{}, 16), release: make(chan struct{})}
	types := []string{"person", "organization"}
	opts := model.RecognizerOptions{Types: types, MaxNewTokens: 8,
		Cache: model.CacheOptions{Entries: 100, Bytes: 1 << 20, Model: "synth:tiny"}}
	r, err := model.NewRecognizer(eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := model.NewRecognizer(eng.Engine, model.RecognizerOptions{Types: types, MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	doc := []record.Document{{ID: "log-1", Text: "card declined for Jane Doe at ACME Corp"}}
	recordOf := func(r *model.Recognizer) string {
		anns, err := r.Recognize(context.Background(), doc)
		if err != nil {
			t.Error(err)
			return ""
		}
		if anns[0].Err != nil {
			t.Error(anns[0].Err)
		}
		b, _ := json.Marshal(anns[0].Record("tiny", nil))
		return string(b)
	}
	const n = 4
	got := make([]string, n)
	var wg sync.WaitGroup
	wg.Go(func() { got[0] = recordOf(r) })
	<-eng.entered // the leader is in the engine
	for i := 1; i < n; i++ {
		wg.Go(func() { got[i] = recordOf(r) })
	}
	for r.Cache().Stats().Hits < n-1 {
		select {
		case <-eng.entered: // a second call for the same text
			close(eng.release)
			wg.Wait()
			t.Fatal("an identical document in flight called the engine again")
		default:
			runtime.Gosched()
		}
	}
	close(eng.release)
	wg.Wait()
	if p := eng.prompts.Load(); p != int64(len(types)) {
		t.Errorf("the engine was asked %d prompts, want %d (one per type)", p, len(types))
	}
	hit := recordOf(r)
	want := recordOf(plain)
	for i, g := range append(got, hit) {
		if g != want {
			t.Errorf("record %d:\n got %s\nwant %s", i, g, want)
		}
	}
	if p := eng.prompts.Load(); p != int64(len(types)) {
		t.Errorf("the hit asked the engine: %d prompts", p)
	}
}
