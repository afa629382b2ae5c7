package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{
		{-1, 0}, {0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {2, 400 * time.Millisecond},
		{3, 800 * time.Millisecond}, {4, time.Second}, {60, time.Second}, {1 << 30, time.Second},
	} {
		if got := p.Delay(c.n); got != c.want {
			t.Errorf("Delay(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := (Policy{Initial: time.Second, Max: time.Millisecond}).Ceiling(0); got != time.Millisecond {
		t.Errorf("an initial wait above the cap: %v", got)
	}
	j := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: true, Rand: func() float64 { return 0.25 }}
	if got := j.Delay(2); got != 100*time.Millisecond {
		t.Errorf("jittered Delay(2) = %v, want a quarter of 400ms", got)
	}
	j.Rand = nil
	for range 100 {
		if d := j.Delay(3); d < 0 || d >= 800*time.Millisecond {
			t.Fatalf("jittered Delay(3) = %v, outside [0, 800ms)", d)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) on a cancelled context: %v", err)
	}
}
