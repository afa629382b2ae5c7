package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// The log-like stream of `bench pipeline --logs` (issue 18): each event's
// message is one of logTemplates × logServices (500 templates), drawn
// Zipf-distributed (s = 1.1), with its slots (a name, a number, an id)
// filled from one of a number of fillings per template (DefaultLogFillings
// unless --log-fillings says otherwise), drawn Zipf-distributed (s = 1.1)
// too. So the common messages repeat exactly, as logs do, and the same
// template with other slot values is a near-duplicate: another text, a
// miss for the result cache. The draws are seeded: every run sends the
// same stream.
//
// The issue that asked for the stream left the number of fillings open,
// and it decides the hit ratio: few fillings, mostly repeats; many, mostly
// near-duplicates. --log-fillings sweeps it.
const (
	logZipfS = 1.1
	logSeed  = 18
	// DefaultLogFillings is the slot fillings per template of the
	// log-like stream: 3,257 distinct texts among 10,000 events.
	DefaultLogFillings = 50
	// MaxLogFillings bounds --log-fillings: past it every event of a
	// 10,000-event stream is almost surely its own text anyway.
	MaxLogFillings = 1 << 20
)

var logTemplates = []string{
	"card declined for {name} at ACME Corp, amount {num} EUR, order {id}",
	"user {name} logged in from Berlin, session {id}",
	"payment {id} of {num} USD refunded to {name}",
	"invoice {id} sent to {name} at Globex Inc",
	"password reset requested by {name}, ticket {id}",
	"shipment {id} for {name} delayed in Rotterdam by {num} hours",
	"{name} opened support case {id} about Initech",
	"order {id} by {name} cancelled after {num} seconds",
	"account {id} of {name} locked after {num} failed logins",
	"{name} uploaded report {id} ({num} KB) to the Paris office",
	"subscription {id} of {name} renewed with Umbrella Corp",
	"{name} called from London about contract {id}",
	"transfer {id} of {num} GBP from {name} flagged by Hooli",
	"{name} joined team Phoenix in Tokyo, badge {id}",
	"email to {name} bounced, message {id}, code {num}",
	"{name} approved expense {id} of {num} USD",
	"delivery {id} to {name} in Madrid completed",
	"{name} was assigned incident {id} with priority {num}",
	"quote {id} for {name} at Stark Industries expires in {num} days",
	"{name} changed the address of account {id} to Oslo",
}

var logServices = []string{
	"billing", "auth", "payments", "invoicing", "accounts", "shipping", "support", "orders", "security", "storage",
	"subscriptions", "telephony", "fraud", "hr", "mail", "expenses", "delivery", "incidents", "sales", "profile",
	"gateway", "search", "catalog", "reports", "audit",
}

var logNames = []string{
	"Jane Doe", "John Smith", "Ada Lovelace", "Grace Hopper", "Alan Turing", "Marie Curie", "Linus Torvalds",
	"Katherine Johnson", "Tim Berners-Lee", "Barbara Liskov", "Ken Thompson", "Margaret Hamilton", "Dennis Ritchie",
}

// logStream draws the messages of the log-like stream.
type logStream struct {
	template *rand.Zipf
	variant  func() uint64
}

// newLogStream draws with fillings slot fillings per template; below 1,
// DefaultLogFillings.
func newLogStream(fillings int) *logStream {
	if fillings < 1 {
		fillings = DefaultLogFillings
	}
	// Two sources, so that every number of fillings draws the same
	// templates in the same order.
	n := len(logTemplates) * len(logServices)
	s := &logStream{template: rand.NewZipf(rand.New(rand.NewPCG(logSeed, 1)), logZipfS, 1, uint64(n-1))}
	if fillings == 1 {
		s.variant = func() uint64 { return 0 } // rand.NewZipf refuses imax 0
	} else {
		s.variant = rand.NewZipf(rand.New(rand.NewPCG(logSeed, 2)), logZipfS, 1, uint64(fillings-1)).Uint64
	}
	return s
}

// next returns the next message.
func (s *logStream) next() string {
	_, msg := s.draw()
	return msg
}

// draw returns the next message and the number of its template.
func (s *logStream) draw() (int, string) {
	t := int(s.template.Uint64())
	v := int(s.variant())
	tmpl := logTemplates[t%len(logTemplates)]
	service := logServices[t/len(logTemplates)]
	h := uint64(t)*1_000_003 + uint64(v)*7_919
	msg := strings.NewReplacer(
		"{name}", logNames[(t+v)%len(logNames)],
		"{num}", strconv.FormatUint(h%9973, 10),
		"{id}", fmt.Sprintf("%s-%06x", service[:min(3, len(service))], h%0xffffff),
	).Replace(tmpl)
	return t, service + ": " + msg
}

// logDoc is event i of the log-like stream, in the input schema: the
// message is the text.
func logDoc(i int, msg string) []byte {
	v, _ := json.Marshal(struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}{"log-" + strconv.Itoa(i), msg})
	return v
}

// BenchCache holds the figures of the result cache on the log-like stream:
// the same model and backlog with the cache off (the pipeline phases) and
// on (the cache phases), in one run.
type BenchCache struct {
	Templates     int     `json:"templates"`
	Fillings      int     `json:"fillings"`
	ZipfS         float64 `json:"zipf_s"`
	DistinctTexts int     `json:"distinct_texts"`
	OffDocsPerS   float64 `json:"cache_off_docs_per_s"`
	OnDocsPerS    float64 `json:"cache_on_docs_per_s"`
	Speedup       float64 `json:"speedup"`
	HitRatio      float64 `json:"hit_ratio"`
	// Bound is the most any result cache can gain at HitRatio,
	// 1 / (1 − HitRatio): it removes the share HitRatio of the model's
	// work and no more. OfBound is Speedup / Bound.
	Bound        float64 `json:"bound"`
	OfBound      float64 `json:"of_bound"`
	Hits         int64   `json:"hits"`
	Misses       int64   `json:"misses"`
	Evictions    int64   `json:"evictions"`
	Entries      int     `json:"entries"`
	MaxEntries   int     `json:"max_entries"`
	Bytes        int64   `json:"cache_bytes"`
	MaxBytes     int     `json:"cache_max_bytes"`
	OffPeakRSSMB float64 `json:"cache_off_peak_rss_mb"`
	OnPeakRSSMB  float64 `json:"cache_on_peak_rss_mb"`
	OnHeapPeakMB float64 `json:"cache_on_heap_peak_mb"`
	OnStartRSSMB float64 `json:"cache_on_start_rss_mb"`
	WithinBound  bool    `json:"within_bound"`
}

// cacheFigures compares the phases without the cache (plain) and with it
// (cached), medians over rounds; stats are the cache's at the end.
func cacheFigures(o PipelineOptions, plain, cached []phaseReport, stats model.CacheStats) *BenchCache {
	pick := func(rs []phaseReport, f func(phaseReport) float64) float64 { return medianOf(rs, f) }
	texts := map[string]bool{}
	ls := newLogStream(o.LogFillings)
	for range o.Docs {
		texts[ls.next()] = true
	}
	c := &BenchCache{
		Templates: len(logTemplates) * len(logServices), Fillings: cmp.Or(o.LogFillings, DefaultLogFillings), ZipfS: logZipfS, DistinctTexts: len(texts),
		OffDocsPerS: pick(plain, func(r phaseReport) float64 { return r.AfterJoin }),
		OnDocsPerS:  pick(cached, func(r phaseReport) float64 { return r.AfterJoin }),
		Hits:        stats.Hits, Misses: stats.Misses, Evictions: stats.Evictions,
		Entries: stats.Entries, MaxEntries: o.Cache.Entries, Bytes: stats.Bytes, MaxBytes: o.Cache.Bytes,
		OffPeakRSSMB: maxOf(plain, func(r phaseReport) float64 { return r.PeakRSSMB }),
		OnPeakRSSMB:  maxOf(cached, func(r phaseReport) float64 { return r.PeakRSSMB }),
		OnHeapPeakMB: maxOf(cached, func(r phaseReport) float64 { return r.HeapPeakMB }),
		OnStartRSSMB: pick(cached, func(r phaseReport) float64 { return r.StartRSSMB }),
		WithinBound:  stats.Bytes <= int64(o.Cache.Bytes) && stats.Entries <= o.Cache.Entries,
	}
	if c.OffDocsPerS > 0 {
		c.Speedup = c.OnDocsPerS / c.OffDocsPerS
	}
	if n := stats.Hits + stats.Misses; n > 0 {
		c.HitRatio = float64(stats.Hits) / float64(n)
		if c.HitRatio < 1 {
			c.Bound = 1 / (1 - c.HitRatio)
			c.OfBound = c.Speedup / c.Bound
		}
	}
	return c
}
