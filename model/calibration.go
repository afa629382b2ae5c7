package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"os"
	"slices"

	"github.com/nerstream/nerstream/record"
)

// Calibration (issue 19) is a monotone map from a raw mention score to the
// precision observed for such scores on a labelled set: an isotonic
// regression (pool adjacent violators), fitted by [FitIsotonic] (`eval
// --calibrate`) and applied by the recognizer (`model.calibration`). The
// fit is a step function over the pooled blocks; Apply interpolates
// linearly between the blocks' mean scores, and is flat beyond the first
// and last, so that it is continuous and never decreasing. Only entity
// scores are calibrated: the map is fitted on mentions, and says nothing
// of the probability that a type has none, so empty_scores stay raw.
type Calibration struct {
	Method string `json:"method"` // "isotonic"
	// Scores are the blocks' mean raw scores, strictly increasing, and
	// Precisions the blocks' observed precisions, never decreasing.
	Scores     []float64 `json:"scores"`
	Precisions []float64 `json:"precisions"`
	// Samples is the number of mentions the map was fitted on.
	Samples int `json:"samples"`
}

// ErrCalibration marks a calibration file that cannot be used.
var ErrCalibration = errors.New("bad calibration")

// MaxCalibrationPoints bounds a calibration's points.
const MaxCalibrationPoints = 10000

// FitIsotonic fits the isotonic map of precision on score: scores[i] is a
// mention's raw score in [0, 1] and correct[i] whether it was right.
func FitIsotonic(scores []float64, correct []bool) (*Calibration, error) {
	if len(scores) == 0 || len(scores) != len(correct) {
		return nil, fmt.Errorf("%w: no scored mentions to fit on", ErrCalibration)
	}
	idx := make([]int, len(scores))
	for i := range idx {
		if !(scores[i] >= 0 && scores[i] <= 1) {
			return nil, fmt.Errorf("%w: score %v outside [0, 1]", ErrCalibration, scores[i])
		}
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmpFloat(scores[a], scores[b]) })
	// Blocks of equal scores first, then pool adjacent violators.
	type block struct{ sumX, sumY, n float64 }
	var bs []block
	for _, i := range idx {
		y := 0.0
		if correct[i] {
			y = 1
		}
		if k := len(bs) - 1; k >= 0 && bs[k].sumX/bs[k].n == scores[i] {
			bs[k].sumX, bs[k].sumY, bs[k].n = bs[k].sumX+scores[i], bs[k].sumY+y, bs[k].n+1
		} else {
			bs = append(bs, block{scores[i], y, 1})
		}
		for k := len(bs) - 1; k > 0 && bs[k-1].sumY/bs[k-1].n > bs[k].sumY/bs[k].n; k-- {
			bs[k-1] = block{bs[k-1].sumX + bs[k].sumX, bs[k-1].sumY + bs[k].sumY, bs[k-1].n + bs[k].n}
			bs = bs[:k]
		}
	}
	c := &Calibration{Method: "isotonic", Samples: len(scores)}
	for _, b := range bs {
		c.Scores = append(c.Scores, b.sumX/b.n)
		c.Precisions = append(c.Precisions, b.sumY/b.n)
	}
	if len(c.Scores) > MaxCalibrationPoints {
		c.thin(MaxCalibrationPoints)
	}
	return c, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// thin keeps n of the points, evenly spread, the ends included.
func (c *Calibration) thin(n int) {
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range n {
		j := i * (len(c.Scores) - 1) / (n - 1)
		xs[i], ys[i] = c.Scores[j], c.Precisions[j]
	}
	c.Scores, c.Precisions = xs, ys
}

// Apply maps a raw score to its calibrated score, rounded as records carry
// scores.
func (c *Calibration) Apply(s float64) float64 {
	xs, ys := c.Scores, c.Precisions
	i, _ := slices.BinarySearch(xs, s)
	switch {
	case i == 0:
		return record.RoundScore(ys[0])
	case i == len(xs):
		return record.RoundScore(ys[len(ys)-1])
	}
	f := (s - xs[i-1]) / (xs[i] - xs[i-1])
	return record.RoundScore(ys[i-1] + f*(ys[i]-ys[i-1]))
}

// Validate reports why c cannot be applied, wrapping [ErrCalibration].
func (c *Calibration) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCalibration, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Method != "isotonic":
		return bad("method %q: want isotonic", truncateRunes(c.Method, 20))
	case len(c.Scores) == 0 || len(c.Scores) != len(c.Precisions):
		return bad("want as many scores as precisions, at least one")
	case len(c.Scores) > MaxCalibrationPoints:
		return bad("more than %d points", MaxCalibrationPoints)
	}
	for i := range c.Scores {
		x, y := c.Scores[i], c.Precisions[i]
		if !(x >= 0 && x <= 1 && y >= 0 && y <= 1) {
			return bad("point %d outside [0, 1]", i)
		}
		if i > 0 && (x <= c.Scores[i-1] || y < c.Precisions[i-1]) {
			return bad("point %d: scores must increase and precisions never decrease", i)
		}
	}
	return nil
}

// truncateRunes cuts s to n runes at most.
func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// ReadCalibration reads and validates a calibration file as [FitIsotonic]
// writes it (JSON, at most 1 MiB, a regular file).
func ReadCalibration(path string) (*Calibration, error) {
	// Not a FIFO or a device: opening one may wait for ever.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s: not a regular file", ErrCalibration, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c Calibration
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCalibration, path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}
