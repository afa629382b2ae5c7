package distill

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Bar draws [Progress] on a terminal, redrawn in place: passages settled,
// found in the checkpoint, and tokens spent. Give its Update as
// Options.Progress.
type Bar struct {
	w    io.Writer
	on   bool
	last time.Time
	p    Progress
}

// NewBar returns a bar on w; when on is false (w is no terminal) it draws
// nothing.
func NewBar(w io.Writer, on bool) *Bar { return &Bar{w: w, on: on} }

// Update takes the progress so far, and redraws at most every 100ms and at
// the end.
func (b *Bar) Update(p Progress) {
	b.p = p
	if !b.on || (p.Done < p.Total && time.Since(b.last) < 100*time.Millisecond) {
		return
	}
	b.last = time.Now()
	const width = 30
	fill := width
	if p.Total > 0 {
		fill = width * min(p.Done, p.Total) / p.Total
	}
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d passages (%d from the checkpoint), %d prompt + %d completion tokens ",
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), p.Done, p.Total, p.Cached, p.PromptTokens, p.CompletionTokens)
}

// Done ends the bar's line.
func (b *Bar) Done() {
	if b.on && b.p.Total > 0 {
		fmt.Fprintln(b.w)
	}
}
