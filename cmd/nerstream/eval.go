package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/nerstream/nerstream/eval"
	"github.com/nerstream/nerstream/model"
)

func runEval(_ context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("eval", flag.ContinueOnError)
	data := fset.String("data", "", "UniNER JSON file, CoNLL file, or a folder of them (required)")
	predPath := fset.String("predictions", "", `JSON lines {"id": query id, "output": raw model text} (required)`)
	metric := fset.String("metric", "official", "official (UniNER's strict string metric) or span (strict on start, end, type)")
	parse := fset.String("parse", "", "how outputs are read: official or lenient (default: official for --metric official, lenient for span)")
	labelMap := fset.String("label-map", "", "CoNLL label=type pairs over the defaults, comma-separated; label= drops a label")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *data == "" {
		return usagef("--data is required")
	}
	if *predPath == "" {
		return usagef("--predictions is required (running a model with --model comes with the llama engine)")
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
	f, err := os.Open(*predPath)
	if err != nil {
		return inputError("--predictions", err)
	}
	defer f.Close()
	preds, err := eval.ReadPredictions(f)
	if err != nil {
		return inputError("--predictions "+*predPath, err)
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
