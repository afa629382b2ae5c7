package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/shareddata"
)

// uninerData is the folder of the shared data (../shared/data beside the
// checkout; see its README.md) that holds UniNER's six zero-shot test sets.
const uninerData = "uniner"

var uninerDataFiles = []string{
	"CrossNER_AI.json",
	"CrossNER_literature.json",
	"CrossNER_music.json",
	"CrossNER_politics.json",
	"CrossNER_science.json",
	"mit-restaurant.json",
}

// rawGold is one record of a UniNER test file: its id and its raw gold
// answer (the last turn), decoded as Python's json module decodes it.
type rawGold struct{ id, gold string }

func readRawGolds(t *testing.T, path string) []rawGold {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []conversation
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := make([]rawGold, len(recs))
	for i, r := range recs {
		if len(r.Conversations) != 4 {
			t.Fatalf("%s: record %d has %d turns, want 4", path, i, len(r.Conversations))
		}
		out[i] = rawGold{string(r.ID), string(r.Conversations[3].Value)}
	}
	return out
}

// perturbKinds is the number of ways perturb changes a gold answer. It is
// prime, and so shares no factor with the number of entity types of any
// test set: each type meets every perturbation.
const perturbKinds = 17

// perturb turns the gold answer of the index-th query of a test set into an
// odd model output, by string operations only (gold answers are
// json.dumps'd lists, ASCII with \u escapes). Most of them exercise a corner
// of the official parser or of normalize_answer.
func perturb(index int, gold string) string {
	items := splitGoldItems(gold) // the items' JSON literals, quotes included
	join := func(items []string) string { return "[" + strings.Join(items, ", ") + "]" }
	switch index % perturbKinds {
	case 0: // unchanged
		return gold
	case 1: // leading space: get_response strips it
		return " " + gold
	case 2: // chatter before the list: the official parser reads nothing
		return "Sure! The entities are: " + gold
	case 3: // the first item dropped
		if len(items) == 0 {
			return gold
		}
		return join(items[1:])
	case 4: // the first item upper-cased (\u escapes kept valid)
		if len(items) == 0 {
			return gold
		}
		items[0] = strings.ReplaceAll(strings.ToUpper(items[0]), `\U`, `\u`)
		items[0] = strings.NewReplacer(`\N`, `\n`, `\T`, `\t`, `\R`, `\r`, `\B`, `\b`, `\F`, `\f`).Replace(items[0])
		return join(items)
	case 5: // an extra wrong item
		return join(append(items, fmt.Sprintf(`"Zorblax unit %d"`, index%5)))
	case 6: // one item per line: the official regex stops at the newline
		return "[" + strings.Join(items, ",\n") + "]"
	case 7: // nothing found
		return "[]"
	case 8: // broken JSON: the closing bracket dropped
		return strings.TrimSuffix(gold, "]")
	case 9: // a number item: the whole list is lost
		return join(append(items, "42"))
	case 10: // the role marker of the prompt left in: get_response cuts it
		return "ASSISTANT: " + gold
	case 11: // every item twice: repeats count once
		return join(append(items, items...))
	case 12: // each item with "the" before it, and a trailing period
		for i, it := range items {
			items[i] = `"the ` + it[1:len(it)-1] + `."`
		}
		return join(items)
	case 13: // punctuation stripped and white space doubled in the items
		for i, it := range items {
			body := strings.NewReplacer("-", "", ".", "", ",", "", "'", "", "(", "", ")", "", " ", "  ").Replace(it[1 : len(it)-1])
			items[i] = `"` + body + `"`
		}
		return join(items)
	case 14: // chatter after the list, and a second list
		return gold + "\nThese are all of them. [\"Zorblax\"]"
	case 15: // a Python list with single quotes: json.loads fails
		return strings.ReplaceAll(gold, `"`, `'`)
	default: // Unicode corners of str.lower, repeats and lone surrogates
		return join(append(items,
			`"ΟΔΟΣ"`, `"οδος"`, // final sigma: one item
			`"İstanbul"`, `"i̇stanbul"`, // U+0130 lower-cases to "i̇": one item
			`"\ud800x"`, `"\udc00x"`, `"\ud800x"`, // two distinct lone surrogates
			`"X\u001cY"`, `"x y"`, // U+001C is white space to str.split: one item
		))
	}
}

// splitGoldItems splits a json.dumps'd list of strings into its items' JSON
// literals. It relies on ", " not occurring inside an item as `", "`, which
// holds for the test sets (checked by the test: the items rejoin to gold).
func splitGoldItems(gold string) []string {
	body := strings.TrimSuffix(strings.TrimPrefix(gold, "["), "]")
	if body == "" {
		return nil
	}
	parts := strings.Split(body, `", "`)
	for i := range parts {
		if i > 0 {
			parts[i] = `"` + parts[i]
		}
		if i < len(parts)-1 {
			parts[i] += `"`
		}
	}
	return parts
}

// uninerExpected is testdata/official/uniner_expected.json: per test set,
// the official evaluator's counts and smoothed figures for the perturbed
// predictions.
type uninerExpected struct {
	Counts
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// TestUniNERDataOfficial checks `nerstream eval` against the official
// evaluator to the last digit on UniNER's six zero-shot test sets.
//
// testdata/official/uniner_expected.json is made by
// testdata/official/make_goldens.py (see the README.md there), which
// reproduces the official evaluator (universal-ner/universal-ner@4e454fec:
// parser, normalize_answer and NEREvaluator of src/eval/evaluate.py,
// get_response of src/utils.py) under Python 3.11:
//  1. NERSTREAM_WRITE_PERTURBED=/tmp/perturbed go test ./eval -run TestWritePerturbedPredictions
//     writes, for each test set, /tmp/perturbed/NAME.jsonl with one
//     {"id": …, "output": perturb(i, gold)} per record, in file order;
//  2. python3 eval/testdata/official/make_goldens.py --perturbed /tmp/perturbed
//     scores preds = get_response(outputs) against
//     golds = [record["conversations"][-1]["value"]] per test set and
//     writes the counts and NEREvaluator's smoothed figures (floats as
//     Python's repr).
//
// TestGoldensScript checks that the committed file is what step 2 gives.
func TestUniNERDataOfficial(t *testing.T) {
	data := shareddata.Dir(t, uninerData)
	raw, err := os.ReadFile(filepath.Join("testdata", "official", "uniner_expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]uninerExpected
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}
	if len(expected) != len(uninerDataFiles) {
		t.Fatalf("uniner_expected.json has %d test sets, want %d", len(expected), len(uninerDataFiles))
	}
	for _, file := range uninerDataFiles {
		name := strings.TrimSuffix(file, ".json")
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(data, file)
			ds, err := Load(path, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			golds := readRawGolds(t, path)
			if len(ds) != 1 || ds[0].Name != name || len(ds[0].Queries) != len(golds) {
				t.Fatalf("Load gave %d data sets; want one named %s with %d queries", len(ds), name, len(golds))
			}
			var jsonl bytes.Buffer
			perfect, perturbed := Predictions{}, Predictions{}
			for i, g := range golds {
				if q := ds[0].Queries[i]; q.ID != g.id {
					t.Fatalf("query %d has id %q, the file %q", i, q.ID, g.id)
				}
				if items := splitGoldItems(g.gold); g.gold != "[]" && "["+strings.Join(items, ", ")+"]" != g.gold {
					t.Fatalf("%s: splitGoldItems(%q) = %q does not rejoin", g.id, g.gold, items)
				}
				perfect[g.id] = g.gold
				perturbed[g.id] = perturb(i, g.gold)
				line, _ := json.Marshal(map[string]string{"id": g.id, "output": perturbed[g.id]})
				jsonl.Write(append(line, '\n'))
			}

			rep, err := Evaluate(ds, perfect, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r := rep.PerDataset[name]; r.F1 != 1 || r.Precision != 1 || r.Recall != 1 || r.Correct != r.Gold || r.Gold == 0 {
				t.Errorf("gold as predictions: %+v, want exact scores of 1", r.Scores)
			}

			// The predictions also go through ReadPredictions, as
			// `nerstream eval --predictions` reads them.
			read, err := ReadPredictions(&jsonl)
			if err != nil {
				t.Fatal(err)
			}
			if len(read) != len(perturbed) {
				t.Fatalf("ReadPredictions read %d predictions, want %d", len(read), len(perturbed))
			}
			for id, out := range perturbed {
				if read[id] != out {
					t.Fatalf("%s: ReadPredictions read %q, want %q", id, read[id], out)
				}
			}
			rep, err = Evaluate(ds, read, Options{Metric: MetricOfficial})
			if err != nil {
				t.Fatal(err)
			}
			got := rep.PerDataset[name]
			want, ok := expected[name]
			if !ok {
				t.Fatalf("uniner_expected.json has no %s", name)
			}
			if got.Counts != want.Counts {
				t.Errorf("counts %+v, the official evaluator %+v", got.Counts, want.Counts)
			}
			if got.Official == nil {
				t.Fatal("no official figures")
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"precision", got.Official.Precision, want.Precision},
				{"recall", got.Official.Recall, want.Recall},
				{"f1", got.Official.F1, want.F1},
			} {
				if !sameFloat(f.got, f.want) {
					t.Errorf("official %s = %v, the official evaluator %v", f.name, f.got, f.want)
				}
			}
			if got.MissingPredictions != 0 || rep.UnknownPredictions != 0 {
				t.Errorf("missing %d, unknown %d predictions; want none", got.MissingPredictions, rep.UnknownPredictions)
			}
		})
	}
}

// TestWritePerturbedPredictions writes the perturbed predictions that
// uniner_expected.json scores, for the Python reference, when
// NERSTREAM_WRITE_PERTURBED names a folder. It does nothing otherwise.
func TestWritePerturbedPredictions(t *testing.T) {
	dir := os.Getenv("NERSTREAM_WRITE_PERTURBED")
	if dir == "" {
		t.Skip("set NERSTREAM_WRITE_PERTURBED to a folder to write the perturbed predictions")
	}
	writePerturbed(t, shareddata.Dir(t, uninerData), dir)
}

// writePerturbed writes, for each test set of the folder data, dir/NAME.jsonl with one
// {"id": …, "output": perturb(i, gold)} per record, in file order: the
// predictions that uniner_expected.json scores.
func writePerturbed(t *testing.T, data, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, file := range uninerDataFiles {
		var out bytes.Buffer
		for i, g := range readRawGolds(t, filepath.Join(data, file)) {
			line, err := json.Marshal(map[string]string{"id": g.id, "output": perturb(i, g.gold)})
			if err != nil {
				t.Fatal(err)
			}
			out.Write(append(line, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(file, ".json")+".jsonl"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
