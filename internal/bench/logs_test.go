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
	a, b := newLogStream(), newLogStream()
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
