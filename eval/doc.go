// Package eval scores UniNER predictions.
//
// Two metrics:
//   - [MetricOfficial] is the strict entity-level metric of UniNER's
//     evaluation code: per query, the gold and predicted lists are parsed
//     the same way (model.ParseOfficial), normalised ([Normalize]) and
//     deduplicated, and a prediction is correct when its normalised string
//     is in the gold list. Micro precision, recall and F1 sum over queries.
//     Its counts equal the official evaluator's, and [Counts.Official]
//     gives its smoothed figures to the last digit.
//   - [MetricSpan] is strict over (start, end, type), for offset outputs.
//
// Readers turn UniNER conversation JSON ([ReadUniNER]) and CoNLL BIO files
// ([ReadCoNLL]) into [Dataset]s of [Query]s; [Load] takes a file or folder
// and finds the format from the content.
//
// Scored predictions ([ReadScoredPredictions], [Predict]) carry each
// answer's mention scores; [Sweep] scores them at thresholds under both
// metrics, as model.min_score filters (the point at 0 equals [Evaluate]),
// with a reliability diagram and its expected calibration error, and
// [WritePlot] draws both as one SVG.
package eval
