package eval

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/nerstream/nerstream/model"
)

// PredictOptions configure [Predict]. Zero values take the defaults.
type PredictOptions struct {
	// Variant is the prompt variant; the supervised variant puts each
	// dataset's name before the text. Default: the type variant.
	Variant model.Variant
	// Batch is the passages of one engine call. Default: 32.
	Batch int
	// MaxNewTokens bounds each answer. Default: 256, the official
	// decoding's.
	MaxNewTokens int
}

// Predict asks the engine every query of the datasets, the queries of one
// passage together so that the engine shares their prefix, and returns the
// raw answers by query id, as [ReadPredictions] would read them. A query
// whose prompt the engine refuses (too long for the context) gets no answer,
// counts as [] in [Evaluate], and is counted in failed. Scores holds the
// scores of each answer whose engine gave token log-probabilities.
func Predict(ctx context.Context, eng model.Engine, datasets []Dataset, opts PredictOptions) (preds Predictions, scores PredictionScores, failed int, err error) {
	batch := cmp.Or(opts.Batch, 32)
	if batch < 0 || opts.MaxNewTokens < 0 {
		return nil, nil, 0, fmt.Errorf("eval: negative batch or max new tokens")
	}
	preds, scores = Predictions{}, PredictionScores{}
	for _, d := range datasets {
		tmpl, err := model.NewTemplate(model.PromptOptions{Variant: opts.Variant, Dataset: d.Name})
		if err != nil {
			return nil, nil, 0, fmt.Errorf("eval: %w", err)
		}
		// One group per passage, in order of first appearance.
		var groups []model.PromptGroup
		var ids [][]string
		at := map[string]int{}
		for _, q := range d.Queries {
			g, ok := at[q.Text]
			if !ok {
				g = len(groups)
				at[q.Text] = g
				groups = append(groups, model.PromptGroup{})
				ids = append(ids, nil)
			}
			groups[g].Prompts = append(groups[g].Prompts, tmpl.Prompt(q.Text, q.Type))
			ids[g] = append(ids[g], q.ID)
		}
		for lo := 0; lo < len(groups); lo += batch {
			hi := min(lo+batch, len(groups))
			out, err := eng.Generate(ctx, groups[lo:hi], model.GenerateOptions{MaxNewTokens: opts.MaxNewTokens})
			if err != nil {
				return nil, nil, 0, fmt.Errorf("running the model on %s: %w", d.Name, err)
			}
			for g, comps := range out {
				for k, c := range comps {
					if c.Err != nil {
						failed++
						continue
					}
					id := ids[lo+g][k]
					preds[id] = c.Text
					if m, e, ok := model.AnswerScores(c.Text, c.Tokens); ok {
						if len(m) == 0 {
							m = nil // as a saved "[]" reads back
						}
						scores[id] = QueryScores{Mentions: m, Empty: e}
					}
				}
			}
		}
	}
	return preds, scores, failed, nil
}

// WritePredictions writes the answers as JSON lines {"id", "output"}, with
// "scores" and "empty_score" where scores has them, the form
// [ReadScoredPredictions] reads, in the datasets' order.
func WritePredictions(w io.Writer, datasets []Dataset, preds Predictions, scores PredictionScores) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, d := range datasets {
		for _, q := range d.Queries {
			if out, ok := preds[q.ID]; ok {
				rec := struct {
					ID     string `json:"id"`
					Output string `json:"output"`
					QueryScores
				}{q.ID, out, scores[q.ID]}
				if err := enc.Encode(rec); err != nil {
					return err
				}
			}
		}
	}
	return bw.Flush()
}
