package bench

import (
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
// filled from one of logVariants fillings, drawn Zipf-distributed (s = 1.1)
// too. So the common messages repeat exactly, as logs do, and the same
// template with other slot values is a near-duplicate: another text, a
// miss for the result cache. The draws are seeded: every run sends the
// same stream.
const (
	logZipfS    = 1.1
	logVariants = 50
	logSeed     = 18
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
	template, variant *rand.Zipf
}

func newLogStream() *logStream {
	r := rand.New(rand.NewPCG(logSeed, logSeed))
	n := len(logTemplates) * len(logServices)
	return &logStream{
		template: rand.NewZipf(r, logZipfS, 1, uint64(n-1)),
		variant:  rand.NewZipf(r, logZipfS, 1, logVariants-1),
	}
}

// next returns the next message.
func (s *logStream) next() string {
	t := int(s.template.Uint64())
	v := int(s.variant.Uint64())
	tmpl := logTemplates[t%len(logTemplates)]
	service := logServices[t/len(logTemplates)]
	h := uint64(t)*1_000_003 + uint64(v)*7_919
	msg := strings.NewReplacer(
		"{name}", logNames[(t+v)%len(logNames)],
		"{num}", strconv.FormatUint(h%9973, 10),
		"{id}", fmt.Sprintf("%s-%06x", service[:min(3, len(service))], h%0xffffff),
	).Replace(tmpl)
	return service + ": " + msg
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
	ZipfS         float64 `json:"zipf_s"`
	DistinctTexts int     `json:"distinct_texts"`
	OffDocsPerS   float64 `json:"cache_off_docs_per_s"`
	OnDocsPerS    float64 `json:"cache_on_docs_per_s"`
	Speedup       float64 `json:"speedup"`
	HitRatio      float64 `json:"hit_ratio"`
	Hits          int64   `json:"hits"`
	Misses        int64   `json:"misses"`
	Evictions     int64   `json:"evictions"`
	Entries       int     `json:"entries"`
	MaxEntries    int     `json:"max_entries"`
	Bytes         int64   `json:"cache_bytes"`
	MaxBytes      int     `json:"cache_max_bytes"`
	OffPeakRSSMB  float64 `json:"cache_off_peak_rss_mb"`
	OnPeakRSSMB   float64 `json:"cache_on_peak_rss_mb"`
	OnHeapPeakMB  float64 `json:"cache_on_heap_peak_mb"`
	OnStartRSSMB  float64 `json:"cache_on_start_rss_mb"`
	WithinBound   bool    `json:"within_bound"`
}

// cacheFigures compares the phases without the cache (plain) and with it
// (cached), medians over rounds; stats are the cache's at the end.
func cacheFigures(o PipelineOptions, plain, cached []phaseReport, stats model.CacheStats) *BenchCache {
	pick := func(rs []phaseReport, f func(phaseReport) float64) float64 { return medianOf(rs, f) }
	texts := map[string]bool{}
	ls := newLogStream()
	for range o.Docs {
		texts[ls.next()] = true
	}
	c := &BenchCache{
		Templates: len(logTemplates) * len(logServices), ZipfS: logZipfS, DistinctTexts: len(texts),
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
	}
	return c
}
