package hub

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	barWidth    = 24
	barNameMax  = 28
	barInterval = 100 * time.Millisecond
)

// bar is a one-line progress bar, redrawn in place with a carriage return
// and an erase-to-end-of-line.
type bar struct {
	w           io.Writer
	name        string
	total, done int64 // total -1: unknown
	base        int64 // done when this attempt started, for the rate
	start, last time.Time
	drawn       bool
}

func newBar(w io.Writer, name string) *bar {
	if utf8.RuneCountInString(name) > barNameMax {
		r := []rune(name)
		name = string(r[:barNameMax-1]) + "…"
	}
	return &bar{w: w, name: name}
}

// restart begins an attempt at done bytes of total.
func (b *bar) restart(done, total int64) {
	b.done, b.base, b.total = done, done, total
	b.start = time.Now()
	b.draw(b.start)
}

// add records that done bytes are in the file.
func (b *bar) add(done int64) {
	b.done = done
	if now := time.Now(); now.Sub(b.last) >= barInterval {
		b.draw(now)
	}
}

func (b *bar) draw(now time.Time) {
	b.last, b.drawn = now, true
	rate := 0.0
	if s := now.Sub(b.start).Seconds(); s > 0 {
		rate = float64(b.done-b.base) / s
	}
	if b.total <= 0 {
		fmt.Fprintf(b.w, "\r%s %s  %s/s\x1b[K", b.name, humanBytes(float64(b.done)), humanBytes(rate))
		return
	}
	done := min(b.done, b.total)
	fill := int(done * barWidth / b.total)
	eta := "--"
	if rate > 0 {
		eta = time.Duration(float64(b.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r%s %3d%% [%s%s] %s / %s  %s/s  ETA %s\x1b[K", b.name, done*100/b.total,
		strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill),
		humanBytes(float64(done)), humanBytes(float64(b.total)), humanBytes(rate), eta)
}

// end draws the last state and ends the line; nil does nothing.
func (b *bar) end() {
	if b == nil || !b.drawn {
		return
	}
	b.draw(time.Now())
	fmt.Fprintln(b.w)
	b.drawn = false
}

// humanBytes is n bytes in B, KiB, MiB or GiB.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
