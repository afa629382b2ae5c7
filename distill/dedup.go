package distill

import (
	"crypto/sha256"
	"hash/fnv"
	"math"
	"strings"
)

// MinHash layout. Each passage gets a signature of numHashes 32-bit
// minimums, one per hash function h_j(x) = mix(x ^ seed_j) over the 64-bit
// FNV-1a hashes x of its word shingles. For candidate search the signature
// is cut into b bands of r rows, and two passages are candidates when any
// band matches in full, which for Jaccard similarity s happens with
// probability 1 - (1 - s^r)^b. r is the largest for which pairs at the
// threshold are candidates with probability at least bandTarget; for the
// default threshold 0.8 that is 25 bands of 5 rows (of the 128 hashes,
// 125 are banded), which makes a pair at s = 0.8 a candidate with
// probability 0.99995, at 0.5 with 0.55, at 0.3 with 0.06 and at 0.2 with
// 0.008. A candidate is a duplicate only when the share of equal entries
// over all 128 (the MinHash estimate of s, standard error
// sqrt(s(1-s)/128), 0.035 at s = 0.8) reaches the threshold, so pairs
// below 0.5 are hardly ever taken for duplicates.
const (
	numHashes  = 128
	shingleLen = 5
	bandTarget = 0.9999
	// DefaultDedupThreshold is the near-duplicate threshold used when
	// Dedup.Threshold is 0.
	DefaultDedupThreshold = 0.8
)

// Dedup drops exact and near-duplicate passages. Exact: same text after
// lower-casing and collapsing white space. Near: estimated Jaccard
// similarity of word 5-shingles (or the whole word sequence when shorter)
// >= Threshold, by MinHash with LSH banding: 128 hashes, cut into bands
// so that pairs at the threshold share a band with probability at least
// 0.9999 (25 bands of 5 rows at 0.8), and confirmed by the share of equal
// hashes over all 128. It is deterministic: the hash seeds are fixed, and
// nothing depends on the run.
//
// Memory grows with the passages kept (a 32-byte digest, a 512-byte
// signature and one bucket entry per band each); a new passage is compared
// only with the kept passages that share a band with it. The zero value is
// ready to use with the default threshold. A Dedup is not safe for
// concurrent use.
type Dedup struct {
	// Threshold is the estimated Jaccard similarity from which a passage
	// is a near duplicate, in (0, 1]. 0 means DefaultDedupThreshold;
	// it is read on the first call to Seen.
	Threshold float64

	ready     bool
	threshold float64
	rows      int // r: rows per band
	seeds     [numHashes]uint64
	exact     map[[sha256.Size]byte]struct{}
	sigs      []uint32 // the kept passages' signatures, numHashes each
	buckets   []map[uint64][]int32
	stamp     []uint64 // per kept passage: the last call that compared it
	calls     uint64
	compared  int // signature comparisons made, for tests
}

// NewDedup returns a Dedup with the given near-duplicate threshold; 0 means
// DefaultDedupThreshold.
func NewDedup(threshold float64) *Dedup {
	return &Dedup{Threshold: threshold}
}

func (d *Dedup) init() {
	d.ready = true
	d.threshold = d.Threshold
	if d.threshold <= 0 || math.IsNaN(d.threshold) {
		d.threshold = DefaultDedupThreshold
	}
	d.threshold = min(d.threshold, 1)
	d.rows = bandRows(d.threshold)
	for j := range d.seeds {
		d.seeds[j] = mix64(uint64(j+1) * 0x9e3779b97f4a7c15)
	}
	d.exact = make(map[[sha256.Size]byte]struct{})
	d.buckets = make([]map[uint64][]int32, numHashes/d.rows)
	for b := range d.buckets {
		d.buckets[b] = make(map[uint64][]int32)
	}
}

// bandRows returns the largest number of rows per band with which pairs
// at similarity t become candidates with probability at least bandTarget,
// or 1 when none does.
func bandRows(t float64) int {
	best := 1
	for r := 1; r <= numHashes; r++ {
		b := numHashes / r
		if 1-math.Pow(1-math.Pow(t, float64(r)), float64(b)) >= bandTarget {
			best = r
		}
	}
	return best
}

// Seen reports whether text duplicates an earlier one given to Seen, and
// remembers it when not: the first of a set of duplicates is kept. kind is
// "exact", "near" or "" (not a duplicate).
func (d *Dedup) Seen(text string) (dup bool, kind string) {
	if !d.ready {
		d.init()
	}
	words := strings.FieldsFunc(strings.ToLower(text), isSpace)
	key := sha256.Sum256([]byte(strings.Join(words, " ")))
	if _, ok := d.exact[key]; ok {
		return true, "exact"
	}
	if len(words) == 0 {
		d.exact[key] = struct{}{}
		return false, ""
	}
	sig := d.signature(words)
	keys := make([]uint64, len(d.buckets))
	for b := range d.buckets {
		keys[b] = bandKey(sig[b*d.rows : (b+1)*d.rows])
	}
	d.calls++
	need := int(math.Ceil(d.threshold*numHashes - 1e-9))
	for b, k := range keys {
		for _, id := range d.buckets[b][k] {
			if d.stamp[id] == d.calls {
				continue
			}
			d.stamp[id] = d.calls
			d.compared++
			other := d.sigs[int(id)*numHashes : (int(id)+1)*numHashes]
			same := 0
			for j := range sig {
				if sig[j] == other[j] {
					same++
				}
			}
			if same >= need {
				return true, "near"
			}
		}
	}
	id := int32(len(d.stamp))
	d.exact[key] = struct{}{}
	d.sigs = append(d.sigs, sig...)
	d.stamp = append(d.stamp, d.calls)
	for b, k := range keys {
		d.buckets[b][k] = append(d.buckets[b][k], id)
	}
	return false, ""
}

// signature returns the MinHash signature of the words' shingles.
func (d *Dedup) signature(words []string) []uint32 {
	sig := make([]uint32, numHashes)
	for j := range sig {
		sig[j] = math.MaxUint32
	}
	k := min(shingleLen, len(words))
	h := fnv.New64a()
	for i := 0; i+k <= len(words); i++ {
		h.Reset()
		h.Write([]byte(strings.Join(words[i:i+k], " ")))
		x := h.Sum64()
		for j, s := range d.seeds {
			if v := uint32(mix64(x^s) >> 32); v < sig[j] {
				sig[j] = v
			}
		}
	}
	return sig
}

// bandKey hashes one band of a signature.
func bandKey(rows []uint32) uint64 {
	k := uint64(0xcbf29ce484222325)
	for _, v := range rows {
		k = mix64(k ^ uint64(v))
	}
	return k
}

// mix64 is the 64-bit finaliser of MurmurHash3: a bijection that spreads
// every input bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
