// Package backoff is the one exponential back-off of nerstream: the wait
// before a retry, and a sleep that ends with its context. The pipeline
// (model and sink failures), the openai engine and the distillation teacher
// (HTTP retries) use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential back-off. The ceiling of the wait before retry n
// (n counts from 0) is min(Max, Initial×2ⁿ). Without Jitter the wait is the
// ceiling; with it, a random time between 0 and the ceiling ("full
// jitter"), so that the retries of many callers spread out rather than
// arrive together.
type Policy struct {
	Initial, Max time.Duration
	Jitter       bool
	// Rand returns a number in [0, 1) for the jitter. Default: math/rand/v2's
	// Float64; tests set their own.
	Rand func() float64
}

// Ceiling is the longest wait before retry n: min(Max, Initial×2ⁿ), and 0
// for n < 0.
func (p Policy) Ceiling(n int) time.Duration {
	if n < 0 {
		return 0
	}
	d := p.Initial
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Delay is the wait before retry n: the ceiling, or with Jitter a random
// part of it.
func (p Policy) Delay(n int) time.Duration {
	c := p.Ceiling(n)
	if !p.Jitter {
		return c
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(c))
}

// Sleep waits for d, or until ctx ends; it returns ctx's error then, and
// nil after a full wait. A d of 0 or less returns at once, with ctx's error
// if it has ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
