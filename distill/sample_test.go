package distill

import (
	"fmt"
	"reflect"
	"testing"
)

func passages(n int) []Passage {
	ps := make([]Passage, n)
	for i := range ps {
		ps[i] = Passage{Text: fmt.Sprintf("passage %d", i), Source: "doc", Index: i}
	}
	return ps
}

func sample(n int, seed uint64, ps []Passage) []Passage {
	s := NewSampler(n, seed)
	for _, p := range ps {
		s.Add(p)
	}
	return s.Passages()
}

func TestSamplerCapAndOrder(t *testing.T) {
	ps := passages(100)
	tests := []struct {
		n, stream, want int
	}{
		{10, 100, 10},
		{10, 5, 5},
		{10, 10, 10},
		{0, 100, 100},
		{-3, 7, 7},
		{1, 100, 1},
		{5, 0, 0},
	}
	for _, tt := range tests {
		got := sample(tt.n, 1, ps[:tt.stream])
		if len(got) != tt.want {
			t.Errorf("n=%d over %d: kept %d; want %d", tt.n, tt.stream, len(got), tt.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].Index >= got[i].Index {
				t.Errorf("n=%d over %d: not in input order: %d before %d", tt.n, tt.stream, got[i-1].Index, got[i].Index)
			}
		}
		if tt.n <= 0 || tt.stream <= tt.n {
			if !reflect.DeepEqual(got, ps[:tt.stream]) && tt.stream > 0 {
				t.Errorf("n=%d over %d: want every passage, in order", tt.n, tt.stream)
			}
		}
	}
}

func TestSamplerReproducible(t *testing.T) {
	ps := passages(1000)
	a, b := sample(20, 42, ps), sample(20, 42, ps)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different samples")
	}
	if c := sample(20, 43, ps); reflect.DeepEqual(a, c) {
		t.Error("different seeds, same sample")
	}
	// Passages does not disturb the sampler.
	s := NewSampler(3, 9)
	for _, p := range ps[:10] {
		s.Add(p)
		s.Passages()
	}
	if got, want := s.Passages(), sample(3, 9, ps[:10]); !reflect.DeepEqual(got, want) {
		t.Errorf("Passages between Adds changed the sample: %v, %v", got, want)
	}
	if s.Added() != 10 {
		t.Errorf("Added = %d", s.Added())
	}
}

// keptStatistic counts, over trials seeds, how often each of N passages is
// in a sample of n, and returns the chi-square statistic of those counts.
// Under simple random sampling each count has mean T·p and variance
// T·p(1-p) (p = n/N); the counts sum to T·n, and the indicators of
// distinct passages have covariance -p(1-p)/(N-1), so
// (N-1)/N · Σ (O-E)²/(T·p(1-p)) is asymptotically chi-square with N-1
// degrees of freedom.
func keptStatistic(trials, n, bigN int, draw func(seed uint64) []Passage) float64 {
	counts := make([]int, bigN)
	for seed := range uint64(trials) {
		for _, p := range draw(seed) {
			counts[p.Index]++
		}
	}
	p := float64(n) / float64(bigN)
	e := float64(trials) * p
	v := e * (1 - p)
	x := 0.0
	for _, o := range counts {
		d := float64(o) - e
		x += d * d / v
	}
	return x * float64(bigN-1) / float64(bigN)
}

// chi2Crit19 is the chi-square critical value for 19 degrees of freedom at
// p = 0.001 (upper tail), from standard tables (e.g. NIST/SEMATECH
// e-Handbook, table 1.3.6.7.4).
const chi2Crit19 = 43.820

func TestSamplerUniform(t *testing.T) {
	const trials, n, bigN = 20000, 5, 20
	ps := passages(bigN)
	x := keptStatistic(trials, n, bigN, func(seed uint64) []Passage { return sample(n, seed, ps) })
	t.Logf("chi-square %.2f (19 degrees of freedom)", x)
	if x > chi2Crit19 {
		t.Errorf("chi-square %.2f over %v: passages not kept with equal probability", x, chi2Crit19)
	}
	// The check can fail: a sampler biased toward the stream's start
	// (replacing only with probability n/(2·added)) fails it.
	biased := func(seed uint64) []Passage {
		s := NewSampler(n, seed)
		for _, p := range ps {
			if s.added >= n && s.rng.IntN(2) == 0 {
				s.added++
				continue
			}
			s.Add(p)
		}
		return s.Passages()
	}
	x = keptStatistic(trials, n, bigN, biased)
	t.Logf("biased sampler: chi-square %.2f", x)
	if x <= chi2Crit19 {
		t.Errorf("chi-square %.2f for a biased sampler is within %v", x, chi2Crit19)
	}
}
