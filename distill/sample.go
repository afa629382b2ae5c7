package distill

import (
	"math/rand/v2"
	"slices"
)

// Sampler keeps a uniform random sample of at most N passages from a
// stream of unknown length (reservoir sampling, Algorithm R, seeded): after
// any number of additions, every set of min(N, added) passages is equally
// likely to be the sample. N <= 0 keeps all. A Sampler is not safe for
// concurrent use.
type Sampler struct {
	n     int
	rng   *rand.Rand
	added int
	kept  []sampled
}

// sampled is a kept passage with its position in the stream.
type sampled struct {
	seq int
	p   Passage
}

// NewSampler returns a Sampler that keeps at most n passages, choosing them
// with randomness seeded by seed; n <= 0 keeps all.
func NewSampler(n int, seed uint64) *Sampler {
	return &Sampler{n: n, rng: rand.New(rand.NewPCG(seed, 0x5a3b1e))}
}

// Add offers a passage to the sample.
func (s *Sampler) Add(p Passage) {
	seq := s.added
	s.added++
	if s.n <= 0 || len(s.kept) < s.n {
		s.kept = append(s.kept, sampled{seq, p})
		return
	}
	if j := s.rng.IntN(s.added); j < s.n {
		s.kept[j] = sampled{seq, p}
	}
}

// Added returns the number of passages offered so far.
func (s *Sampler) Added() int { return s.added }

// Passages returns the sample in the order the passages were added (stable,
// so output order follows input order).
func (s *Sampler) Passages() []Passage {
	kept := slices.Clone(s.kept)
	slices.SortFunc(kept, func(a, b sampled) int { return a.seq - b.seq })
	out := make([]Passage, len(kept))
	for i, k := range kept {
		out[i] = k.p
	}
	return out
}
