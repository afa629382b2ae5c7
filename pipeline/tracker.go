package pipeline

// tracker follows the records of one partition from fetch to
// acknowledgement, and says what may be committed: the offset after the
// longest acknowledged prefix. Offsets are added in increasing order but
// need not be consecutive (compaction and transaction markers leave gaps);
// acknowledgements may come in any order.
type tracker struct {
	// next is the commit offset when nothing is pending: one past the
	// last offset added, or the claim's start.
	next    int64
	offsets []int64 // pending offsets, increasing
	acked   []bool  // parallel to offsets
}

func newTracker(start int64) *tracker { return &tracker{next: start} }

// add registers a fetched offset. An offset below one already added is
// ignored: taking it would let the commit move backwards.
func (t *tracker) add(off int64) {
	if n := len(t.offsets); (n > 0 && off <= t.offsets[n-1]) || off < t.next {
		return
	}
	t.offsets = append(t.offsets, off)
	t.acked = append(t.acked, false)
	t.next = off + 1
}

// ack marks an offset acknowledged. It reports false for an offset that is
// not pending.
func (t *tracker) ack(off int64) bool {
	i, ok := t.find(off)
	if !ok || t.acked[i] {
		return false
	}
	t.acked[i] = true
	n := 0
	for n < len(t.acked) && t.acked[n] {
		n++
	}
	if n > 0 {
		t.offsets = t.offsets[n:]
		t.acked = t.acked[n:]
		if len(t.offsets) == 0 {
			// Let the backing arrays go rather than creep along them.
			t.offsets, t.acked = nil, nil
		}
	}
	return true
}

func (t *tracker) find(off int64) (int, bool) {
	lo, hi := 0, len(t.offsets)
	for lo < hi {
		m := (lo + hi) / 2
		if t.offsets[m] < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(t.offsets) && t.offsets[lo] == off
}

// committable is the offset to commit: the first pending offset, or one
// past the last added when nothing is pending.
func (t *tracker) committable() int64 {
	if len(t.offsets) > 0 {
		return t.offsets[0]
	}
	return t.next
}

// pending is the number of offsets added and not yet acknowledged.
func (t *tracker) pending() int {
	n := 0
	for _, a := range t.acked {
		if !a {
			n++
		}
	}
	return n
}
