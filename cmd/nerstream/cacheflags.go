package main

import (
	"flag"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/telemetry"
)

// registerCacheFlags declares the result cache's flags of annotate and
// serve: model.cache of the configuration.
func registerCacheFlags(fset *flag.FlagSet) *model.CacheOptions {
	var c model.CacheOptions
	fset.IntVar(&c.Entries, "cache-entries", 0, "result cache: most answers kept, one per text window and entity type (with --cache-bytes; default: no cache)")
	fset.IntVar(&c.Bytes, "cache-bytes", 0, "result cache: most bytes kept (with --cache-entries)")
	fset.DurationVar(&c.TTL, "cache-ttl", 0, "result cache: how long an answer stays (default: until evicted)")
	return &c
}

// checkCacheFlags refuses bad cache flags in one line.
func checkCacheFlags(c model.CacheOptions) error {
	if err := c.Validate(); err != nil {
		return usagef("--cache-entries, --cache-bytes, --cache-ttl: %v", err)
	}
	return nil
}

// observeCache feeds the nerstream_cache_* metrics from c, if any.
func observeCache(m *telemetry.Metrics, c *model.Cache) {
	if c == nil {
		return
	}
	m.ObserveCache(func() telemetry.CacheStats {
		s := c.Stats()
		return telemetry.CacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Entries: int64(s.Entries), Bytes: s.Bytes}
	})
}
