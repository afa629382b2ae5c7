package eval

import (
	"slices"

	"github.com/nerstream/nerstream/model"
)

// Counts are the sums a micro-averaged metric is made of.
type Counts struct {
	Correct   int `json:"correct"`
	Predicted int `json:"predicted"`
	Gold      int `json:"gold"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Correct += o.Correct
	c.Predicted += o.Predicted
	c.Gold += o.Gold
}

// Scores are micro precision, recall and F1 with the counts behind them.
type Scores struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Counts
}

// Exact returns the scores of c, computed exactly: a ratio with a zero
// denominator is 0, so perfect predictions score exactly 1.
func (c Counts) Exact() Scores {
	s := Scores{Counts: c}
	if c.Predicted > 0 {
		s.Precision = float64(c.Correct) / float64(c.Predicted)
	}
	if c.Gold > 0 {
		s.Recall = float64(c.Correct) / float64(c.Gold)
	}
	if s.Precision+s.Recall > 0 {
		s.F1 = float64(2*s.Precision*s.Recall) / float64(s.Precision+s.Recall)
	}
	return s
}

// Smoothed are the scores as the official evaluator prints them: every
// denominator has 1e-10 added, so even perfect predictions score a little
// under 1 (about 1 - 5e-11). The figures equal the official evaluator's to
// the last digit.
type Smoothed struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Official returns the official evaluator's smoothed scores of c. The
// conversions to float64 keep each operation rounded on its own, as in
// Python (Go may otherwise fuse a multiply and an add).
func (c Counts) Official() Smoothed {
	p := float64(c.Correct) / float64(float64(c.Predicted)+1e-10)
	r := float64(c.Correct) / float64(float64(c.Gold)+1e-10)
	num := float64(float64(2*p) * r)
	den := float64(float64(p+r) + 1e-10)
	return Smoothed{Precision: p, Recall: r, F1: num / den}
}

// OfficialItems returns the official metric's reading of a list: each item
// normalised, repeats dropped, first occurrence first.
func OfficialItems(items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		n := Normalize(it)
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// ScoreOfficial scores one query with the official strict metric: a
// predicted item counts as correct when its normalised string is among the
// normalised gold items.
func ScoreOfficial(gold, predicted []string) Counts {
	g := OfficialItems(gold)
	p := OfficialItems(predicted)
	c := Counts{Predicted: len(p), Gold: len(g)}
	for _, it := range p {
		if slices.Contains(g, it) {
			c.Correct++
		}
	}
	return c
}

// ScoreSpans scores one query with the strict span metric: a predicted
// span counts as correct when the gold has the same start and end (the type
// is the query's). Repeated spans count once.
func ScoreSpans(gold, predicted []model.Span) Counts {
	g := uniqueSpans(gold)
	p := uniqueSpans(predicted)
	c := Counts{Predicted: len(p), Gold: len(g)}
	for _, s := range p {
		if _, ok := slices.BinarySearchFunc(g, s, compareSpans); ok {
			c.Correct++
		}
	}
	return c
}

func compareSpans(a, b model.Span) int {
	if a.Start != b.Start {
		return a.Start - b.Start
	}
	return a.End - b.End
}

func uniqueSpans(s []model.Span) []model.Span {
	s = slices.Clone(s)
	slices.SortFunc(s, compareSpans)
	return slices.Compact(s)
}
