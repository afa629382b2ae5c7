package eval

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// ErrNoScores marks predictions that carry no scores, so that no threshold
// can be applied to them.
var ErrNoScores = errors.New("the predictions carry no scores (save them with eval --model … --save-predictions)")

// DefaultThresholds is the grid of [Sweep] when none is given: 0 to 1 by
// 0.05.
func DefaultThresholds() []float64 {
	out := make([]float64, 21)
	for i := range out {
		out[i] = float64(i) / 20
	}
	return out
}

// Point is one threshold of a sweep: the micro scores of every dataset
// together, under both metrics, keeping only mentions scored at least
// Threshold.
type Point struct {
	Threshold float64 `json:"threshold"`
	Official  Scores  `json:"official"`
	Span      Scores  `json:"span"`
}

// Best is the threshold with the highest F1 under one metric (the lowest
// such threshold on a tie).
type Best struct {
	Threshold float64 `json:"threshold"`
	F1        float64 `json:"f1"`
}

// Bin is one bin of a reliability diagram: the predicted mentions whose
// score falls in [Lo, Hi) (the last bin includes 1), their mean score, and
// the share of them that are correct.
type Bin struct {
	Lo        float64 `json:"lo"`
	Hi        float64 `json:"hi"`
	Count     int     `json:"count"`
	MeanScore float64 `json:"mean_score"`
	Precision float64 `json:"precision"`
}

// SweepReport is the outcome of [Sweep].
type SweepReport struct {
	Points       []Point `json:"points"`
	BestOfficial Best    `json:"best_official"`
	BestSpan     Best    `json:"best_span"`
	// Reliability holds ten bins of score against observed precision
	// under the official metric, and ECE their expected calibration
	// error: the bins' |precision - mean score| weighted by their counts.
	Reliability []Bin   `json:"reliability"`
	ECE         float64 `json:"ece"`
	// Unscored counts predicted mentions (official reading) that have no
	// score; they count as 0 at thresholds, and are left out of the
	// reliability diagram and the calibration.
	Unscored int `json:"unscored_mentions"`
}

// Sweep scores predictions at each threshold under both metrics (official
// with official parsing, span with lenient parsing, as [Evaluate] defaults
// them). At threshold 0 every mention is kept, so that point equals
// [Evaluate]'s figures exactly. Thresholds must lie in [0, 1].
func Sweep(datasets []Dataset, preds Predictions, scores PredictionScores, thresholds []float64) (SweepReport, error) {
	if len(scores) == 0 {
		return SweepReport{}, ErrNoScores
	}
	if len(thresholds) == 0 {
		return SweepReport{}, errors.New("no thresholds")
	}
	var rep SweepReport
	for _, t := range thresholds {
		if !validScore(t) {
			return SweepReport{}, fmt.Errorf("threshold %v is outside [0, 1]", t)
		}
		p := Point{Threshold: t}
		for _, m := range []Metric{MetricOfficial, MetricSpan} {
			r, err := Evaluate(datasets, preds, Options{Metric: m, Scores: scores, MinScore: t})
			if err != nil {
				return SweepReport{}, err
			}
			if m == MetricOfficial {
				p.Official = r.Scores
			} else {
				p.Span = r.Scores
			}
		}
		rep.Points = append(rep.Points, p)
	}
	rep.BestOfficial = best(rep.Points, func(p Point) float64 { return p.Official.F1 })
	rep.BestSpan = best(rep.Points, func(p Point) float64 { return p.Span.F1 })
	rep.Reliability, rep.ECE, rep.Unscored = reliability(datasets, preds, scores)
	return rep, nil
}

func best(points []Point, f1 func(Point) float64) Best {
	b := Best{Threshold: points[0].Threshold, F1: f1(points[0])}
	for _, p := range points[1:] {
		if v := f1(p); v > b.F1 || (v == b.F1 && p.Threshold < b.Threshold) {
			b = Best{Threshold: p.Threshold, F1: v}
		}
	}
	return b
}

// scoredItems returns the official metric's predicted items (normalised,
// deduplicated) that have a score, with whether each is correct, and counts
// the predicted mentions with no score. An item's score is the highest of
// the mentions that normalise to it, as a threshold keeps the item while
// any of them passes.
func scoredItems(datasets []Dataset, preds Predictions, scores PredictionScores) (itemScores []float64, correct []bool, unscored int) {
	for _, d := range datasets {
		for _, q := range d.Queries {
			qs := scores[q.ID]
			items := map[string]float64{}
			var order []string
			for _, m := range model.Parse(model.ParseOfficialMode, preds[q.ID]) {
				s, ok := qs.Mentions[m]
				if !ok {
					unscored++
					continue
				}
				n := Normalize(m)
				old, seen := items[n]
				if !seen {
					order = append(order, n)
				}
				if !seen || s > old {
					items[n] = s
				}
			}
			gold := OfficialItems(q.Gold)
			for _, n := range order {
				itemScores = append(itemScores, items[n])
				correct = append(correct, slices.Contains(gold, n))
			}
		}
	}
	return itemScores, correct, unscored
}

// reliability bins the scored items of the official metric by score.
func reliability(datasets []Dataset, preds Predictions, scores PredictionScores) (bins []Bin, ece float64, unscored int) {
	bins = make([]Bin, 10)
	sums := make([]float64, 10)
	hits := make([]int, 10)
	itemScores, correct, unscored := scoredItems(datasets, preds, scores)
	for i, s := range itemScores {
		b := min(int(s*10), 9)
		bins[b].Count++
		sums[b] += s
		if correct[i] {
			hits[b]++
		}
	}
	for i := range bins {
		bins[i].Lo, bins[i].Hi = float64(i)/10, float64(i+1)/10
		if c := bins[i].Count; c > 0 {
			bins[i].MeanScore = sums[i] / float64(c)
			bins[i].Precision = float64(hits[i]) / float64(c)
			ece += float64(c) / float64(len(itemScores)) * math.Abs(bins[i].Precision-bins[i].MeanScore)
		}
	}
	return bins, ece, unscored
}

// Calibrate fits the isotonic map from raw score to observed precision
// (model.FitIsotonic) on the official metric's scored items, for
// model.calibration.
func Calibrate(datasets []Dataset, preds Predictions, scores PredictionScores) (*model.Calibration, error) {
	if len(scores) == 0 {
		return nil, ErrNoScores
	}
	itemScores, correct, _ := scoredItems(datasets, preds, scores)
	return model.FitIsotonic(itemScores, correct)
}

// MaxThresholds bounds the thresholds of one sweep.
const MaxThresholds = 1001

// ParseThresholds reads comma-separated thresholds in [0, 1], e.g.
// "0,0.25,0.5"; they are sorted and repeats dropped.
func ParseThresholds(s string) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) > MaxThresholds {
		return nil, fmt.Errorf("more than %d thresholds", MaxThresholds)
	}
	out := make([]float64, 0, len(parts))
	for _, f := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !validScore(v) {
			return nil, fmt.Errorf("%q is not a number in [0, 1]", truncate(strings.TrimSpace(f), 20))
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WriteTable writes rep as a plain-text table: one row per threshold with
// both metrics' precision, recall and F1, then the best thresholds and the
// expected calibration error.
func WriteTable(w io.Writer, rep SweepReport) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%-9s  %-26s  %-26s\n", "", "official", "span")
	fmt.Fprintf(bw, "%-9s  %8s %8s %8s  %8s %8s %8s\n", "threshold", "P", "R", "F1", "P", "R", "F1")
	for _, p := range rep.Points {
		o, s := p.Official, p.Span
		fmt.Fprintf(bw, "%-9g  %8.4f %8.4f %8.4f  %8.4f %8.4f %8.4f\n", p.Threshold, o.Precision, o.Recall, o.F1, s.Precision, s.Recall, s.F1)
	}
	fmt.Fprintf(bw, "best F1: official %.4f at %g, span %.4f at %g; ECE %.4f\n", rep.BestOfficial.F1, rep.BestOfficial.Threshold, rep.BestSpan.F1, rep.BestSpan.Threshold, rep.ECE)
	return bw.Flush()
}
