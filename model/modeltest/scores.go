package modeltest

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// plainString is a JSON string without escapes.
var plainString = regexp.MustCompile(`"([^"\\]*)"`)

// MentionProbabilities reads the raw probability (unrounded) of each
// string of a real engine's answer from its tokens, by the scoring rule
// of the model package: the product over the generated tokens that
// overlap the string's bytes and its closing quote. It is a second,
// simpler reading of that rule, for tests to check entity scores against:
// it takes answers of plain strings (`["a", "b"]`), and ok is false for an
// answer with an escape or tokens that do not spell it. Of repeats, the
// first counts.
func MentionProbabilities(answer string, toks []model.TokenLogProb) (p map[string]float64, ok bool) {
	n := 0
	for _, t := range toks {
		n += t.Bytes
	}
	if n != len(answer) || strings.Contains(answer, `\`) {
		return nil, false
	}
	p = map[string]float64{}
	for _, m := range plainString.FindAllStringSubmatchIndex(answer, -1) {
		v := answer[m[2]:m[3]]
		if _, seen := p[v]; seen {
			continue
		}
		from, to := m[2], m[1] // the string's first byte, past its closing quote
		sum, start := 0.0, 0
		for _, t := range toks {
			if end := start + t.Bytes; end > from && start < to {
				sum += t.LogProb
			}
			start += t.Bytes
		}
		p[v] = math.Exp(sum)
	}
	return p, true
}

// RawScores asks eng about each text and entity type with the default
// (type variant) prompt, in one Generate call of one group per text, as a
// recognizer asks about texts of one window, and reads the raw
// probability of each mention with [MentionProbabilities]:
// scores[text][type][mention]. An answer it cannot read (one with an
// escape) has no mentions there.
func RawScores(ctx context.Context, eng model.Engine, texts, types []string, maxNewTokens int) (map[string]map[string]map[string]float64, error) {
	tmpl, err := model.NewTemplate(model.PromptOptions{})
	if err != nil {
		return nil, err
	}
	groups := make([]model.PromptGroup, len(texts))
	for i, text := range texts {
		for _, typ := range types {
			groups[i].Prompts = append(groups[i].Prompts, tmpl.Prompt(text, typ))
		}
	}
	out, err := eng.Generate(ctx, groups, model.GenerateOptions{MaxNewTokens: maxNewTokens})
	if err != nil {
		return nil, err
	}
	scores := map[string]map[string]map[string]float64{}
	for i, text := range texts {
		scores[text] = map[string]map[string]float64{}
		for j, typ := range types {
			c := out[i][j]
			if p, ok := MentionProbabilities(c.Text, c.Tokens); ok {
				scores[text][typ] = p
			}
		}
	}
	return scores, nil
}

// RankCalibration is a calibration with a point at each of the raw
// scores (at least two distinct ones), mapped in increasing order to
// precisions spread evenly from 0.05 to 0.95, at two decimals: a
// calibrated score is then the precision of its raw score's rank, which
// Precision returns.
func RankCalibration(raw []float64) (*model.Calibration, error) {
	xs := slices.Clone(raw)
	slices.Sort(xs)
	xs = slices.Compact(xs)
	if len(xs) < 2 {
		return nil, fmt.Errorf("%d distinct raw scores, want two at least", len(xs))
	}
	c := &model.Calibration{Method: "isotonic", Scores: xs, Samples: len(raw)}
	for i := range xs {
		c.Precisions = append(c.Precisions, math.Round(5+90*float64(i)/float64(len(xs)-1))/100)
	}
	return c, c.Validate()
}

// AllScores lists every mention score of raw (RawScores' result), in no
// particular order: the points RankCalibration takes.
func AllScores(raw map[string]map[string]map[string]float64) []float64 {
	var all []float64
	for _, byType := range raw {
		for _, ms := range byType {
			for _, p := range ms {
				all = append(all, p)
			}
		}
	}
	return all
}

// Precision is the precision that c maps the raw score s to, when s is
// one of its points; ok is false otherwise.
func Precision(c *model.Calibration, s float64) (p float64, ok bool) {
	i, found := slices.BinarySearch(c.Scores, s)
	if !found {
		return 0, false
	}
	return c.Precisions[i], true
}
