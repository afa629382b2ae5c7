package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/shareddata"
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

// officialDir holds the golden vectors and make_goldens.py, the script that
// makes them.
var officialDir = filepath.Join("testdata", "official")

// needPython returns the path of python3. Without it the test is skipped,
// or fails when NERSTREAM_REQUIRE_PYTHON is set.
func needPython(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_PYTHON") != "" {
			t.Fatalf("python3 is not installed (%v), and NERSTREAM_REQUIRE_PYTHON is set", err)
		}
		t.Skipf("python3 is not installed (%v); set NERSTREAM_REQUIRE_PYTHON=1 to make this a failure", err)
	}
	return path
}

// makeGoldens runs make_goldens.py with args in the golden folder and
// returns its exit status and its output.
func makeGoldens(t *testing.T, python string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(python, append([]string{"make_goldens.py"}, args...)...)
	cmd.Dir = officialDir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("running make_goldens.py: %v\n%s", err, out)
		return -1, ""
	}
}

// TestGoldensScript runs make_goldens.py --check: the golden files must be,
// byte for byte, what the official evaluator's logic gives (the script
// reproduces it; see testdata/official/README.md).
func TestGoldensScript(t *testing.T) {
	python := needPython(t)
	t.Run("cases", func(t *testing.T) {
		code, out := makeGoldens(t, python, "--check")
		if code != 0 {
			t.Fatalf("make_goldens.py --check exited %d: the goldens are not what the official logic gives:\n%s", code, out)
		}
		for _, f := range []string{"cases.jsonl", "cases_expected.json"} {
			if !strings.Contains(out, f+": same") {
				t.Errorf("make_goldens.py --check did not check %s:\n%s", f, out)
			}
		}
	})
	t.Run("uniner", func(t *testing.T) {
		data, err := filepath.Abs(shareddata.Dir(t, uninerData))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		writePerturbed(t, data, dir)
		code, out := makeGoldens(t, python, "--check", "--perturbed", dir, "--data", data)
		if code != 0 {
			t.Fatalf("make_goldens.py --check exited %d: the goldens are not what the official logic gives:\n%s", code, out)
		}
		if !strings.Contains(out, "uniner_expected.json: same") {
			t.Errorf("make_goldens.py --check did not check uniner_expected.json:\n%s", out)
		}
	})
	// The check can fail: a copy of the goldens with one derived number
	// changed is refused, and the script names the file.
	t.Run("an edited golden is refused", func(t *testing.T) {
		for _, c := range []struct{ file, old, new string }{
			{"cases_expected.json", `"correct": 345,`, `"correct": 346,`},
			{"cases.jsonl", `"correct": 2, "predicted": 2, "gold_count": 2}`, `"correct": 1, "predicted": 2, "gold_count": 2}`},
		} {
			dir := t.TempDir()
			for _, f := range []string{"cases.jsonl", "cases_expected.json"} {
				b, err := os.ReadFile(filepath.Join(officialDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == c.file {
					if !bytes.Contains(b, []byte(c.old)) {
						t.Fatalf("%s has no %s to edit", f, c.old)
					}
					b = bytes.Replace(b, []byte(c.old), []byte(c.new), 1)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out := makeGoldens(t, python, "--check", "--dir", dir)
			if code != 1 || !strings.Contains(out, c.file+" differs") {
				t.Errorf("with %s edited (%s → %s): exit %d, want 1 naming the file:\n%s", c.file, c.old, c.new, code, out)
			}
		}
	})
}
