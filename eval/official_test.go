package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nerstream/nerstream/model"
)

// officialCase is one line of testdata/official/cases.jsonl (see its
// README.md): outputs of UniNER's official evaluator under Python.
type officialCase struct {
	Name      string
	Gold      string
	Pred      string
	GoldItems []string
	PredItems []string
	Counts    Counts
}

// pyUnquote decodes a JSON string literal as Python's json module does,
// keeping lone surrogates (as WTF-8) instead of turning them into U+FFFD as
// encoding/json would.
func pyUnquote(t *testing.T, where string, raw json.RawMessage) string {
	t.Helper()
	s, err := model.UnquoteJSON(string(bytes.TrimSpace(raw)))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return s
}

func pyStringList(t *testing.T, where string, raw json.RawMessage) []string {
	t.Helper()
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		out = append(out, pyUnquote(t, where, e))
	}
	return out
}

func readOfficialCases(t *testing.T) []officialCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "official", "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []officialCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("cases.jsonl line %d: %v", n, err)
		}
		for _, k := range []string{"name", "gold", "pred", "gold_items", "pred_items", "correct", "predicted", "gold_count"} {
			if rec[k] == nil {
				t.Fatalf("cases.jsonl line %d: no field %q", n, k)
			}
		}
		c := officialCase{Name: pyUnquote(t, "name", rec["name"])}
		where := c.Name
		c.Gold = pyUnquote(t, where+": gold", rec["gold"])
		c.Pred = pyUnquote(t, where+": pred", rec["pred"])
		c.GoldItems = pyStringList(t, where+": gold_items", rec["gold_items"])
		c.PredItems = pyStringList(t, where+": pred_items", rec["pred_items"])
		for k, dst := range map[string]*int{"correct": &c.Counts.Correct, "predicted": &c.Counts.Predicted, "gold_count": &c.Counts.Gold} {
			if err := json.Unmarshal(rec[k], dst); err != nil {
				t.Fatalf("%s: %s: %v", where, k, err)
			}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// sameFloat reports whether a and b are the same float64, bit for bit.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// TestOfficialCases checks the Go reimplementation of the official parser,
// get_response, normalize_answer and NEREvaluator against the outputs of the
// real Python code on hand-made cases.
func TestOfficialCases(t *testing.T) {
	cases := readOfficialCases(t)
	if len(cases) < 100 {
		t.Fatalf("read %d cases from cases.jsonl, want its 181", len(cases))
	}
	names := map[string]bool{}
	var total Counts
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("case name %q appears twice", c.Name)
		}
		names[c.Name] = true
		gold := model.ParseOfficial(c.Gold)
		pred := model.ParseOfficial(model.OfficialResponse(c.Pred))
		if got := OfficialItems(gold); !slices.Equal(got, c.GoldItems) {
			t.Errorf("%s: gold items %q, Python has %q", c.Name, got, c.GoldItems)
		}
		if got := OfficialItems(pred); !slices.Equal(got, c.PredItems) {
			t.Errorf("%s: pred items %q, Python has %q", c.Name, got, c.PredItems)
		}
		got := ScoreOfficial(gold, pred)
		if got != c.Counts {
			t.Errorf("%s: counts %+v, Python has %+v", c.Name, got, c.Counts)
		}
		// model.Parse in official mode is the same reading.
		if p := model.Parse(model.ParseOfficialMode, c.Pred); !slices.Equal(p, pred) {
			t.Errorf("%s: model.Parse(official) = %q, ParseOfficial(OfficialResponse) = %q", c.Name, p, pred)
		}
		total.Add(got)
	}

	raw, err := os.ReadFile(filepath.Join("testdata", "official", "cases_expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Counts
		Precision, Recall, F1 float64
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if total != want.Counts {
		t.Errorf("summed counts %+v, Python has %+v", total, want.Counts)
	}
	if want.Precision == 0 || want.F1 == 0 {
		t.Fatalf("cases_expected.json: no precision or f1: %s", raw)
	}
	s := total.Official()
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"precision", s.Precision, want.Precision},
		{"recall", s.Recall, want.Recall},
		{"f1", s.F1, want.F1},
	} {
		if !sameFloat(f.got, f.want) {
			t.Errorf("official %s = %v, Python has %v", f.name, f.got, f.want)
		}
	}
}
