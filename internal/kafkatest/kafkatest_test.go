package kafkatest

import (
	"sync"
	"testing"
	"testing/synctest"
)

// TestOffsetWatchObservesInBrokerOrder: a poll reads an offset, and its
// answer is slow to come back; meanwhile a commit moves the offset forward
// and a snapshot is taken. The broker's offset only moved forwards, so the
// watch must not report a backward move, and the snapshot must hold the
// offset as it was after the commit. (The watch used to fetch for a
// snapshot beside its poll and observe whichever answer came back last:
// here the poll's older reading, after the snapshot's newer one.)
func TestOffsetWatchObservesInBrokerOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// fakeBroker is a test double of the group coordinator: a fetch
		// reads the offset when it is called, as a broker answers a
		// request in the order it comes; the first fetch's answer then
		// waits for release, as an answer delayed on its way back.
		var (
			mu       sync.Mutex
			offset   int64 = 10
			fetches  int
			inFlight = make(chan struct{})
			release  = make(chan struct{})
		)
		fakeBroker := func() (map[int]int64, error) {
			mu.Lock()
			fetches++
			n, got := fetches, map[int]int64{0: offset}
			mu.Unlock()
			if n == 1 {
				close(inFlight)
				<-release
			}
			return got, nil
		}
		w := newOffsetWatch(fakeBroker)
		<-inFlight // a poll has read 10; its answer is on the way
		mu.Lock()
		offset = 20 // a commit
		mu.Unlock()
		snapped := make(chan snapshot, 1)
		go func() {
			got, err := w.snapshot()
			snapped <- snapshot{got, err}
		}()
		// Every goroutine is blocked now: the poll on its delayed answer,
		// and the snapshot either done or waiting for the poll.
		synctest.Wait()
		close(release)
		s := <-snapped
		if s.err != nil || s.offsets[0] != 20 {
			t.Errorf("snapshot after the commit: %v, %v; want offset 20", s.offsets, s.err)
		}
		backwards, polls := w.end()
		if len(backwards) > 0 {
			t.Errorf("the watch reported %v, but the broker's offset only moved forwards (10, then 20)", backwards)
		}
		if polls < 2 {
			t.Errorf("%d readings observed, want the poll's and the snapshot's", polls)
		}
	})
}

// TestOffsetWatchSeesBackwards: an offset that the broker moves backwards
// is reported, by the polls and through snapshots alike.
func TestOffsetWatchSeesBackwards(t *testing.T) {
	for _, c := range []struct {
		name    string
		offsets []int64 // the broker's offset at each fetch
		want    int     // backward moves reported
	}{
		{"forwards", []int64{-1, 3, 3, 7, 50}, 0},
		{"one step back", []int64{-1, 3, 7, 5, 50}, 1},
		{"back to none", []int64{3, 7, -1, 8}, 1},
		{"back twice from the high mark", []int64{9, 4, 6, 10}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				i := 0
				all := make(chan struct{}) // closed at the last reading
				w := newOffsetWatch(func() (map[int]int64, error) {
					mu.Lock()
					defer mu.Unlock()
					off := c.offsets[min(i, len(c.offsets)-1)]
					if i++; i == len(c.offsets) {
						close(all)
					}
					return map[int]int64{0: off, 1: 0}, nil
				})
				// The first half of the readings by snapshots, the rest by
				// polls (the bubble's clock moves while all wait).
				for range len(c.offsets) / 2 {
					if _, err := w.snapshot(); err != nil {
						t.Fatal(err)
					}
				}
				<-all
				backwards, polls := w.end()
				if len(backwards) != c.want || polls != len(c.offsets) {
					t.Errorf("reported %v in %d readings, want %d backward moves in %d", backwards, polls, c.want, len(c.offsets))
				}
				if _, err := w.snapshot(); err == nil {
					t.Error("a snapshot after the end: no error")
				}
			})
		})
	}
}
