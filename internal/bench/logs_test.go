package bench

import (
	"strings"
	"testing"
)

// TestLogStream: the log-like stream is the same on every run, its common
// messages repeat exactly, its near-duplicates (one template, other slot
// values) are other texts, and it draws from the 500 templates.
func TestLogStream(t *testing.T) {
	const n = 10_000
	a, b := newLogStream(0), newLogStream(0)
	count := map[string]int{}
	templates := map[string]bool{}
	for range n {
		m := a.next()
		if m != b.next() {
			t.Fatal("two streams differ: the stream is not seeded")
		}
		if strings.Contains(m, "{") {
			t.Fatalf("unfilled slot in %q", m)
		}
		count[m]++
		// The template: the message with its slot values taken out.
		templates[head(m)] = true
	}
	top := 0
	for _, c := range count {
		top = max(top, c)
	}
	// Zipf with s = 1.1: the commonest text takes several percent of the
	// stream, and most texts are rare.
	if len(count) < n/10 || len(count) > n*9/10 || top < n/100 {
		t.Errorf("%d distinct texts, the commonest %d times: not a Zipf-like stream of repeats", len(count), top)
	}
	if len(templates) < 50 {
		t.Errorf("%d message heads, want many templates", len(templates))
	}
	// Near-duplicates: texts that share a template and differ in a slot.
	heads := map[string]int{}
	for m := range count {
		heads[head(m)]++
	}
	near := 0
	for _, c := range heads {
		if c > 1 {
			near++
		}
	}
	if near == 0 {
		t.Error("no near-duplicates: every template has one filling")
	}
}

// head is a message's service and first words: its template, mostly.
func head(m string) string {
	f := strings.Fields(m)
	return strings.Join(f[:min(3, len(f))], " ")
}

// TestLogStreamFillings: the slot fillings per template decide how often
// texts repeat: one filling per template gives at most the 500 templates,
// and more fillings give strictly more distinct texts, as near-duplicates
// of the same templates.
func TestLogStreamFillings(t *testing.T) {
	const n = 10_000
	distinct := func(fillings int) (texts, templates int) {
		s := newLogStream(fillings)
		seen, ts := map[string]bool{}, map[int]bool{}
		for range n {
			t, m := s.draw()
			seen[m] = true
			ts[t] = true
		}
		return len(seen), len(ts)
	}
	one, oneTemplates := distinct(1)
	if one != oneTemplates {
		t.Errorf("one filling per template: %d distinct texts from %d templates", one, oneTemplates)
	}
	if def, _ := distinct(0); def != func() int { d, _ := distinct(DefaultLogFillings); return d }() {
		t.Errorf("fillings 0 is not the default (%d fillings)", DefaultLogFillings)
	}
	prev := one
	for _, f := range []int{5, 50, 500, MaxLogFillings} {
		got, templates := distinct(f)
		if got <= prev {
			t.Errorf("%d fillings: %d distinct texts, not more than with fewer fillings (%d)", f, got, prev)
		}
		if templates != oneTemplates {
			t.Errorf("%d fillings: %d templates drawn against %d with one filling: fillings should vary slots, not templates", f, templates, oneTemplates)
		}
		prev = got
	}
	// The fillings are Zipf-distributed too, so even unbounded ones
	// repeat their commonest values.
	if prev < n/2 {
		t.Errorf("%d fillings: only %d distinct texts among %d: not the near-unique end of the sweep", MaxLogFillings, prev, n)
	}
}
