package model_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

// gatedEngine is a test double: a ScriptedEngine that counts the prompts
// it is asked and, while gate is set, signals entered and blocks each
// Generate call until gate is closed (or ctx ends).
type gatedEngine struct {
	modeltest.ScriptedEngine
	gate    chan struct{}
	entered chan struct{}

	mu      sync.Mutex
	prompts int
	fail    error
}

func (e *gatedEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	e.mu.Lock()
	for _, g := range groups {
		e.prompts += len(g.Prompts)
	}
	fail, gate, entered := e.fail, e.gate, e.entered
	e.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	return e.ScriptedEngine.Generate(ctx, groups, opts)
}

func (e *gatedEngine) asked() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.prompts
}

var personAnswers = modeltest.Answers(map[string]string{
	"person":       `["Jane Doe"]`,
	"organization": `["ACME Corp", "nobody"]`,
})

func cachedRecognizer(t *testing.T, e model.Engine, opts model.RecognizerOptions) *model.Recognizer {
	t.Helper()
	if !opts.Cache.Enabled() {
		opts.Cache = model.CacheOptions{Entries: 1000, Bytes: 1 << 20, Model: "sha256:test"}
	}
	return newRecognizer(t, e, opts)
}

func recordJSON(t *testing.T, a model.Annotation) string {
	t.Helper()
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	b, err := json.Marshal(a.Record("m.gguf", json.RawMessage(`{"k":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCacheHitIsIdenticalToMiss: the record of a hit is byte for byte the
// record of the miss, and of a recognizer without a cache; the engine is
// not asked again.
func TestCacheHitIsIdenticalToMiss(t *testing.T) {
	docs := []record.Document{
		{ID: "a", Text: "card declined for Jane Doe at ACME Corp", Types: []string{"person", "organization"}},
		{ID: "b", Text: "  Jane Doe, Jane Doe and ACME Corp  ", Types: []string{"organization", "person"}},
		{ID: "c", Text: strings.Repeat("Jane Doe works at ACME Corp. ", 300), Types: []string{"person", "organization"}},
	}
	// Token log-probabilities, so that records carry scores: a hit keeps
	// them.
	logProbs := func(_, _, answer string) []model.TokenLogProb {
		var toks []model.TokenLogProb
		for i := 0; i < len(answer); i += 3 {
			toks = append(toks, model.TokenLogProb{Bytes: min(3, len(answer)-i), LogProb: -0.01 * float64(i%7)})
		}
		return toks
	}
	plain := newRecognizer(t, &modeltest.ScriptedEngine{Answer: personAnswers, LogProbs: logProbs, Context: 512}, model.RecognizerOptions{MaxNewTokens: 64})
	eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers, LogProbs: logProbs, Context: 512}}
	cached := cachedRecognizer(t, eng, model.RecognizerOptions{MaxNewTokens: 64})
	ctx := context.Background()
	want, err := plain.Recognize(ctx, docs)
	if err != nil {
		t.Fatal(err)
	}
	miss, err := cached.Recognize(ctx, docs)
	if err != nil {
		t.Fatal(err)
	}
	asked := eng.asked()
	if asked == 0 {
		t.Fatal("engine never asked")
	}
	hit, err := cached.Recognize(ctx, docs)
	if err != nil {
		t.Fatal(err)
	}
	if eng.asked() != asked {
		t.Errorf("engine asked %d prompts on the second pass, want 0", eng.asked()-asked)
	}
	for i := range docs {
		w, m, h := recordJSON(t, want[i]), recordJSON(t, miss[i]), recordJSON(t, hit[i])
		if m != w || h != w {
			t.Errorf("doc %s:\n plain %s\n miss  %s\n hit   %s", docs[i].ID, w, m, h)
		}
		if len(hit[i].Entities) == 0 || hit[i].Entities[0].Score == nil {
			t.Errorf("doc %s: no entities, or no scores: %s", docs[i].ID, h)
		}
	}
	// Every prompt is counted once a pass; the engine was asked each
	// distinct one once (doc c repeats its windows).
	prompts := 0
	for _, a := range hit {
		prompts += a.Windows * len(a.Types)
	}
	st := cached.Cache().Stats()
	if st.Misses != int64(asked) || st.Hits+st.Misses != int64(2*prompts) || asked >= prompts {
		t.Errorf("stats %+v, engine asked %d of %d prompts a pass", st, asked, prompts)
	}
}

// TestCacheKeys: a change of entity types, model, definitions, prompt
// variant, token limit or text misses; the same everything hits.
func TestCacheKeys(t *testing.T) {
	base := model.RecognizerOptions{MaxNewTokens: 64, Types: []string{"person"},
		Prompt: model.PromptOptions{Variant: model.VariantDefinition, Definitions: map[string]string{"person": "a human being", "organization": "a company"}},
		Cache:  model.CacheOptions{Entries: 100, Bytes: 1 << 20, Model: "sha256:aaaa"}}
	doc := record.Document{Text: "Jane Doe at ACME Corp"}
	tests := []struct {
		name     string
		change   func(o *model.RecognizerOptions, d *record.Document)
		wantMiss bool
	}{
		{"same", func(*model.RecognizerOptions, *record.Document) {}, false},
		{"types", func(_ *model.RecognizerOptions, d *record.Document) { d.Types = []string{"person", "organization"} }, true},
		{"model", func(o *model.RecognizerOptions, _ *record.Document) { o.Cache.Model = "sha256:bbbb" }, true},
		{"definitions", func(o *model.RecognizerOptions, _ *record.Document) {
			o.Prompt.Definitions = map[string]string{"person": "a named individual", "organization": "a company"}
		}, true},
		{"variant", func(o *model.RecognizerOptions, _ *record.Document) {
			o.Prompt = model.PromptOptions{Variant: model.VariantType}
		}, true},
		{"max new tokens", func(o *model.RecognizerOptions, _ *record.Document) { o.MaxNewTokens = 65 }, true},
		{"text", func(_ *model.RecognizerOptions, d *record.Document) { d.Text += "." }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers}}
			r := newRecognizer(t, eng, base)
			cache := r.Cache()
			if _, err := r.Recognize(context.Background(), []record.Document{doc}); err != nil {
				t.Fatal(err)
			}
			before := eng.asked()
			o, d := base, doc
			tt.change(&o, &d)
			// The second recognizer shares the first's cache, as
			// recognizers of different models would share one.
			r2, err := model.NewRecognizer(model.NewCachingEngine(eng, cache, o.Cache.Model), withoutCache(o))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r2.Recognize(context.Background(), []record.Document{d}); err != nil {
				t.Fatal(err)
			}
			if missed := eng.asked() > before; missed != tt.wantMiss {
				t.Errorf("missed = %v, want %v", missed, tt.wantMiss)
			}
		})
	}
}

func withoutCache(o model.RecognizerOptions) model.RecognizerOptions {
	o.Cache = model.CacheOptions{}
	return o
}

// TestCacheSingleFlight: documents with the same text in flight at once
// call the engine once, and every one gets the answer.
func TestCacheSingleFlight(t *testing.T) {
	eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers},
		gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	r := cachedRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person"}})
	const n = 16
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	doc := record.Document{ID: "x", Text: "card declined for Jane Doe"}
	// The leader first, so that the others find its flight.
	wg.Go(func() {
		anns, err := r.Recognize(context.Background(), []record.Document{doc})
		results[0], errs[0] = annJSON(anns, err)
	})
	<-eng.entered
	for i := 1; i < n; i++ {
		wg.Go(func() {
			anns, err := r.Recognize(context.Background(), []record.Document{doc})
			results[i], errs[i] = annJSON(anns, err)
		})
	}
	waitFor(t, func() bool { return r.Cache().Stats().Hits == n-1 })
	close(eng.gate)
	wg.Wait()
	if eng.asked() != 1 {
		t.Errorf("engine asked %d prompts, want 1", eng.asked())
	}
	for i := range n {
		if errs[i] != nil || results[i] != results[0] || !strings.Contains(results[0], "Jane Doe") {
			t.Errorf("doc %d: %s, %v (leader %s)", i, results[i], errs[i], results[0])
		}
	}
}

// TestCacheFlightFailure: a failed call is not cached, and every waiter
// gets its error; a waiter whose own ctx ends leaves while the leader goes
// on; a waiter whose leader left computes the answer itself.
func TestCacheFlightFailure(t *testing.T) {
	boom := errors.New("engine down (test double)")
	t.Run("error reaches every waiter", func(t *testing.T) {
		eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers},
			gate: make(chan struct{}), entered: make(chan struct{}, 10), fail: boom}
		r := cachedRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person"}})
		doc := []record.Document{{Text: "Jane Doe"}}
		errs := make(chan error, 3)
		go func() { _, err := r.Recognize(context.Background(), doc); errs <- err }()
		<-eng.entered
		for range 2 {
			go func() { _, err := r.Recognize(context.Background(), doc); errs <- err }()
		}
		waitFor(t, func() bool { return r.Cache().Stats().Hits == 2 })
		close(eng.gate)
		for range 3 {
			if err := <-errs; !errors.Is(err, boom) {
				t.Errorf("err = %v, want %v", err, boom)
			}
		}
		eng.mu.Lock()
		eng.fail, eng.gate, eng.entered = nil, nil, nil
		eng.mu.Unlock()
		if _, err := r.Recognize(context.Background(), doc); err != nil {
			t.Fatal(err)
		}
		if eng.asked() != 2 || r.Cache().Stats().Entries != 1 {
			t.Errorf("asked %d, stats %+v: the failure was cached", eng.asked(), r.Cache().Stats())
		}
	})
	t.Run("waiter leaves, leader goes on", func(t *testing.T) {
		eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers},
			gate: make(chan struct{}), entered: make(chan struct{}, 10)}
		r := cachedRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person"}})
		doc := []record.Document{{Text: "Jane Doe"}}
		lead := make(chan error, 1)
		go func() { _, err := r.Recognize(context.Background(), doc); lead <- err }()
		<-eng.entered
		ctx, cancel := context.WithCancel(context.Background())
		waiter := make(chan error, 1)
		go func() { _, err := r.Recognize(ctx, doc); waiter <- err }()
		waitFor(t, func() bool { return r.Cache().Stats().Hits == 1 })
		cancel()
		if err := <-waiter; !errors.Is(err, context.Canceled) {
			t.Errorf("waiter err = %v", err)
		}
		close(eng.gate)
		if err := <-lead; err != nil {
			t.Errorf("leader err = %v", err)
		}
		if r.Cache().Stats().Entries != 1 {
			t.Errorf("stats %+v", r.Cache().Stats())
		}
	})
	t.Run("leader leaves, waiter computes", func(t *testing.T) {
		eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers},
			gate: make(chan struct{}), entered: make(chan struct{}, 10)}
		r := cachedRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person"}})
		doc := []record.Document{{Text: "Jane Doe"}}
		ctx, cancel := context.WithCancel(context.Background())
		lead := make(chan error, 1)
		go func() { _, err := r.Recognize(ctx, doc); lead <- err }()
		<-eng.entered
		waiter := make(chan string, 1)
		go func() {
			anns, err := r.Recognize(context.Background(), doc)
			s, err := annJSON(anns, err)
			if err != nil {
				s = err.Error()
			}
			waiter <- s
		}()
		waitFor(t, func() bool { return r.Cache().Stats().Hits == 1 })
		cancel()
		if err := <-lead; !errors.Is(err, context.Canceled) {
			t.Errorf("leader err = %v", err)
		}
		select {
		case <-eng.entered: // the waiter's own call
		case got := <-waiter:
			t.Fatalf("the waiter answered without computing: %s", got)
		}
		close(eng.gate)
		if got := <-waiter; !strings.Contains(got, "Jane Doe") {
			t.Errorf("waiter got %s", got)
		}
		if eng.asked() != 2 {
			t.Errorf("asked %d prompts, want 2", eng.asked())
		}
	})
}

// TestCacheTTL: an answer older than the TTL is asked again.
func TestCacheTTL(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := model.NewCache(model.CacheOptions{Entries: 10, Bytes: 1 << 20, TTL: time.Minute}, clock)
	if err != nil {
		t.Fatal(err)
	}
	eng := &gatedEngine{ScriptedEngine: modeltest.ScriptedEngine{Answer: personAnswers}}
	r := newRecognizer(t, model.NewCachingEngine(eng, c, "m"), model.RecognizerOptions{Types: []string{"person"}})
	steps := []struct {
		advance   time.Duration
		wantAsked int
	}{{0, 1}, {59 * time.Second, 1}, {time.Second, 2}, {30 * time.Second, 2}}
	for i, s := range steps {
		mu.Lock()
		now = now.Add(s.advance)
		mu.Unlock()
		if _, err := r.Recognize(context.Background(), []record.Document{{Text: "Jane Doe"}}); err != nil {
			t.Fatal(err)
		}
		if eng.asked() != s.wantAsked {
			t.Errorf("step %d: asked %d, want %d", i, eng.asked(), s.wantAsked)
		}
	}
}

// TestCacheMemoryBound: under a stream of unique texts the cache keeps
// within its entries and bytes, evicting the least recently used, and the
// heap it holds stays near what it counts.
func TestCacheMemoryBound(t *testing.T) {
	const bound = 256 << 10
	long := strings.Repeat("x", 400)
	answer := func(text, _ string) string { return `["` + text[:20] + `"]` + long }
	c, err := model.NewCache(model.CacheOptions{Entries: 100_000, Bytes: bound}, nil)
	if err != nil {
		t.Fatal(err)
	}
	counter := &echoEngine{answer: answer}
	eng := model.NewCachingEngine(counter, c, "m")
	r := newRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person", "organization"}})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	maxBytes := int64(0)
	for i := range 5000 {
		docs := []record.Document{{Text: fmt.Sprintf("event %08d: card declined for Jane Doe", i)}}
		if _, err := r.Recognize(context.Background(), docs); err != nil {
			t.Fatal(err)
		}
		maxBytes = max(maxBytes, c.Stats().Bytes)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := c.Stats()
	if maxBytes > bound || st.Evictions == 0 || st.Entries == 0 {
		t.Errorf("max bytes %d over %d, or nothing evicted: %+v", maxBytes, bound, st)
	}
	perEntry := int64(model.CacheEntryOverhead + 420)
	if st.Entries < int(bound/perEntry)-2 {
		t.Errorf("%d entries, want about %d: the cache evicts too eagerly", st.Entries, bound/perEntry)
	}
	// Loose: the live heap grew by at most twice the bound (the rest of
	// the test allocates too).
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2*bound {
		t.Errorf("heap grew by %d bytes, over twice the cache's bound of %d", grew, bound)
	}
	// The most recent text is still there; the first is gone.
	asked := counter.calls.Load()
	if _, err := r.Recognize(context.Background(), []record.Document{{Text: fmt.Sprintf("event %08d: card declined for Jane Doe", 4999)}}); err != nil {
		t.Fatal(err)
	}
	if counter.calls.Load() != asked {
		t.Error("the most recent text was evicted")
	}
	if _, err := r.Recognize(context.Background(), []record.Document{{Text: fmt.Sprintf("event %08d: card declined for Jane Doe", 0)}}); err != nil {
		t.Fatal(err)
	}
	if counter.calls.Load() != asked+1 {
		t.Error("the oldest text was not evicted")
	}
}

// echoEngine is a test double that answers answer(text, query) and
// counts its calls, keeping nothing else (ScriptedEngine keeps every call,
// which would blur the heap measure).
type echoEngine struct {
	modeltest.ScriptedEngine
	answer func(text, query string) string
	calls  atomic.Int64
}

func (e *echoEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	e.calls.Add(1)
	out := make([][]model.Completion, len(groups))
	for g, grp := range groups {
		for _, p := range grp.Prompts {
			var text, query string
			for _, part := range p.Parts {
				switch part.Kind {
				case model.PartText:
					text = part.Text
				case model.PartQuery:
					query = part.Text
				}
			}
			out[g] = append(out[g], model.Completion{Text: e.answer(text, query)})
		}
	}
	return out, nil
}

// TestCacheOptionsValidate: hostile or half settings are refused at their
// keys; both zero is no cache.
func TestCacheOptionsValidate(t *testing.T) {
	tests := []struct {
		opts    model.CacheOptions
		wantErr string
	}{
		{model.CacheOptions{}, ""},
		{model.CacheOptions{Entries: 10, Bytes: 1 << 20, TTL: time.Hour}, ""},
		{model.CacheOptions{Entries: 10}, "entries and bytes must both be > 0"},
		{model.CacheOptions{Bytes: 1 << 20}, "entries and bytes must both be > 0"},
		{model.CacheOptions{Entries: -1, Bytes: 1 << 20}, "entries: must be >= 0"},
		{model.CacheOptions{Entries: 1, Bytes: 1 << 20, TTL: -time.Second}, "ttl: must be >= 0"},
		{model.CacheOptions{Entries: 1, Bytes: 100}, "bytes: 100 is too small"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: err = %v, want %q", tt.opts, err, tt.wantErr)
		}
	}
	if _, err := model.NewRecognizer(&modeltest.ScriptedEngine{}, model.RecognizerOptions{Cache: model.CacheOptions{Entries: 5}}); err == nil || !strings.Contains(err.Error(), "cache") {
		t.Errorf("NewRecognizer err = %v, want the cache's problem", err)
	}
}

func annJSON(anns []model.Annotation, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if anns[0].Err != nil {
		return "", anns[0].Err
	}
	b, err := json.Marshal(anns[0].Record("m", nil))
	return string(b), err
}

// waitFor polls cond: the waiters of a flight block inside the cache, with
// no event of their own to wait on.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(time.Millisecond)
	}
}
