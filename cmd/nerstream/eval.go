package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/eval"
	"github.com/nerstream/nerstream/model"
)

func runEval(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("eval", flag.ContinueOnError)
	data := fset.String("data", "", "UniNER JSON file, CoNLL file, or a folder of them (required)")
	predPath := fset.String("predictions", "", `JSON lines {"id": query id, "output": raw model text} (required)`)
	metric := fset.String("metric", "official", "official (UniNER's strict string metric) or span (strict on start, end, type)")
	parse := fset.String("parse", "", "how outputs are read: official or lenient (default: official for --metric official, lenient for span)")
	labelMap := fset.String("label-map", "", "CoNLL label=type pairs over the defaults, comma-separated; label= drops a label")
	ef := engines.Flags{MaxNewTokens: model.DefaultMaxNewTokens}
	ef.Register(fset, "run this model on the data instead of reading --predictions")
	variant := fset.String("variant", "type", "with --model: prompt variant type, definition or supervised (the dataset's name goes into the supervised prompt)")
	batch := fset.Int("batch", 32, "with --model: passages per engine call")
	savePath := fset.String("save-predictions", "", "with --model: also write the raw answers and their scores here, as --predictions reads them")
	thresholds := fset.String("thresholds", "", "comma-separated score thresholds in [0, 1]: precision, recall and F1 at each, under both metrics (needs scored predictions)")
	sweep := fset.Bool("sweep", false, "--thresholds 0,0.05,…,1")
	plot := fset.String("plot", "", "with --thresholds or --sweep (implied): also draw the precision-recall curve and the reliability diagram in this SVG file")
	calibrate := fset.String("calibrate", "", "fit a monotone map (isotonic) from raw score to observed precision on the scored predictions, and write it here as JSON for model.calibration")
	format := fset.String("format", "json", "with --thresholds or --sweep: json or table")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	useModel := ef.Model != "" || ef.Engine == "openai"
	if *data == "" {
		return usagef("--data is required")
	}
	if (*predPath == "") == !useModel {
		return usagef("one of --predictions and --model is required")
	}
	if useModel && (*batch <= 0 || ef.MaxNewTokens <= 0) {
		return usagef("--batch and --max-new-tokens must be > 0")
	}
	switch model.Variant(*variant) {
	case model.VariantType, model.VariantDefinition, model.VariantSupervised:
	default:
		return usagef("--variant %q: want type, definition or supervised", *variant)
	}
	opts := eval.Options{Metric: eval.Metric(*metric), Parse: model.ParseMode(*parse)}
	if opts.Metric != eval.MetricOfficial && opts.Metric != eval.MetricSpan {
		return usagef("--metric %q: want official or span", *metric)
	}
	if *parse != "" && opts.Parse != model.ParseOfficialMode && opts.Parse != model.ParseLenientMode {
		return usagef("--parse %q: want official or lenient", *parse)
	}
	var grid []float64
	switch {
	case *thresholds != "" && *sweep:
		return usagef("--thresholds and --sweep: give one")
	case *thresholds != "":
		g, err := eval.ParseThresholds(*thresholds)
		if err != nil {
			return usagef("--thresholds: %v", err)
		}
		grid = g
	case *sweep || *plot != "":
		grid = eval.DefaultThresholds()
	}
	if *format != "json" && *format != "table" {
		return usagef("--format %q: want json or table", *format)
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
	var scores eval.PredictionScores
	if useModel {
		if preds, scores, err = predict(ctx, s, &ef, datasets, eval.PredictOptions{Variant: model.Variant(*variant), Batch: *batch, MaxNewTokens: ef.MaxNewTokens}, *savePath); err != nil {
			return err
		}
	} else {
		f, err := os.Open(*predPath)
		if err != nil {
			return inputError("--predictions", err)
		}
		defer f.Close()
		if preds, scores, err = eval.ReadScoredPredictions(f); err != nil {
			return inputError("--predictions "+*predPath, err)
		}
	}
	if *calibrate != "" {
		if err := writeCalibration(*calibrate, datasets, preds, scores); err != nil {
			return err
		}
		if grid == nil {
			return nil
		}
	}
	if grid != nil {
		return writeSweep(s, datasets, preds, scores, grid, *plot, *format)
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
	return writeJSON(s.out, report)
}

// predict runs the model of the flags on the datasets, and saves the
// answers when save is set.
func predict(ctx context.Context, s streams, ef *engines.Flags, datasets []eval.Dataset, opts eval.PredictOptions, save string) (eval.Predictions, eval.PredictionScores, error) {
	m, err := openModel(ctx, ef, s.err, nil)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	preds, scores, failed, err := eval.Predict(ctx, m.Engine, datasets, opts)
	if err != nil {
		return nil, nil, err
	}
	if failed > 0 {
		fmt.Fprintf(s.err, "nerstream eval: warning: %d queries failed in the engine (e.g. longer than the context) and count as []\n", failed)
	}
	if save == "" {
		return preds, scores, nil
	}
	f, err := os.Create(save)
	if err != nil {
		return nil, nil, usagef("--save-predictions: %v", err)
	}
	err = eval.WritePredictions(f, datasets, preds, scores)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return preds, scores, err
}

// writeSweep prints the sweep of the predictions over grid, and draws it
// in plot when set.
func writeSweep(s streams, datasets []eval.Dataset, preds eval.Predictions, scores eval.PredictionScores, grid []float64, plot, format string) error {
	rep, err := eval.Sweep(datasets, preds, scores, grid)
	if err != nil {
		return usageError{err}
	}
	if rep.Unscored > 0 {
		fmt.Fprintf(s.err, "nerstream eval: warning: %d predicted mentions have no score and count as 0\n", rep.Unscored)
	}
	if plot != "" {
		f, err := os.Create(plot)
		if err != nil {
			return usagef("--plot: %v", err)
		}
		err = eval.WritePlot(f, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if format == "table" {
		return eval.WriteTable(s.out, rep)
	}
	return writeJSON(s.out, rep)
}

// inputError makes a bad or missing input file an exit-2 error; other
// failures to read stay runtime failures.
func inputError(what string, err error) error {
	var pe *fs.PathError
	if errors.Is(err, eval.ErrFormat) || errors.Is(err, eval.ErrPredictions) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.As(err, &pe) {
		return usagef("%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeCalibration fits the calibration of the scored predictions and
// writes it to path.
func writeCalibration(path string, datasets []eval.Dataset, preds eval.Predictions, scores eval.PredictionScores) error {
	c, err := eval.Calibrate(datasets, preds, scores)
	if err != nil {
		return usageError{err}
	}
	f, err := os.Create(path)
	if err != nil {
		return usagef("--calibrate: %v", err)
	}
	err = writeJSON(f, c)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--calibrate: %w", err)
	}
	return nil
}
