package pipeline

import "testing"

func TestTracker(t *testing.T) {
	type step struct {
		add  []int64
		ack  []int64
		want int64 // committable after the step
		left int   // pending after the step
	}
	cases := []struct {
		name  string
		start int64
		steps []step
	}{
		{"nothing fetched commits the start", 42, []step{{want: 42}}},
		{"in order", 0, []step{
			{add: []int64{0, 1, 2}, want: 0, left: 3},
			{ack: []int64{0}, want: 1, left: 2},
			{ack: []int64{1, 2}, want: 3, left: 0},
		}},
		{"a hole holds the commit back", 10, []step{
			{add: []int64{10, 11, 12, 13}, want: 10, left: 4},
			{ack: []int64{11, 12}, want: 10, left: 2},
			{ack: []int64{13}, want: 10, left: 1},
			{ack: []int64{10}, want: 14, left: 0},
		}},
		{"gaps between offsets", 5, []step{
			{add: []int64{5, 9, 20}, want: 5, left: 3},
			{ack: []int64{5}, want: 9, left: 2},
			{ack: []int64{20}, want: 9, left: 1},
			{ack: []int64{9}, want: 21, left: 0},
			{add: []int64{30}, want: 30, left: 1},
		}},
		{"double and unknown acks change nothing", 0, []step{
			{add: []int64{0, 1}, ack: []int64{0, 0, 7}, want: 1, left: 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTracker(c.start)
			for i, s := range c.steps {
				for _, o := range s.add {
					tr.add(o)
				}
				for _, o := range s.ack {
					tr.ack(o)
				}
				if got := tr.committable(); got != s.want {
					t.Fatalf("step %d: committable = %d, want %d", i, got, s.want)
				}
				if got := tr.pending(); got != s.left {
					t.Fatalf("step %d: pending = %d, want %d", i, got, s.left)
				}
			}
		})
	}
}

func TestTrackerAckReportsUnknown(t *testing.T) {
	tr := newTracker(0)
	tr.add(3)
	if tr.ack(4) {
		t.Fatal("ack of an offset never added succeeded")
	}
	if !tr.ack(3) || tr.ack(3) {
		t.Fatal("first ack must succeed and the second fail")
	}
}

func TestTrackerIgnoresLowerOffsets(t *testing.T) {
	tr := newTracker(10)
	tr.add(5) // below the start
	tr.add(12)
	tr.add(11) // below the last added
	tr.ack(12)
	if got := tr.committable(); got != 13 {
		t.Fatalf("committable = %d, want 13", got)
	}
}
