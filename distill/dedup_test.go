package distill

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomWords returns n words drawn from a vocabulary of vocab words.
func randomWords(rng *rand.Rand, n, vocab int) []string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("v%d", rng.IntN(vocab))
	}
	return w
}

// jaccard is the exact Jaccard similarity of the texts' word 5-shingles.
func jaccard(a, b string) float64 {
	set := func(s string) map[string]bool {
		w := strings.Fields(strings.ToLower(s))
		k := min(5, len(w))
		m := map[string]bool{}
		for i := 0; i+k <= len(w); i++ {
			m[strings.Join(w[i:i+k], " ")] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	inter := 0
	for s := range sa {
		if sb[s] {
			inter++
		}
	}
	return float64(inter) / float64(len(sa)+len(sb)-inter)
}

func TestDedupExact(t *testing.T) {
	tests := []struct {
		first, second string
		dup           bool
	}{
		{"The cat sat on the mat.", "the  CAT sat\non the\tmat.", true},
		{"The cat sat on the mat.", "  The cat sat on the mat.  ", true},
		{"Ünïcode Straße", "üNÏCODE straße", true},
		{"The cat sat on the mat.", "The cat sat on the mat!", false},
		{"a b c", "a b", false},
		{"", "   ", true},
	}
	for _, tt := range tests {
		d := NewDedup(0)
		if dup, kind := d.Seen(tt.first); dup || kind != "" {
			t.Errorf("first Seen(%q) = %v, %q", tt.first, dup, kind)
		}
		dup, kind := d.Seen(tt.second)
		if dup != tt.dup || (dup && kind != "exact") {
			t.Errorf("Seen(%q) after %q = %v, %q; want dup %v", tt.second, tt.first, dup, kind, tt.dup)
		}
	}
}

func TestDedupNear(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	d := NewDedup(0)
	// A 60-word passage with its last word changed (Jaccard 55/57).
	base := randomWords(rng, 60, 5000)
	if dup, _ := d.Seen(strings.Join(base, " ")); dup {
		t.Fatal("first passage taken for a duplicate")
	}
	changed := append([]string(nil), base...)
	changed[59] = "different"
	if dup, kind := d.Seen(strings.Join(changed, " ")); !dup || kind != "near" {
		t.Errorf("60 words, last one changed: Seen = %v, %q; want a near duplicate", dup, kind)
	}

	// Passages of 100 words with one word changed anywhere (Jaccard at
	// least 91/101 = 0.90, 3 standard errors above 0.8) are all near
	// duplicates; those with every 10th word changed (Jaccard about 1/3)
	// and unrelated ones are not.
	for i := range 50 {
		words := randomWords(rng, 100, 5000)
		orig := strings.Join(words, " ")
		if dup, kind := d.Seen(orig); dup {
			t.Fatalf("passage %d taken for a %s duplicate", i, kind)
		}
		one := append([]string(nil), words...)
		one[rng.IntN(len(one))] = "changed"
		if dup, kind := d.Seen(strings.Join(one, " ")); !dup || kind != "near" {
			t.Errorf("passage %d, one word changed (Jaccard %.3f): Seen = %v, %q; want near", i, jaccard(orig, strings.Join(one, " ")), dup, kind)
		}
		many := append([]string(nil), words...)
		for j := 0; j < len(many); j += 10 {
			many[j] = fmt.Sprintf("x%d", j)
		}
		if s := jaccard(orig, strings.Join(many, " ")); s > 0.5 {
			t.Fatalf("test passage too similar: %.3f", s)
		}
		if dup, kind := d.Seen(strings.Join(many, " ")); dup {
			t.Errorf("passage %d, every 10th word changed: Seen = %v, %q; want not a duplicate", i, dup, kind)
		}
	}
}

func TestDedupShortPassages(t *testing.T) {
	d := NewDedup(0)
	// Under 5 words the whole sequence is the one shingle: any change
	// makes a different passage.
	for _, s := range []string{"Paris", "Paris France", "Paris, France", "France Paris"} {
		if dup, kind := d.Seen(s); dup {
			t.Errorf("Seen(%q) = %v, %q; want new", s, dup, kind)
		}
	}
	if dup, kind := d.Seen("PARIS france"); !dup || kind != "exact" {
		t.Errorf("Seen(PARIS france) = %v, %q; want exact", dup, kind)
	}
}

func TestDedupThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	words := randomWords(rng, 100, 5000)
	many := append([]string(nil), words...)
	for j := 0; j < len(many); j += 10 {
		many[j] = fmt.Sprintf("x%d", j)
	}
	// Jaccard about 1/3: a duplicate at threshold 0.2, not at 0.5.
	for _, tt := range []struct {
		threshold float64
		dup       bool
	}{{0.2, true}, {0.5, false}, {0.8, false}} {
		d := NewDedup(tt.threshold)
		d.Seen(strings.Join(words, " "))
		if dup, _ := d.Seen(strings.Join(many, " ")); dup != tt.dup {
			t.Errorf("threshold %v: Seen = %v; want %v", tt.threshold, dup, tt.dup)
		}
	}
}

func TestDedupZeroValueAndLayout(t *testing.T) {
	var d Dedup
	d.Seen("a b c d e f")
	if d.threshold != DefaultDedupThreshold || d.rows != 5 || len(d.buckets) != 25 {
		t.Errorf("zero Dedup: threshold %v, %d bands of %d rows; want 0.8, 25 of 5", d.threshold, len(d.buckets), d.rows)
	}
	if dup, kind := d.Seen("A B C D E F"); !dup || kind != "exact" {
		t.Errorf("zero Dedup: repeat = %v, %q", dup, kind)
	}
	// The layout catches pairs at the threshold with high probability.
	for _, th := range []float64{0.5, 0.8, 0.9, 0.95} {
		r := bandRows(th)
		b := numHashes / r
		if p := 1 - pow(1-pow(th, r), b); p < bandTarget {
			t.Errorf("threshold %v: %d bands of %d rows catch pairs at it with probability %v", th, b, r, p)
		}
		if r2 := r + 1; 1-pow(1-pow(th, r2), numHashes/r2) >= bandTarget {
			t.Errorf("threshold %v: %d rows per band would do too", th, r2)
		}
	}
}

func pow(x float64, n int) float64 {
	p := 1.0
	for range n {
		p *= x
	}
	return p
}

func TestDedupIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	var texts []string
	for range 40 {
		w := randomWords(rng, 30, 60) // a small vocabulary: many overlaps
		texts = append(texts, strings.Join(w, " "))
		w[rng.IntN(len(w))] = "z"
		texts = append(texts, strings.Join(w, " "))
	}
	run := func() string {
		d := NewDedup(0.5)
		var b strings.Builder
		for _, s := range texts {
			_, kind := d.Seen(s)
			b.WriteString(kind + ",")
		}
		return b.String()
	}
	first := run()
	if !strings.Contains(first, "near") {
		t.Fatal("no near duplicates found; the test shows nothing")
	}
	if second := run(); second != first {
		t.Errorf("two runs differ:\n%s\n%s", first, second)
	}
}

func TestDedupComparesOnlyCandidates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	d := NewDedup(0)
	const n = 3000
	for i := range n {
		if dup, kind := d.Seen(strings.Join(randomWords(rng, 60, 10000), " ")); dup {
			t.Fatalf("unrelated passage %d taken for a %s duplicate", i, kind)
		}
	}
	// A quadratic scan would make n(n-1)/2 comparisons; unrelated
	// passages share no band, so there should be next to none.
	if d.compared > n/100 {
		t.Errorf("%d signature comparisons for %d unrelated passages", d.compared, n)
	}
	if len(d.sigs) != n*numHashes || len(d.exact) != n {
		t.Errorf("kept %d signatures and %d digests for %d passages", len(d.sigs)/numHashes, len(d.exact), n)
	}
	// Duplicates are not remembered.
	for range 10 {
		d.Seen(strings.Repeat("same words again and again ", 5))
	}
	if len(d.exact) != n+1 || len(d.sigs) != (n+1)*numHashes {
		t.Errorf("after 10 repeats: %d digests, %d signatures; want %d", len(d.exact), len(d.sigs)/numHashes, n+1)
	}
}
