package distill

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Chi-square critical values at p = 0.001 (upper tail) by degrees of
// freedom, from standard tables (e.g. NIST/SEMATECH e-Handbook, table
// 1.3.6.7.4).
const (
	chi2Crit6  = 22.458
	chi2Crit7  = 24.322
	chi2Crit9  = 27.877
	chi2Crit11 = 31.264
)

// skewed are ten types with counts from 1000 down to 5 (2000 in all).
func skewed() map[string]int {
	counts := []int{1000, 500, 250, 100, 60, 40, 20, 10, 5, 15}
	m := map[string]int{}
	for i, c := range counts {
		m[fmt.Sprintf("type%d", i)] = c
	}
	return m
}

// chiSquare is Pearson's statistic of observed counts against the expected
// probabilities.
func chiSquare(observed map[string]int, probs map[string]float64) float64 {
	n := 0
	for _, o := range observed {
		n += o
	}
	x := 0.0
	for k, p := range probs {
		e := p * float64(n)
		d := float64(observed[k]) - e
		x += d * d / e
	}
	for k := range observed {
		if _, ok := probs[k]; !ok {
			return 1e300 // a draw that should be impossible
		}
	}
	return x
}

// proportional returns each type's probability under frequency sampling
// restricted to the types not excluded.
func proportional(freq map[string]int, exclude map[string]bool) map[string]float64 {
	total := 0
	for t, c := range freq {
		if !exclude[t] {
			total += c
		}
	}
	p := map[string]float64{}
	for t, c := range freq {
		if !exclude[t] {
			p[t] = float64(c) / float64(total)
		}
	}
	return p
}

// singleDraws counts the types of n draws of one type each.
func singleDraws(n int, draw func() []string) map[string]int {
	counts := map[string]int{}
	for range n {
		for _, t := range draw() {
			counts[t]++
		}
	}
	return counts
}

func TestNegativeSamplerProportional(t *testing.T) {
	freq := skewed()
	tests := []struct {
		name    string
		exclude map[string]bool
		crit    float64
	}{
		{"no exclusion", nil, chi2Crit9},
		// 1+3+9 excluded: 515 of 2000, so draws reject.
		{"exclusion by rejection", map[string]bool{"type1": true, "type3": true, "type8": true, "unknown": true}, chi2Crit6},
		// 0+1 excluded: 1500 of 2000, so draws use the explicit list.
		{"exclusion by the explicit list", map[string]bool{"type0": true, "type1": true, "type2": false}, chi2Crit7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNegativeSampler(freq)
			rng := rand.New(rand.NewPCG(1, 2))
			counts := singleDraws(200000, func() []string { return s.Draw(rng, 1, tt.exclude) })
			x := chiSquare(counts, proportional(freq, tt.exclude))
			t.Logf("chi-square %.2f", x)
			if x > tt.crit {
				t.Errorf("chi-square %.2f over the critical value %v: draws not proportional to frequency", x, tt.crit)
			}
		})
	}
}

func TestChiSquareCatchesUniformSampler(t *testing.T) {
	freq := skewed()
	var types []string
	for ty := range freq {
		types = append(types, ty)
	}
	slices.Sort(types)
	rng := rand.New(rand.NewPCG(1, 2))
	uniform := func() []string { return []string{types[rng.IntN(len(types))]} }
	x := chiSquare(singleDraws(200000, uniform), proportional(freq, nil))
	if x <= chi2Crit9 {
		t.Errorf("a uniform sampler passes the check: chi-square %.2f <= %v", x, chi2Crit9)
	}
	// A sampler that ignores the exclusion's renormalisation (drawing
	// over all types and falling back to the most frequent allowed one)
	// fails too.
	s := NewNegativeSampler(freq)
	exclude := map[string]bool{"type1": true, "type3": true, "type8": true}
	wrong := func() []string {
		got := s.Draw(rng, 1, nil)
		if exclude[got[0]] {
			return []string{"type0"}
		}
		return got
	}
	if x := chiSquare(singleDraws(200000, wrong), proportional(freq, exclude)); x <= chi2Crit6 {
		t.Errorf("a sampler that does not renormalise passes: chi-square %.2f", x)
	}
}

func TestNegativeSamplerSequentialPairs(t *testing.T) {
	// Two draws without replacement over weights 8, 4, 2, 1: the ordered
	// pair (i, j) has probability w_i/W · w_j/(W - w_i). After type a
	// (8 of 15) the second draw uses the explicit list; after the others
	// it rejects.
	freq := map[string]int{"a": 8, "b": 4, "c": 2, "d": 1}
	s := NewNegativeSampler(freq)
	probs := map[string]float64{}
	for i, wi := range freq {
		for j, wj := range freq {
			if i != j {
				probs[i+j] = float64(wi) / 15 * float64(wj) / float64(15-wi)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	counts := map[string]int{}
	for range 100000 {
		got := s.Draw(rng, 2, nil)
		if len(got) != 2 {
			t.Fatalf("Draw(2) = %v", got)
		}
		counts[got[0]+got[1]]++
	}
	x := chiSquare(counts, probs)
	t.Logf("chi-square %.2f", x)
	if x > chi2Crit11 { // 12 ordered pairs
		t.Errorf("chi-square %.2f over %v: ordered pairs not as sequential draws give them", x, chi2Crit11)
	}
}

func TestNegativeSamplerDraw(t *testing.T) {
	freq := skewed()
	freq["zero"] = 0
	freq["negative"] = -4
	s := NewNegativeSampler(freq)
	if s.Len() != 10 {
		t.Errorf("Len = %d; want 10 (counts <= 0 left out)", s.Len())
	}
	rng := rand.New(rand.NewPCG(9, 9))
	exclude := map[string]bool{"type0": true, "type5": true}
	for k := range 14 {
		got := s.Draw(rng, k, exclude)
		if want := min(k, 8); len(got) != want {
			t.Errorf("Draw(%d) gave %d types; want %d", k, len(got), want)
		}
		seen := map[string]bool{}
		for _, ty := range got {
			if seen[ty] || exclude[ty] || freq[ty] <= 0 {
				t.Errorf("Draw(%d) = %v: %q repeated, excluded or not drawable", k, got, ty)
			}
			seen[ty] = true
		}
	}
	if got := s.Draw(rng, -1, nil); got != nil {
		t.Errorf("Draw(-1) = %v", got)
	}
	all := map[string]bool{}
	for ty := range freq {
		all[ty] = true
	}
	if got := s.Draw(rng, 3, all); len(got) != 0 {
		t.Errorf("Draw with everything excluded = %v", got)
	}
	if got := NewNegativeSampler(nil).Draw(rng, 3, nil); len(got) != 0 {
		t.Errorf("empty sampler drew %v", got)
	}
}

func TestNegativeSamplerDeterministic(t *testing.T) {
	draws := func() [][]string {
		// Built afresh each time, so that map order cannot leak in.
		s := NewNegativeSampler(skewed())
		rng := rand.New(rand.NewPCG(5, 6))
		var out [][]string
		for k := range 20 {
			out = append(out, s.Draw(rng, k%6, map[string]bool{"type0": k%2 == 0}))
		}
		return out
	}
	first := draws()
	for range 5 {
		if again := draws(); !slices.EqualFunc(first, again, slices.Equal) {
			t.Fatalf("same seed, different draws:\n%v\n%v", first, again)
		}
	}
}
