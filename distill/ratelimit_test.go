package distill

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/backoff"
)

// available returns the units in the bucket now (negative: debt).
func (l *limiter) available() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked()
	return l.avail
}

// fakeClock is a clock whose sleeps move it on at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1e9, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

func TestLimiterRate(t *testing.T) {
	tests := []struct {
		perMinute, cost int
	}{
		{60, 1},
		{7, 1},
		{1000, 1},
		{1000, 3},
		{90000, 1234}, // tokens
	}
	const minutes = 3
	for _, tt := range tests {
		c := newFakeClock()
		l := newLimiter(tt.perMinute, c.now, c.sleep)
		start := c.now()
		end := start.Add(minutes * time.Minute)
		granted := 0
		for {
			if err := l.Wait(context.Background(), tt.cost); err != nil {
				t.Fatal(err)
			}
			if c.now().After(end) {
				break
			}
			granted += tt.cost
		}
		// A full bucket at the start, then perMinute a minute.
		want := (minutes + 1) * tt.perMinute
		if math.Abs(float64(granted-want)) > float64(tt.cost+1) {
			t.Errorf("%d/min, cost %d: %d units in %d minutes, want %d", tt.perMinute, tt.cost, granted, minutes, want)
		}
	}
}

func TestLimiterClampAndAdjust(t *testing.T) {
	tests := []struct {
		name string
		// steps run in order on a 60/min limiter: wait (n > 0) or adjust.
		steps []struct{ wait, adjust int }
		// took is the fake time the steps took.
		took time.Duration
	}{
		{
			name:  "drain, then one more waits a second",
			steps: []struct{ wait, adjust int }{{wait: 60}, {wait: 1}},
			took:  time.Second,
		},
		{
			name:  "a cost above the capacity waits for a full bucket, then leaves debt",
			steps: []struct{ wait, adjust int }{{wait: 30}, {wait: 90}, {wait: 1}},
			// 30s to fill the bucket; 90 taken leaves -30; 31s to reach 1.
			took: 61 * time.Second,
		},
		{
			name:  "giving back",
			steps: []struct{ wait, adjust int }{{wait: 60}, {adjust: -30}, {wait: 30}},
			took:  0,
		},
		{
			name:  "giving back more than was taken stays within the capacity",
			steps: []struct{ wait, adjust int }{{wait: 10}, {adjust: -1000}, {wait: 60}, {wait: 1}},
			took:  time.Second,
		},
		{
			name:  "taking more goes into debt",
			steps: []struct{ wait, adjust int }{{wait: 60}, {adjust: 30}, {wait: 1}},
			took:  31 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			l := newLimiter(60, c.now, c.sleep)
			start := c.now()
			for _, s := range tt.steps {
				if s.wait > 0 {
					if err := l.Wait(context.Background(), s.wait); err != nil {
						t.Fatal(err)
					}
				} else {
					l.Adjust(s.adjust)
				}
			}
			if got := c.now().Sub(start); got < tt.took || got > tt.took+time.Millisecond {
				t.Errorf("took %v, want %v", got, tt.took)
			}
		})
	}
}

func TestLimiterNil(t *testing.T) {
	l := newLimiter(0, nil, nil)
	if l != nil {
		t.Fatalf("newLimiter(0) = %v, want nil (no limit)", l)
	}
	if err := l.Wait(context.Background(), 1e9); err != nil {
		t.Error(err)
	}
	l.Adjust(5) // no panic
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestLimiterCancel(t *testing.T) {
	tests := []struct {
		name    string
		waiters int // how many wait at once; the later ones wait for their turn
	}{
		{"sleeping for units", 1},
		{"waiting for the turn", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newLimiter(60, clock.now, backoff.Sleep) // real sleeps: a unit a second
			if err := l.Wait(context.Background(), 60); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errs := make(chan error, tt.waiters)
			for range tt.waiters {
				go func() { errs <- l.Wait(ctx, 30) }()
			}
			time.Sleep(20 * time.Millisecond)
			cancel()
			for range tt.waiters {
				select {
				case err := <-errs:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Wait = %v, want context.Canceled", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("Wait did not return after the cancel")
				}
			}
			if got := l.available(); got != 0 {
				t.Errorf("%v units left, want 0: a cancelled Wait takes nothing", got)
			}
		})
	}
}

func TestLimiterFIFO(t *testing.T) {
	// A large cost waiting first is served before small costs that come
	// later: they do not starve it.
	clock := newFakeClock()
	gate := make(chan struct{})
	asleep := make(chan struct{})
	sleep := func(ctx context.Context, d time.Duration) error {
		if d >= 10*time.Second {
			close(asleep)
			<-gate // the large cost's sleep lasts until the small ones came
		}
		return clock.sleep(ctx, d)
	}
	l := newLimiter(60, clock.now, sleep)
	start := clock.now()
	if err := l.Wait(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.Wait(context.Background(), 50) })
	<-asleep // the 50 is sleeping for its 50 seconds
	served := make(chan time.Duration, 3)
	for range 3 {
		wg.Go(func() {
			l.Wait(context.Background(), 1)
			served <- clock.now().Sub(start)
		})
	}
	time.Sleep(10 * time.Millisecond) // without turns, the 1s would be served now
	close(gate)
	wg.Wait()
	close(served)
	for at := range served {
		// Served in turn, each 1 comes after the 50, at 51s or later;
		// out of turn, at 1, 2 or 3s.
		if at < 51*time.Second {
			t.Errorf("a cost of 1 was served at %v, before the 50 that waited first (at 50s)", at)
		}
	}
}
