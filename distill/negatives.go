package distill

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// NegativeSampler draws entity types with probability proportional to
// their frequency in the whole dataset (the paper's best variant, Table 4:
// +5.7 F1 over uniform sampling). It is immutable once built, and so safe
// for concurrent use with one rand.Rand per goroutine.
type NegativeSampler struct {
	types   []string // sorted
	weights []int64
	cum     []int64 // cum[i] = weights[0] + … + weights[i]
	index   map[string]int
	total   int64
}

// NewNegativeSampler builds a sampler from type -> count. Types with counts
// <= 0 are left out. It is deterministic: the types are laid out in sorted
// order, whatever the map's iteration order.
func NewNegativeSampler(freq map[string]int) *NegativeSampler {
	s := &NegativeSampler{index: make(map[string]int, len(freq))}
	for t, c := range freq {
		if c > 0 {
			s.types = append(s.types, t)
		}
	}
	slices.Sort(s.types)
	s.weights = make([]int64, len(s.types))
	s.cum = make([]int64, len(s.types))
	for i, t := range s.types {
		s.index[t] = i
		s.weights[i] = int64(freq[t])
		s.total += s.weights[i]
		s.cum[i] = s.total
	}
	return s
}

// Len returns the number of types the sampler draws from.
func (s *NegativeSampler) Len() int { return len(s.types) }

// Draw returns up to k distinct types, none in exclude (those mapped to
// true), each draw proportional to frequency among the types not yet chosen
// and not excluded (sequential draws without replacement). It returns fewer
// than k when too few types remain, and nil when k <= 0.
//
// Draws are by binary search over cumulative counts, rejecting excluded or
// already chosen types; once those hold half the total count or more (so
// that a draw would take two or more tries on average), the remaining draws
// are made over an explicit list of the remaining types instead.
func (s *NegativeSampler) Draw(rng *rand.Rand, k int, exclude map[string]bool) []string {
	if k <= 0 || s.total == 0 {
		return nil
	}
	var blocked int64
	for t, ex := range exclude {
		if i, ok := s.index[t]; ok && ex {
			blocked += s.weights[i]
		}
	}
	out := make([]string, 0, min(k, len(s.types)))
	chosen := make(map[int]bool, cap(out))
	for len(out) < k {
		if 2*blocked >= s.total {
			return s.drawExplicit(rng, k, exclude, chosen, out)
		}
		u := rng.Int64N(s.total)
		i := sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > u })
		if chosen[i] || exclude[s.types[i]] {
			continue
		}
		chosen[i] = true
		out = append(out, s.types[i])
		blocked += s.weights[i]
	}
	return out
}

// drawExplicit makes the draws left to reach k over the list of types that
// are neither excluded nor chosen.
func (s *NegativeSampler) drawExplicit(rng *rand.Rand, k int, exclude map[string]bool, chosen map[int]bool, out []string) []string {
	var rest []int
	var mass int64
	for i, t := range s.types {
		if !chosen[i] && !exclude[t] {
			rest = append(rest, i)
			mass += s.weights[i]
		}
	}
	for len(out) < k && len(rest) > 0 {
		u := rng.Int64N(mass)
		j := 0
		for ; u >= s.weights[rest[j]]; j++ {
			u -= s.weights[rest[j]]
		}
		i := rest[j]
		out = append(out, s.types[i])
		mass -= s.weights[i]
		rest = slices.Delete(rest, j, j+1)
	}
	return out
}
