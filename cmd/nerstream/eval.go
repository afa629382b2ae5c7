package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/nerstream/nerstream/eval"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
)

func runEval(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("eval", flag.ContinueOnError)
	data := fset.String("data", "", "UniNER JSON file, CoNLL file, or a folder of them (required)")
	predPath := fset.String("predictions", "", `JSON lines {"id": query id, "output": raw model text} (required)`)
	metric := fset.String("metric", "official", "official (UniNER's strict string metric) or span (strict on start, end, type)")
	parse := fset.String("parse", "", "how outputs are read: official or lenient (default: official for --metric official, lenient for span)")
	labelMap := fset.String("label-map", "", "CoNLL label=type pairs over the defaults, comma-separated; label= drops a label")
	modelPath := fset.String("model", "", "run this GGUF model (or synth:tiny) on the data instead of reading --predictions")
	threads := fset.Int("threads", 0, "with --model: CPU threads (default: all)")
	gpuLayers := fset.Int("gpu-layers", -1, "with --model: layers to offload to a GPU: -1 all, 0 none")
	maxNew := fset.Int("max-new-tokens", model.DefaultMaxNewTokens, "with --model: most tokens per answer")
	variant := fset.String("variant", "type", "with --model: prompt variant type, definition or supervised (the dataset's name goes into the supervised prompt)")
	batch := fset.Int("batch", 32, "with --model: passages per engine call")
	savePath := fset.String("save-predictions", "", "with --model: also write the raw answers here, as --predictions reads them")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("--data is required")
	}
	if (*predPath == "") == (*modelPath == "") {
		return usagef("one of --predictions and --model is required")
	}
	if *modelPath != "" && (*batch <= 0 || *maxNew <= 0) {
		return usagef("--batch and --max-new-tokens must be > 0")
	}
	opts := eval.Options{Metric: eval.Metric(*metric), Parse: model.ParseMode(*parse)}
	if opts.Metric != eval.MetricOfficial && opts.Metric != eval.MetricSpan {
		return usagef("--metric %q: want official or span", *metric)
	}
	if *parse != "" && opts.Parse != model.ParseOfficialMode && opts.Parse != model.ParseLenientMode {
		return usagef("--parse %q: want official or lenient", *parse)
	}
	labels, err := eval.ParseLabelMap(*labelMap)
	if err != nil {
		return usagef("--label-map: %v", err)
	}
	datasets, err := eval.Load(*data, eval.LoadOptions{LabelMap: labels})
	if err != nil {
		return inputError("--data", err)
	}
	var preds eval.Predictions
	if *modelPath != "" {
		opts := llama.DefaultOptions()
		opts.Threads = *threads
		opts.GPULayers = *gpuLayers
		eng, _, err := openModel(*modelPath, opts)
		if err != nil {
			return err
		}
		defer eng.Close()
		preds, err = predict(ctx, eng, datasets, model.Variant(*variant), *batch, *maxNew, s)
		if err != nil {
			return err
		}
		if *savePath != "" {
			if err := savePredictions(*savePath, datasets, preds); err != nil {
				return err
			}
		}
	} else {
		f, err := os.Open(*predPath)
		if err != nil {
			return inputError("--predictions", err)
		}
		defer f.Close()
		if preds, err = eval.ReadPredictions(f); err != nil {
			return inputError("--predictions "+*predPath, err)
		}
	}
	report, err := eval.Evaluate(datasets, preds, opts)
	if err != nil {
		return usageError{err}
	}
	if report.UnknownPredictions > 0 {
		fmt.Fprintf(s.err, "nerstream eval: warning: %d predictions name query ids that the data does not have\n", report.UnknownPredictions)
	}
	if report.MissingPredictions > 0 {
		fmt.Fprintf(s.err, "nerstream eval: warning: %d of %d queries have no prediction and count as []\n", report.MissingPredictions, report.Queries)
	}
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(report); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// inputError makes a bad or missing input file an exit-2 error; other
// failures to read stay runtime failures.
func inputError(what string, err error) error {
	var pe *fs.PathError
	if errors.Is(err, eval.ErrFormat) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.As(err, &pe) {
		return usagef("%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// predict asks the model every query of the data, the queries of one
// passage together so that the engine shares their prefix, and returns the
// raw answers by query id. A query whose prompt fails (too long for the
// context) gets no answer and counts as [].
func predict(ctx context.Context, eng model.Engine, datasets []eval.Dataset, variant model.Variant, batch, maxNew int, s streams) (eval.Predictions, error) {
	preds := eval.Predictions{}
	failed := 0
	for _, d := range datasets {
		tmpl, err := model.NewTemplate(model.PromptOptions{Variant: variant, Dataset: d.Name})
		if err != nil {
			return nil, usageError{err}
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
			out, err := eng.Generate(ctx, groups[lo:hi], model.GenerateOptions{MaxNewTokens: maxNew})
			if err != nil {
				return nil, fmt.Errorf("running the model on %s: %w", d.Name, err)
			}
			for g, comps := range out {
				for k, c := range comps {
					if c.Err != nil {
						failed++
						continue
					}
					preds[ids[lo+g][k]] = c.Text
				}
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(s.err, "nerstream eval: warning: %d queries failed in the engine (e.g. longer than the context) and count as []\n", failed)
	}
	return preds, nil
}

// savePredictions writes the answers in the --predictions format, in the
// data's order.
func savePredictions(path string, datasets []eval.Dataset, preds eval.Predictions) error {
	f, err := os.Create(path)
	if err != nil {
		return usagef("--save-predictions: %v", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, d := range datasets {
		for _, q := range d.Queries {
			if out, ok := preds[q.ID]; ok {
				if err := enc.Encode(map[string]string{"id": q.ID, "output": out}); err != nil {
					f.Close()
					return err
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
