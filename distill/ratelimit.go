package distill

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/nerstream/nerstream/internal/backoff"
)

// limiter is a token bucket that allows perMinute units a minute, with a
// burst of one minute's worth: it starts full, holds at most perMinute
// units, and refills continuously.
//
// Wait takes n units, blocking until they are there. A cost above the
// bucket's size waits for a full bucket only (so that it cannot wait
// forever), and the rest is taken as debt, which later callers wait out:
// over time the rate holds. Adjust corrects a reservation once the real
// cost is known. Waiters are served in turn (first come, first served),
// so a large cost is not starved by small ones.
//
// A nil *limiter allows everything. It is safe for concurrent use.
type limiter struct {
	capacity float64
	perNano  float64 // units per nanosecond
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
	turn     chan struct{} // held by the waiter being served

	mu    sync.Mutex
	avail float64 // may be negative: debt
	last  time.Time
}

// newLimiter returns a limiter of perMinute units a minute, or nil (no
// limit) when perMinute <= 0. now and sleep default to the real clock.
func newLimiter(perMinute int, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	if perMinute <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = backoff.Sleep
	}
	return &limiter{
		capacity: float64(perMinute),
		perNano:  float64(perMinute) / float64(time.Minute),
		now:      now,
		sleep:    sleep,
		turn:     make(chan struct{}, 1),
		avail:    float64(perMinute),
		last:     now(),
	}
}

// refillLocked adds the units earned since the last call.
func (l *limiter) refillLocked() {
	now := l.now()
	if d := now.Sub(l.last); d > 0 {
		l.avail = min(l.capacity, l.avail+float64(d)*l.perNano)
	}
	l.last = now
}

// Wait takes n units, waiting until they are available (for n above the
// capacity, until the bucket is full; the rest becomes debt). It returns
// ctx's error, taking nothing, when ctx ends first. n <= 0 takes nothing.
func (l *limiter) Wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l == nil || n <= 0 {
		return nil
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	need := min(float64(n), l.capacity)
	for {
		l.mu.Lock()
		l.refillLocked()
		if l.avail >= need {
			l.avail -= float64(n)
			l.mu.Unlock()
			return nil
		}
		// Round up, so that the sleep earns at least the deficit.
		d := time.Duration(math.Ceil((need - l.avail) / l.perNano))
		l.mu.Unlock()
		if err := l.sleep(ctx, max(d, 1)); err != nil {
			return err
		}
	}
}

// Adjust corrects what was taken by delta units: negative gives units
// back (up to a full bucket), positive takes more, going into debt if need
// be.
func (l *limiter) Adjust(delta int) {
	if l == nil || delta == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked()
	l.avail = min(l.capacity, l.avail-float64(delta))
}
