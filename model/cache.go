package model

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/nerstream/nerstream/internal/problems"
)

// CacheOptions configure the result cache (the configuration's
// model.cache). The cache is off when Entries and Bytes are both 0, the
// default.
type CacheOptions struct {
	// Entries bounds the number of cached answers (one per prompt: a
	// window of text and an entity type). 0 with Bytes 0: no cache.
	Entries int `yaml:"entries"`
	// Bytes bounds the cache's memory: each entry counts its answer's
	// text, 16 bytes per token log-probability, and 256 bytes for its key
	// and bookkeeping. Both bounds are
	// needed for a cache.
	Bytes int `yaml:"bytes"`
	// TTL is how long an answer stays; 0 keeps it until it is evicted.
	TTL time.Duration `yaml:"ttl"`
	// Model is the model's identity, part of every key: a GGUF file's
	// SHA-256, or the served model and its endpoints. Whoever opened the
	// model sets it (engines.Identity).
	Model string `yaml:"-"`
}

// Enabled reports whether the options ask for a cache.
func (o CacheOptions) Enabled() bool { return o.Entries != 0 || o.Bytes != 0 }

// Validate reports every problem of the options, at their YAML keys.
func (o CacheOptions) Validate() error {
	var p problems.List
	if o.Entries < 0 {
		p.Addf("entries", "must be >= 0")
	}
	if o.Bytes < 0 {
		p.Addf("bytes", "must be >= 0")
	}
	if o.TTL < 0 {
		p.Addf("ttl", "must be >= 0")
	}
	if o.Enabled() && (o.Entries <= 0 || o.Bytes <= 0) {
		p.Addf("", "entries and bytes must both be > 0 for a cache (both 0: no cache)")
	}
	if o.Enabled() && o.Bytes > 0 && o.Bytes < CacheEntryOverhead+1024 {
		p.Addf("bytes", "%d is too small for one answer (at least %d)", o.Bytes, CacheEntryOverhead+1024)
	}
	return p.Err()
}

// CacheEntryOverhead is what one entry costs beside its answer's text: the
// 32-byte key twice (map and entry), the entry struct, its list element and
// its map slot, rounded up. TestCacheMemoryBound checks it against the heap.
const CacheEntryOverhead = 256

// tokenSize is what one token's log-probability costs in an entry.
const tokenSize = int64(unsafe.Sizeof(TokenLogProb{}))

// CacheStats are a cache's counters since it was made.
type CacheStats struct {
	// Hits are prompts answered without a call of their own to the
	// engine: from the cache, or by waiting for the same prompt in
	// flight. Misses are the prompts that the engine was asked.
	Hits, Misses, Evictions int64
	// Entries and Bytes are what the cache holds now; Bytes as the cache
	// counts it (see [CacheEntryOverhead]).
	Entries int
	Bytes   int64
}

type cacheKey [sha256.Size]byte

type cacheEntry struct {
	key     cacheKey
	text    string
	tokens  []TokenLogProb
	size    int64
	expires time.Time
}

// flight is one answer being computed; done closes when c and err are set.
type flight struct {
	done chan struct{}
	c    Completion
	err  error
}

// Cache holds the model's answers, one per prompt, bounded in entries and
// bytes, least recently used first out, with an optional time to live. It
// is safe for concurrent use. A Cache is shared by [CachingEngine]s.
type Cache struct {
	opts CacheOptions
	now  func() time.Time

	mu      sync.Mutex
	lru     list.List // of *cacheEntry, most recent first
	items   map[cacheKey]*list.Element
	flights map[cacheKey]*flight
	bytes   int64
	stats   CacheStats
}

// NewCache returns an empty cache; now is the clock (nil: time.Now).
func NewCache(opts CacheOptions, now func() time.Time) (*Cache, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if !opts.Enabled() {
		return nil, errors.New("cache: no entries and bytes configured")
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{opts: opts, now: now, items: map[cacheKey]*list.Element{}, flights: map[cacheKey]*flight{}}, nil
}

// Stats returns the counters. A nil Cache has none.
func (c *Cache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries, s.Bytes = c.lru.Len(), c.bytes
	return s
}

// lookup returns the cached answer, or the flight computing it, or, when
// there is neither, a new flight that the caller leads and must finish.
// Called with c.mu held.
func (c *Cache) lookup(k cacheKey) (e *cacheEntry, f *flight, lead bool) {
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		if e.expires.IsZero() || c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			c.stats.Hits++
			return e, nil, false
		}
		c.remove(el)
	}
	if f, ok := c.flights[k]; ok {
		c.stats.Hits++ // answered without another call to the engine
		return nil, f, false
	}
	c.stats.Misses++
	f = &flight{done: make(chan struct{})}
	c.flights[k] = f
	return nil, f, true
}

// finish ends a flight that the caller led: a good answer is stored, and
// every waiter is told. Called with c.mu held.
func (c *Cache) finish(k cacheKey, f *flight, comp Completion, err error) {
	delete(c.flights, k)
	f.c, f.err = comp, err
	close(f.done)
	if err != nil || comp.Err != nil {
		return
	}
	size := int64(len(comp.Text)) + int64(len(comp.Tokens))*tokenSize + CacheEntryOverhead
	if size > int64(c.opts.Bytes) {
		return
	}
	if el, ok := c.items[k]; ok {
		c.remove(el)
	}
	e := &cacheEntry{key: k, text: comp.Text, tokens: comp.Tokens, size: size}
	if c.opts.TTL > 0 {
		e.expires = c.now().Add(c.opts.TTL)
	}
	c.items[k] = c.lru.PushFront(e)
	c.bytes += size
	for c.lru.Len() > c.opts.Entries || c.bytes > int64(c.opts.Bytes) {
		c.remove(c.lru.Back())
		c.stats.Evictions++
	}
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// CachingEngine is an [Engine] that answers each prompt from a [Cache]
// when it can, and asks the engine it wraps for the others, all of one
// call's misses in one Generate call. A prompt's key is the SHA-256 of the
// model's identity, the answer's token limit and the prompt itself, which
// holds the prompt variant, the entity type or its definition, the dataset
// and the window's text; and whether log-probabilities were asked for
// (GenerateOptions.NoScores). An answer keeps its token log-probabilities,
// so entity scores are the same on a hit. Identical prompts in flight are computed once
// (single flight): the first caller leads, the others wait for its answer.
//
// A cached answer is the same text as the engine gave, so the Recognizer
// parses and aligns it into the same record. Its token counts are 0: no
// tokens were computed for it.
type CachingEngine struct {
	inner Engine
	cache *Cache
	model string
}

// NewCachingEngine wraps inner with cache; model is the model's identity
// (see [CacheOptions.Model]).
func NewCachingEngine(inner Engine, cache *Cache, model string) *CachingEngine {
	return &CachingEngine{inner: inner, cache: cache, model: model}
}

// Cache returns the engine's cache.
func (e *CachingEngine) Cache() *Cache { return e.cache }

// Unwrap returns the wrapped engine.
func (e *CachingEngine) Unwrap() Engine { return e.inner }

// TokenCount asks the wrapped engine.
func (e *CachingEngine) TokenCount(ctx context.Context, text string) (int, error) {
	return e.inner.TokenCount(ctx, text)
}

// ContextTokens asks the wrapped engine.
func (e *CachingEngine) ContextTokens() int { return e.inner.ContextTokens() }

func (e *CachingEngine) key(p Prompt, maxNew int, noScores bool) cacheKey {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(e.model)
	binary.LittleEndian.PutUint64(n[:], uint64(maxNew))
	h.Write(n[:])
	if noScores {
		h.Write([]byte{1}) // an answer without log-probabilities
	} else {
		h.Write([]byte{0})
	}
	for _, part := range p.Parts {
		h.Write([]byte{byte(part.Kind)})
		write(part.Text)
	}
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// slot is one prompt of a Generate call.
type slot struct {
	g, p int
	key  cacheKey
	f    *flight
}

// Generate answers each prompt from the cache, from a flight in progress,
// or from the wrapped engine. A waiter whose ctx ends leaves; the leader
// computes on for the others. A waiter whose leader's ctx ended computes
// the answer itself. A failed call is not cached: its leader and every
// waiter get the error.
func (e *CachingEngine) Generate(ctx context.Context, groups []PromptGroup, opts GenerateOptions) ([][]Completion, error) {
	maxNew := opts.MaxNewTokens
	if maxNew <= 0 {
		maxNew = DefaultMaxNewTokens
	}
	out := make([][]Completion, len(groups))
	var todo []slot
	for g, grp := range groups {
		out[g] = make([]Completion, len(grp.Prompts))
		for p, pr := range grp.Prompts {
			todo = append(todo, slot{g: g, p: p, key: e.key(pr, maxNew, opts.NoScores)})
		}
	}
	for len(todo) > 0 {
		var lead, wait []slot
		e.cache.mu.Lock()
		for _, s := range todo {
			hit, f, leads := e.cache.lookup(s.key)
			switch {
			case hit != nil:
				out[s.g][s.p] = Completion{Text: hit.text, Tokens: hit.tokens}
			case leads:
				s.f = f
				lead = append(lead, s)
			default:
				s.f = f
				wait = append(wait, s)
			}
		}
		e.cache.mu.Unlock()
		if len(lead) > 0 {
			if err := e.compute(ctx, groups, opts, lead, out); err != nil {
				return nil, err
			}
		}
		todo = todo[:0]
		for _, s := range wait {
			select {
			case <-s.f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if s.f.err != nil {
				if isContextErr(s.f.err) && ctx.Err() == nil {
					todo = append(todo, s) // the leader left: compute it here
					continue
				}
				return nil, s.f.err
			}
			out[s.g][s.p] = Completion{Text: s.f.c.Text, Tokens: s.f.c.Tokens, Err: s.f.c.Err}
		}
	}
	return out, nil
}

// compute asks the wrapped engine for the prompts this call leads, keeping
// the groups that share a passage together, and finishes their flights.
func (e *CachingEngine) compute(ctx context.Context, groups []PromptGroup, opts GenerateOptions, lead []slot, out [][]Completion) error {
	var sub []PromptGroup
	var where [][]slot
	last := -1
	for _, s := range lead {
		if s.g != last {
			sub = append(sub, PromptGroup{})
			where = append(where, nil)
			last = s.g
		}
		i := len(sub) - 1
		sub[i].Prompts = append(sub[i].Prompts, groups[s.g].Prompts[s.p])
		where[i] = append(where[i], s)
	}
	res, err := e.inner.Generate(ctx, sub, opts)
	if err == nil && len(res) != len(sub) {
		err = fmt.Errorf("cache: engine answered %d of %d prompt groups", len(res), len(sub))
	}
	for i := range sub {
		if err == nil && len(res[i]) != len(sub[i].Prompts) {
			err = fmt.Errorf("cache: engine answered %d of %d prompts", len(res[i]), len(sub[i].Prompts))
		}
	}
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	for i, ss := range where {
		for j, s := range ss {
			if err != nil {
				e.cache.finish(s.key, s.f, Completion{}, err)
				continue
			}
			out[s.g][s.p] = res[i][j]
			e.cache.finish(s.key, s.f, res[i][j], nil)
		}
	}
	return err
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
