package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// Metric names a way of scoring.
type Metric string

const (
	// MetricOfficial is UniNER's strict entity-level metric over
	// normalised mention strings, micro-averaged over queries.
	MetricOfficial Metric = "official"
	// MetricSpan is strict over (start, end, type): a predicted mention
	// is aligned in the passage and each of its occurrences must match a
	// gold span exactly.
	MetricSpan Metric = "span"
)

// Predictions maps query ids to the raw text a model generated for them.
type Predictions map[string]string

// ErrPredictions marks a file that is not a readable predictions file.
var ErrPredictions = errors.New("bad predictions file")

// QueryScores are the scores saved with one prediction (issue 19): each
// mention of the answer by its decoded string, as the engine scored it, and
// the score of the answer "[]" where that was the answer.
type QueryScores struct {
	Mentions map[string]float64 `json:"scores,omitempty"`
	Empty    *float64           `json:"empty_score,omitempty"`
}

// PredictionScores maps query ids to the scores of their predictions. A
// query without an entry has no scores.
type PredictionScores map[string]QueryScores

// ReadPredictions reads JSON lines {"id": query id, "output": raw model
// text}, ignoring any scores ([ReadScoredPredictions] keeps them).
func ReadPredictions(r io.Reader) (Predictions, error) {
	preds, _, err := ReadScoredPredictions(r)
	return preds, err
}

// ReadScoredPredictions reads JSON lines {"id": query id, "output": raw
// model text, "scores": {mention: score}, "empty_score": score}; the two
// score fields are optional. Blank lines are skipped; a malformed line, a
// repeated id or a score that is not a number in [0, 1] is an
// [ErrPredictions] error that names the line. Outputs decode as Python's
// json module decodes them (see [model.UnquoteJSON]).
func ReadScoredPredictions(r io.Reader) (Predictions, PredictionScores, error) {
	preds := Predictions{}
	scores := PredictionScores{}
	err := readLines(r, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		var rec struct {
			ID     *string   `json:"id"`
			Output *pyString `json:"output"`
			QueryScores
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrPredictions, n, err)
		}
		if rec.ID == nil || rec.Output == nil {
			return fmt.Errorf("%w: line %d: want {\"id\": …, \"output\": …}", ErrPredictions, n)
		}
		if _, dup := preds[*rec.ID]; dup {
			return fmt.Errorf("%w: line %d: a second prediction for id %q", ErrPredictions, n, *rec.ID)
		}
		bad := rec.Empty != nil && !validScore(*rec.Empty)
		for _, v := range rec.Mentions {
			bad = bad || !validScore(v)
		}
		if bad {
			return fmt.Errorf("%w: line %d: a score outside [0, 1]", ErrPredictions, n)
		}
		preds[*rec.ID] = string(*rec.Output)
		if rec.Mentions != nil || rec.Empty != nil {
			scores[*rec.ID] = rec.QueryScores
		}
		return nil
	})
	return preds, scores, err
}

func validScore(v float64) bool { return v >= 0 && v <= 1 } // false for NaN

// Options configure [Evaluate].
type Options struct {
	// Metric is the metric. Default: [MetricOfficial].
	Metric Metric
	// Parse is how predictions are read. Default: official for the
	// official metric, lenient (as nerstream serves) for the span metric.
	Parse model.ParseMode
	// Scores and MinScore filter predictions as model.min_score filters
	// entities: where Scores is set, a predicted mention whose score is
	// below MinScore is dropped before the query is scored. A mention
	// without a score counts as 0, so MinScore 0 keeps everything.
	Scores   PredictionScores
	MinScore float64
}

// Result is the score of one dataset, or of all together.
type Result struct {
	// Scores are exact: perfect predictions give exactly 1.
	Scores
	Queries int `json:"queries"`
	// Official holds the official evaluator's smoothed figures (official
	// metric only).
	Official *Smoothed `json:"official,omitempty"`
	// MissingPredictions counts queries with no prediction; each counts
	// as an empty answer.
	MissingPredictions int `json:"missing_predictions"`
	// UnalignedGold counts gold mentions that the span metric could not
	// find in their passage (span metric, UniNER JSON only); they count
	// as gold that no prediction matches.
	UnalignedGold int `json:"unaligned_gold,omitempty"`
	// UnalignedPredicted counts predicted mentions that the span metric
	// could not find in their passage (span metric only); each counts as
	// one wrong prediction, so that invented mentions cost precision.
	UnalignedPredicted int `json:"unaligned_predicted,omitempty"`
}

// Report is the outcome of [Evaluate].
type Report struct {
	Metric Metric          `json:"metric"`
	Parse  model.ParseMode `json:"parse"`
	// Result is micro-averaged over every query of every dataset.
	Result
	// MacroF1 is the mean of the datasets' F1, as the paper averages.
	MacroF1 float64 `json:"macro_f1"`
	// UnknownPredictions counts predictions for ids no dataset has.
	UnknownPredictions int               `json:"unknown_predictions"`
	PerDataset         map[string]Result `json:"per_dataset"`
}

// Evaluate scores predictions against datasets.
func Evaluate(datasets []Dataset, preds Predictions, opts Options) (Report, error) {
	if opts.Metric == "" {
		opts.Metric = MetricOfficial
	}
	if opts.Metric != MetricOfficial && opts.Metric != MetricSpan {
		return Report{}, fmt.Errorf("unknown metric %q (want official or span)", opts.Metric)
	}
	if opts.Parse == "" {
		opts.Parse = model.ParseOfficialMode
		if opts.Metric == MetricSpan {
			opts.Parse = model.ParseLenientMode
		}
	}
	if opts.Parse != model.ParseOfficialMode && opts.Parse != model.ParseLenientMode {
		return Report{}, fmt.Errorf("unknown parse mode %q (want official or lenient)", opts.Parse)
	}
	rep := Report{Metric: opts.Metric, Parse: opts.Parse, PerDataset: map[string]Result{}}
	seen := map[string]bool{}
	var total Counts
	for _, d := range datasets {
		if _, dup := rep.PerDataset[d.Name]; dup {
			return Report{}, fmt.Errorf("two datasets are named %q", d.Name)
		}
		var res Result
		var counts Counts
		for _, q := range d.Queries {
			if seen[q.ID] {
				return Report{}, fmt.Errorf("dataset %s: query id %q appears twice", d.Name, q.ID)
			}
			seen[q.ID] = true
			out, ok := preds[q.ID]
			if !ok {
				res.MissingPredictions++
			}
			predicted := model.Parse(opts.Parse, out)
			if opts.Scores != nil {
				predicted = keepScored(predicted, opts.Scores[q.ID], opts.MinScore)
			}
			if opts.Metric == MetricOfficial {
				counts.Add(ScoreOfficial(q.Gold, predicted))
				continue
			}
			c, ug, up := scoreQuerySpans(q, predicted)
			counts.Add(c)
			res.UnalignedGold += ug
			res.UnalignedPredicted += up
		}
		res.Queries = len(d.Queries)
		finish(&res, counts, opts.Metric)
		rep.PerDataset[d.Name] = res
		total.Add(counts)
		rep.Queries += res.Queries
		rep.MissingPredictions += res.MissingPredictions
		rep.UnalignedGold += res.UnalignedGold
		rep.UnalignedPredicted += res.UnalignedPredicted
		rep.MacroF1 += res.F1 / float64(len(datasets))
	}
	finish(&rep.Result, total, opts.Metric)
	for id := range preds {
		if !seen[id] {
			rep.UnknownPredictions++
		}
	}
	return rep, nil
}

func finish(r *Result, c Counts, m Metric) {
	r.Scores = c.Exact()
	if m == MetricOfficial {
		s := c.Official()
		r.Official = &s
	}
}

// scoreQuerySpans scores one query on spans. Gold strings without gold
// spans are aligned in the passage; gold and predicted mentions not found
// there are counted, and count as gold never matched and as wrong
// predictions.
func scoreQuerySpans(q Query, predicted []string) (c Counts, unalignedGold, unalignedPredicted int) {
	al := model.NewAligner(q.Text)
	gold := q.GoldSpans
	if gold == nil {
		gold = []model.Span{}
		for i, g := range q.Gold {
			if dupBefore(q.Gold, i) {
				continue
			}
			spans := al.Find(g)
			if len(spans) == 0 {
				unalignedGold++
			}
			gold = append(gold, spans...)
		}
	}
	var pred []model.Span
	for _, m := range predicted {
		spans := al.Find(m)
		if len(spans) == 0 {
			unalignedPredicted++
		}
		pred = append(pred, spans...)
	}
	c = ScoreSpans(gold, pred)
	c.Gold += unalignedGold
	c.Predicted += unalignedPredicted
	return c, unalignedGold, unalignedPredicted
}

func dupBefore(s []string, i int) bool {
	for _, x := range s[:i] {
		if x == s[i] {
			return true
		}
	}
	return false
}

// keepScored returns the mentions scored at least min; a mention without a
// score counts as 0.
func keepScored(mentions []string, qs QueryScores, min float64) []string {
	var out []string
	for _, m := range mentions {
		if qs.Mentions[m] >= min {
			out = append(out, m)
		}
	}
	return out
}
