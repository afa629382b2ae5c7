package eval

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
)

func mustCoNLL(t *testing.T, name, in string) Dataset {
	t.Helper()
	d, err := ReadCoNLL(strings.NewReader(in), name, DefaultLabelMap())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustUniNER(t *testing.T, name, in string) Dataset {
	t.Helper()
	d, err := ReadUniNER(strings.NewReader(in), name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// conllSmall is "Ada Lovelace met Babbage in Paris and Paris ." with two
// persons and the first Paris a location.
const conllSmall = "Ada\tB-PER\nLovelace\tI-PER\nmet\tO\nBabbage\tB-PER\nin\tO\nParis\tB-LOC\nand\tO\nParis\tO\n.\tO\n"

func TestEvaluateSpanCoNLL(t *testing.T) {
	d := mustCoNLL(t, "small", conllSmall)
	preds := Predictions{
		// Lenient parsing (the span metric's default) reads past the
		// chatter. "Lovelace" aligns inside the gold span: wrong.
		// "Charles" is not in the text: no span, one wrong prediction.
		"small/0/person": `Here they are: ["Ada Lovelace", "Lovelace", "Charles", "Ada Lovelace"]`,
		// Every occurrence is a predicted span: one is gold.
		"small/0/location": `["Paris"]`,
	}
	rep, err := Evaluate([]Dataset{d}, preds, Options{Metric: MetricSpan})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metric != MetricSpan || rep.Parse != model.ParseLenientMode {
		t.Errorf("metric %q parse %q, want span and lenient", rep.Metric, rep.Parse)
	}
	want := Counts{Correct: 2, Predicted: 5, Gold: 3}
	if rep.Counts != want || rep.PerDataset["small"].Counts != want {
		t.Errorf("counts %+v (dataset %+v), want %+v", rep.Counts, rep.PerDataset["small"].Counts, want)
	}
	if rep.Precision != 0.4 || rep.Recall != 2.0/3 || math.Abs(rep.F1-0.5) > 1e-15 {
		t.Errorf("scores %+v", rep.Scores)
	}
	if rep.Official != nil || rep.Queries != 2 || rep.MissingPredictions != 0 || rep.UnalignedGold != 0 || rep.UnalignedPredicted != 1 {
		t.Errorf("report %+v", rep)
	}

	// The official parser on the same outputs reads no list after chatter.
	rep, err = Evaluate([]Dataset{d}, preds, Options{Metric: MetricSpan, Parse: model.ParseOfficialMode})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Correct: 1, Predicted: 2, Gold: 3}); rep.Counts != want {
		t.Errorf("official parsing: counts %+v, want %+v", rep.Counts, want)
	}
}

func TestEvaluateSpanUniNER(t *testing.T) {
	// Gold strings are aligned in the passage: "Ada" twice (listed twice,
	// counted by occurrence), "Babbage" once, "Zed" nowhere.
	d := mustUniNER(t, "u", conv("q", "Text: Ada met Ada and Babbage .", "person", `["Ada", "Babbage", "Ada", "Zed"]`))
	rep, err := Evaluate([]Dataset{d}, Predictions{"q": `["Ada", "met Ada"]`}, Options{Metric: MetricSpan})
	if err != nil {
		t.Fatal(err)
	}
	// Predicted spans: Ada ×2 (gold), "met Ada" (not gold).
	want := Counts{Correct: 2, Predicted: 3, Gold: 4}
	if rep.Counts != want || rep.UnalignedGold != 1 || rep.PerDataset["u"].UnalignedGold != 1 {
		t.Errorf("counts %+v, unaligned %d; want %+v, 1", rep.Counts, rep.UnalignedGold, want)
	}
}

func TestEvaluateOfficial(t *testing.T) {
	a := mustUniNER(t, "a", "["+conv("a1", "Text: Ada met Babbage.", "person", `["Ada", "Babbage"]`)+","+
		conv("a2", "Text: In Paris.", "location", `["Paris"]`)+","+
		conv("a3", "Text: Nothing here.", "person", `[]`)+"]")
	b := mustCoNLL(t, "b", conllSmall)
	preds := Predictions{
		"a1":              `["the ADA", "Lovelace"]`,
		"a3":              "ASSISTANT: []",
		"b/0/person":      ` ["Ada Lovelace", "Babbage", "ada lovelace"]`,
		"b/0/location":    `Sure! ["Paris"]`,
		"nowhere":         `["x"]`,
		"b/1/person":      `[]`,
		"a1/0":            `[]`,
		"b/0/nonexistent": `[]`,
	}
	rep, err := Evaluate([]Dataset{a, b}, preds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metric != MetricOfficial || rep.Parse != model.ParseOfficialMode {
		t.Errorf("metric %q parse %q, want official and official", rep.Metric, rep.Parse)
	}
	ra, rb := rep.PerDataset["a"], rep.PerDataset["b"]
	if want := (Counts{Correct: 1, Predicted: 2, Gold: 3}); ra.Counts != want {
		t.Errorf("a: counts %+v, want %+v", ra.Counts, want)
	}
	if want := (Counts{Correct: 2, Predicted: 2, Gold: 3}); rb.Counts != want {
		t.Errorf("b: counts %+v, want %+v", rb.Counts, want)
	}
	if ra.MissingPredictions != 1 || rb.MissingPredictions != 0 || rep.MissingPredictions != 1 {
		t.Errorf("missing predictions %d, %d, %d; want 1, 0, 1", ra.MissingPredictions, rb.MissingPredictions, rep.MissingPredictions)
	}
	if rep.UnknownPredictions != 4 {
		t.Errorf("unknown predictions %d, want 4", rep.UnknownPredictions)
	}
	if ra.Queries != 3 || rb.Queries != 2 || rep.Queries != 5 {
		t.Errorf("queries %d, %d, %d", ra.Queries, rb.Queries, rep.Queries)
	}
	if want := (Counts{Correct: 3, Predicted: 4, Gold: 6}); rep.Counts != want {
		t.Errorf("total counts %+v, want %+v", rep.Counts, want)
	}
	if rep.Precision != 0.75 || rep.Recall != 0.5 || rep.F1 != 0.6 {
		t.Errorf("total scores %+v", rep.Scores)
	}
	if want := (ra.F1 + rb.F1) / 2; rep.MacroF1 != want {
		t.Errorf("macro F1 %v, want %v", rep.MacroF1, want)
	}
	for name, r := range map[string]Result{"a": ra, "b": rb, "total": rep.Result} {
		if r.Official == nil || !sameFloat(r.Official.F1, r.Counts.Official().F1) || r.Official.F1 >= r.F1 {
			t.Errorf("%s: official figures %+v for exact %+v", name, r.Official, r.Scores)
		}
	}

	// Gold as predictions: exactly 1, and the official figures a little under.
	perfect := Predictions{"a1": `["Ada", "Babbage"]`, "a2": `["Paris"]`, "a3": "[]"}
	rep, err = Evaluate([]Dataset{a}, perfect, Options{Metric: MetricOfficial})
	if err != nil {
		t.Fatal(err)
	}
	if rep.F1 != 1 || rep.Precision != 1 || rep.Recall != 1 || rep.MacroF1 != 1 {
		t.Errorf("perfect: %+v, macro %v", rep.Scores, rep.MacroF1)
	}
	if f := rep.Official.F1; !(f < 1 && f > 1-1e-10) {
		t.Errorf("perfect: official F1 %v", f)
	}

	// Nothing predicted: zeros, not NaN.
	rep, err = Evaluate([]Dataset{a}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.F1 != 0 || rep.Precision != 0 || rep.Official.F1 != 0 || rep.MissingPredictions != 3 || rep.Gold != 3 {
		t.Errorf("no predictions: %+v", rep.Result)
	}
}

func TestEvaluateErrors(t *testing.T) {
	a := mustUniNER(t, "a", conv("q1", "Text: t", "person", `[]`))
	b := mustUniNER(t, "b", conv("q1", "Text: u", "person", `[]`))
	tests := []struct {
		name     string
		datasets []Dataset
		opts     Options
		want     string
	}{
		{"query id in two datasets", []Dataset{a, b}, Options{}, `dataset b: query id "q1" appears twice`},
		{"two datasets of one name", []Dataset{a, a}, Options{}, `two datasets are named "a"`},
		{"unknown metric", []Dataset{a}, Options{Metric: "fuzzy"}, `unknown metric "fuzzy"`},
		{"unknown parse mode", []Dataset{a}, Options{Parse: "guess"}, `unknown parse mode "guess"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Evaluate(tt.datasets, Predictions{}, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestScoreSpans(t *testing.T) {
	gold := []model.Span{sp(0, 3), sp(5, 9), sp(0, 3)}
	pred := []model.Span{sp(5, 9), sp(5, 9), sp(0, 4), sp(10, 12)}
	if got, want := ScoreSpans(gold, pred), (Counts{Correct: 1, Predicted: 3, Gold: 2}); got != want {
		t.Errorf("ScoreSpans = %+v, want %+v", got, want)
	}
	if got := ScoreSpans(nil, nil); got != (Counts{}) {
		t.Errorf("ScoreSpans(nil, nil) = %+v", got)
	}
}

func TestReadPredictions(t *testing.T) {
	in := "{\"id\": \"a\", \"output\": \"[\\\"Ada\\\"]\"}\r\n\n  \n" +
		`{"output": "[\"\\ud800\", \"\\udc00\"] \ud83d\ude00", "id": "b", "extra": 1}` + "\n" +
		`{"id": "c", "output": ""}`
	p, err := ReadPredictions(strings.NewReader("\ufeff" + in))
	if err != nil {
		t.Fatal(err)
	}
	want := Predictions{"a": `["Ada"]`, "b": `["\ud800", "\udc00"] 😀`, "c": ""}
	if len(p) != len(want) {
		t.Fatalf("read %q, want %q", p, want)
	}
	for id, out := range want {
		if p[id] != out {
			t.Errorf("%s: %q, want %q", id, p[id], out)
		}
	}
	// The lone surrogates inside the output stay two distinct items.
	if items := model.ParseOfficial(p["b"]); len(OfficialItems(items)) != 2 {
		t.Errorf("items %q: want two distinct lone surrogates", items)
	}

	for _, tt := range []struct{ name, in, want string }{
		{"bad JSON", `{"id": "a", "output": "[]"}` + "\n\n" + `{"id": "b", "output": "[]"`, "line 3:"},
		{"not an object", `["a", "[]"]`, "line 1:"},
		{"no output", `{"id": "a", "output": "[]"}` + "\n" + `{"id": "b"}`, `line 2: want {"id": …, "output": …}`},
		{"null output", `{"id": "a", "output": null}`, "line 1:"},
		{"no id", `{"output": "[]"}`, "line 1: want"},
		{"output not a string", `{"id": "a", "output": ["Ada"]}`, "line 1:"},
		{"bad escape in output", `{"id": "a", "output": "\x"}`, "line 1:"},
		{"repeated id", `{"id": "a", "output": "[]"}` + "\n" + `{"id": "b", "output": "[]"}` + "\n" + `{"id": "a", "output": "[\"x\"]"}`, `line 3: a second prediction for id "a"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPredictions(strings.NewReader(tt.in))
			if err == nil || !errors.Is(err, ErrPredictions) || errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) ||
				!strings.HasPrefix(err.Error(), "bad predictions file: ") {
				t.Errorf("error %v, want an ErrPredictions (not a bad dataset file) with %q", err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b_conll.txt"), "\ufeffEU\tB-ORG\nrejects\tO\n")
	writeFile(t, filepath.Join(dir, "a_list.json"), "\n ["+conv("x", "Text: Ada.", "person", `["Ada"]`)+"]")
	writeFile(t, filepath.Join(dir, "c_lines.JSONL"), "\ufeff"+conv("y", "Text: Paris.", "location", `["Paris"]`)+"\n")
	writeFile(t, filepath.Join(dir, "d.conll"), "Ada B-PER\n")
	writeFile(t, filepath.Join(dir, "notes.md"), "not a dataset")
	writeFile(t, filepath.Join(dir, "sub", "e.json"), "not read")
	ds, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "a_list,b_conll,c_lines,d" {
		t.Fatalf("datasets %q, want a_list, b_conll, c_lines, d", names)
	}
	if q := ds[0].Queries[0]; q.ID != "x" || q.GoldSpans != nil || q.Gold[0] != "Ada" {
		t.Errorf("a_list: %+v", q)
	}
	if q := ds[1].Queries[0]; q.ID != "b_conll/0/organization" || q.Text != "EU rejects" || len(q.GoldSpans) != 1 {
		t.Errorf("b_conll: %+v", q)
	}
	if q := ds[2].Queries[0]; q.ID != "y" || q.Gold[0] != "Paris" {
		t.Errorf("c_lines: %+v", q)
	}

	// One file; a label map for CoNLL.
	ds, err = Load(filepath.Join(dir, "b_conll.txt"), LoadOptions{LabelMap: map[string]string{"org": "union"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Name != "b_conll" || ds[0].Queries[0].Type != "union" {
		t.Errorf("one file with a label map: %+v", ds)
	}

	// Errors.
	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "README.md"), "# nothing")
	if _, err := Load(empty, LoadOptions{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "no dataset files") {
		t.Errorf("a folder without dataset files: %v", err)
	}
	for _, content := range []string{"", " \n\t\r\n", "\ufeff\n"} {
		writeFile(t, filepath.Join(empty, "empty.json"), content)
		if _, err := Load(filepath.Join(empty, "empty.json"), LoadOptions{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "empty.json") || !strings.Contains(err.Error(), "the file is empty") {
			t.Errorf("empty file %q: %v", content, err)
		}
	}
	writeFile(t, filepath.Join(empty, "bad.txt"), "EU\tB-ORG\nrejects\n")
	if _, err := Load(empty, LoadOptions{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "bad.txt: ") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad file in a folder: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "absent.json"), LoadOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}
