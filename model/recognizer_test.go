package model_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

func newRecognizer(t *testing.T, e model.Engine, opts model.RecognizerOptions) *model.Recognizer {
	t.Helper()
	r, err := model.NewRecognizer(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkInvariant checks DESIGN.md's invariant: text[start:end] ==
// entity.text, in code points.
func checkInvariant(t *testing.T, text string, a model.Annotation) {
	t.Helper()
	runes := []rune(text)
	for _, e := range a.Entities {
		if e.Start < 0 || e.End > len(runes) || e.Start >= e.End {
			t.Fatalf("entity %+v out of range (%d runes)", e, len(runes))
		}
		if got := string(runes[e.Start:e.End]); got != e.Text {
			t.Fatalf("entity %+v: text[%d:%d] = %q", e, e.Start, e.End, got)
		}
	}
}

func TestRecognizeBasic(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{
		"person":   `["Ada Lovelace", "Charles Babbage", "Grace Hopper", "Ada Lovelace"]`,
		"location": ` ["london"]`,
	})}
	r := newRecognizer(t, eng, model.RecognizerOptions{})
	text := "Ada Lovelace met Charles Babbage in London. Ada Lovelace wrote."
	anns, err := r.Recognize(context.Background(), []record.Document{{ID: "d1", Text: text, Types: []string{"person", "location", "person"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := anns[0]
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	want := []record.Entity{
		{Text: "Ada Lovelace", Type: "person", Start: 0, End: 12},
		{Text: "Charles Babbage", Type: "person", Start: 17, End: 32},
		{Text: "London", Type: "location", Start: 36, End: 42, Mention: "london"},
		{Text: "Ada Lovelace", Type: "person", Start: 44, End: 56},
	}
	if !slices.Equal(a.Entities, want) {
		t.Errorf("entities\n got %+v\nwant %+v", a.Entities, want)
	}
	if !slices.Equal(a.Unaligned, []record.Mention{{Type: "person", Text: "Grace Hopper"}}) {
		t.Errorf("unaligned %+v", a.Unaligned)
	}
	if !slices.Equal(a.Types, []string{"person", "location"}) || a.ID != "d1" || a.Windows != 1 {
		t.Errorf("types %q, id %q, windows %d", a.Types, a.ID, a.Windows)
	}
	if a.PromptTokens == 0 || a.GeneratedTokens == 0 {
		t.Errorf("token counts %d, %d", a.PromptTokens, a.GeneratedTokens)
	}
	// The raw answers, one per type asked (the repeated type once), as
	// the engine gave them.
	wantAnswers := []model.Answer{
		{Type: "person", Window: 0, Text: `["Ada Lovelace", "Charles Babbage", "Grace Hopper", "Ada Lovelace"]`},
		{Type: "location", Window: 0, Text: ` ["london"]`},
	}
	if !slices.Equal(a.Answers, wantAnswers) {
		t.Errorf("answers\n got %+v\nwant %+v", a.Answers, wantAnswers)
	}
	checkInvariant(t, text, a)
}

func TestRecognizeBatchesIntoOneCall(t *testing.T) {
	eng := &modeltest.ScriptedEngine{}
	r := newRecognizer(t, eng, model.RecognizerOptions{Types: []string{"person", "organization", "location"}})
	docs := []record.Document{
		{ID: "a", Text: "First."},
		{ID: "b", Text: "Second.", Types: []string{"award"}},
		{ID: "bad", Text: ""},
		{ID: "c", Text: "Third."},
	}
	anns, err := r.Recognize(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	calls := eng.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d Generate calls, want 1", len(calls))
	}
	groups := calls[0]
	if len(groups) != 3 {
		t.Fatalf("%d groups, want one per good document", len(groups))
	}
	wantTypes := [][]string{{"person", "organization", "location"}, {"award"}, {"person", "organization", "location"}}
	for g, group := range groups {
		var got []string
		for _, p := range group.Prompts {
			for _, part := range p.Parts {
				if part.Kind == model.PartQuery {
					got = append(got, part.Text)
				}
			}
		}
		if !slices.Equal(got, wantTypes[g]) {
			t.Errorf("group %d asks %q, want %q", g, got, wantTypes[g])
		}
	}
	for i, a := range anns {
		if a.ID != docs[i].ID {
			t.Errorf("annotation %d has id %q", i, a.ID)
		}
	}
	if anns[2].Err == nil || anns[0].Err != nil || anns[3].Err != nil {
		t.Errorf("errors: %v %v %v", anns[0].Err, anns[2].Err, anns[3].Err)
	}
}

func TestRecognizeRefusesBadInput(t *testing.T) {
	r := newRecognizer(t, &modeltest.ScriptedEngine{}, model.RecognizerOptions{MaxTypes: 3, MaxTypeRunes: 10, MaxTextBytes: 100})
	cases := []struct {
		name   string
		doc    record.Document
		reason string
	}{
		{"empty text", record.Document{Text: "", Types: []string{"x"}}, record.ReasonEmptyText},
		{"blank text", record.Document{Text: " \n\t\u3000", Types: []string{"x"}}, record.ReasonEmptyText},
		{"invalid UTF-8", record.Document{Text: "caf\xe9", Types: []string{"x"}}, record.ReasonInvalidUTF8},
		{"no types", record.Document{Text: "t"}, record.ReasonNoTypes},
		{"empty type", record.Document{Text: "t", Types: []string{"x", " "}}, record.ReasonInvalidType},
		{"invalid UTF-8 type", record.Document{Text: "t", Types: []string{"\xff"}}, record.ReasonInvalidType},
		{"too many types", record.Document{Text: "t", Types: []string{"a", "b", "c", "d"}}, record.ReasonTooManyTypes},
		{"type too long", record.Document{Text: "t", Types: []string{"abcdefghijk"}}, record.ReasonTypeTooLong},
		{"text too long", record.Document{Text: strings.Repeat("x", 101), Types: []string{"a"}}, record.ReasonTextTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			anns, err := r.Recognize(context.Background(), []record.Document{c.doc})
			if err != nil {
				t.Fatal(err)
			}
			var ie *record.InputError
			if !errors.As(anns[0].Err, &ie) || ie.Reason != c.reason {
				t.Fatalf("err = %v, want reason %s", anns[0].Err, c.reason)
			}
			// Check refuses it alike, without the engine.
			if err := r.Check(c.doc); !errors.As(err, &ie) || ie.Reason != c.reason {
				t.Fatalf("Check: %v, want reason %s", err, c.reason)
			}
		})
	}
	// Repeated types are asked once, so four names of three types pass.
	ok := record.Document{Text: "t", Types: []string{"a", "b", "a", "c"}}
	anns, err := r.Recognize(context.Background(), []record.Document{ok})
	if err != nil || anns[0].Err != nil {
		t.Fatalf("%v %v", err, anns[0].Err)
	}
	if err := r.Check(ok); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestRecognizeLongDocument(t *testing.T) {
	names := []string{"Ada Lovelace", "Zoë Ōkubo", "Charles Babbage", "Grace Hopper"}
	// The scripted model names every person of the list that its passage
	// holds, in lower case for one of them.
	eng := &modeltest.ScriptedEngine{Context: 200, Answer: func(text, query string) string {
		if query != "person" {
			return "[]"
		}
		var found []string
		for _, n := range names {
			if strings.Contains(text, n) {
				if n == "Grace Hopper" {
					n = "grace hopper"
				}
				found = append(found, fmt.Sprintf("%q", n))
			}
		}
		return "[" + strings.Join(found, ", ") + "]"
	}}
	r := newRecognizer(t, eng, model.RecognizerOptions{MaxNewTokens: 32, OverlapTokens: 16})
	var b strings.Builder
	var want []record.Entity
	for i := range 60 {
		fmt.Fprintf(&b, "In year %d nothing much happened here. ", 1800+i)
		if i%7 == 3 {
			n := names[i%len(names)]
			start := len([]rune(b.String()))
			fmt.Fprintf(&b, "%s wrote a letter. ", n)
			e := record.Entity{Text: n, Type: "person", Start: start, End: start + len([]rune(n))}
			if n == "Grace Hopper" {
				e.Mention = "grace hopper"
			}
			want = append(want, e)
		}
	}
	text := b.String()
	anns, err := r.Recognize(context.Background(), []record.Document{{ID: "long", Text: text, Types: []string{"person", "location"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := anns[0]
	if a.Err != nil {
		t.Fatal(a.Err) // a prompt over the context would show here
	}
	if a.Windows < 3 {
		t.Fatalf("%d windows; the text should not fit one", a.Windows)
	}
	if !slices.Equal(a.Entities, want) {
		t.Errorf("entities\n got %+v\nwant %+v", a.Entities, want)
	}
	if len(a.Unaligned) != 0 {
		t.Errorf("unaligned %+v", a.Unaligned)
	}
	// One answer per window and type, window by window.
	if len(a.Answers) != 2*a.Windows {
		t.Fatalf("%d answers for %d windows of 2 types", len(a.Answers), a.Windows)
	}
	for i, ans := range a.Answers {
		if want := []string{"person", "location"}[i%2]; ans.Type != want || ans.Window != i/2 {
			t.Errorf("answer %d: type %q window %d, want %q window %d", i, ans.Type, ans.Window, want, i/2)
		}
		if ans.Type == "location" && ans.Text != "[]" {
			t.Errorf("answer %d: %q, want the scripted []", i, ans.Text)
		}
	}
	checkInvariant(t, text, a)
}

func TestRecognizeParseModes(t *testing.T) {
	eng := &modeltest.ScriptedEngine{Answer: func(string, string) string { return `Sure! ["Ada"]` }}
	for mode, want := range map[model.ParseMode]int{model.ParseLenientMode: 1, model.ParseOfficialMode: 0} {
		r := newRecognizer(t, eng, model.RecognizerOptions{Parse: mode, Types: []string{"person"}})
		anns, err := r.Recognize(context.Background(), []record.Document{{Text: "Ada wrote."}})
		if err != nil || anns[0].Err != nil {
			t.Fatal(err, anns[0].Err)
		}
		if len(anns[0].Entities) != want {
			t.Errorf("%s: %d entities, want %d", mode, len(anns[0].Entities), want)
		}
	}
}

func TestRecognizeDefinitionVariant(t *testing.T) {
	var asked []string
	eng := &modeltest.ScriptedEngine{Answer: func(_, q string) string { asked = append(asked, q); return "[]" }}
	r := newRecognizer(t, eng, model.RecognizerOptions{Prompt: model.PromptOptions{
		Variant: model.VariantDefinition, Definitions: map[string]string{"person": "a human being"}}})
	anns, err := r.Recognize(context.Background(), []record.Document{{Text: "t", Types: []string{"person", "city"}}})
	if err != nil || anns[0].Err != nil {
		t.Fatal(err, anns[0].Err)
	}
	if !slices.Equal(asked, []string{"a human being", "city"}) {
		t.Errorf("asked %q", asked)
	}
	if !slices.Equal(anns[0].Types, []string{"person", "city"}) {
		t.Errorf("types %q: an annotation names types, not definitions", anns[0].Types)
	}
}

// refusingEngine is a test double that refuses every prompt of one passage.
type refusingEngine struct {
	modeltest.ScriptedEngine
	refuse string
}

func (e *refusingEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	out, err := e.ScriptedEngine.Generate(ctx, groups, opts)
	for g, group := range groups {
		for p, prompt := range group.Prompts {
			if strings.Contains(prompt.String(), e.refuse) {
				out[g][p].Err = errors.New("refused")
			}
		}
	}
	return out, err
}

func TestRecognizeEngineFailures(t *testing.T) {
	down := errors.New("engine down")
	r := newRecognizer(t, &modeltest.ScriptedEngine{Err: down}, model.RecognizerOptions{Types: []string{"x"}})
	if _, err := r.Recognize(context.Background(), []record.Document{{Text: "t"}}); !errors.Is(err, down) {
		t.Errorf("err = %v, want the engine's", err)
	}
	r = newRecognizer(t, &refusingEngine{refuse: "poison"}, model.RecognizerOptions{Types: []string{"x"}})
	anns, err := r.Recognize(context.Background(), []record.Document{{Text: "fine"}, {Text: "poison"}})
	if err != nil {
		t.Fatal(err)
	}
	if anns[0].Err != nil || anns[1].Err == nil || !strings.Contains(anns[1].Err.Error(), "refused") {
		t.Errorf("errs %v, %v", anns[0].Err, anns[1].Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = newRecognizer(t, &modeltest.ScriptedEngine{}, model.RecognizerOptions{Types: []string{"x"}})
	if _, err := r.Recognize(ctx, []record.Document{{Text: "t"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNewRecognizerErrors(t *testing.T) {
	if _, err := model.NewRecognizer(nil, model.RecognizerOptions{}); err == nil {
		t.Error("nil engine accepted")
	}
	if _, err := model.NewRecognizer(&modeltest.ScriptedEngine{}, model.RecognizerOptions{Parse: "strict"}); err == nil {
		t.Error("unknown parse mode accepted")
	}
	if _, err := model.NewRecognizer(&modeltest.ScriptedEngine{Context: 100}, model.RecognizerOptions{MaxNewTokens: 100}); err == nil {
		t.Error("max new tokens filling the context accepted")
	}
	if _, err := model.NewRecognizer(&modeltest.ScriptedEngine{}, model.RecognizerOptions{Prompt: model.PromptOptions{Variant: "x"}}); err == nil {
		t.Error("bad prompt options accepted")
	}
}

// FuzzRecognize checks DESIGN.md's invariant end to end, long texts split
// into windows included: every entity's text is the document's own text at
// its span, whatever the document and whatever the model answers.
func FuzzRecognize(f *testing.F) {
	f.Add("Ada Lovelace met Charles Babbage in London.", `["Ada Lovelace", "london"]`, uint8(0))
	f.Add(strings.Repeat("Zoë Ōkubo wrote.\nNaive Bayes classifier s work. ", 20), `["zoë ōkubo", "classifiers"]`, uint8(1))
	f.Add("a\u0301 a A", `Sure: ['A', "a"]`, uint8(2))
	f.Fuzz(func(t *testing.T, text, answer string, small uint8) {
		ctxTokens := 2048
		if small%2 == 1 {
			ctxTokens = 120 // forces windows
		}
		eng := &modeltest.ScriptedEngine{Context: ctxTokens, Answer: func(string, string) string { return answer }}
		r, err := model.NewRecognizer(eng, model.RecognizerOptions{Types: []string{"person"}, MaxNewTokens: 16, OverlapTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		anns, err := r.Recognize(context.Background(), []record.Document{{Text: text}})
		if err != nil {
			t.Fatal(err)
		}
		if anns[0].Err != nil {
			var ie *record.InputError
			if !errors.As(anns[0].Err, &ie) {
				t.Fatalf("unexpected error %v", anns[0].Err)
			}
			return
		}
		checkInvariant(t, text, anns[0])
	})
}

// countingEngine is a test double whose TokenCount fails with err for
// texts that contain marker.
type countingEngine struct {
	modeltest.ScriptedEngine
	marker string
	err    error
}

func (e *countingEngine) TokenCount(ctx context.Context, text string) (int, error) {
	if strings.Contains(text, e.marker) {
		return 0, e.err
	}
	return e.ScriptedEngine.TokenCount(ctx, text)
}

// TestRecognizeTokenCountFailures: a document that must be split needs the
// engine's token counts. An engine that cannot count fails the batch (the
// documents are held, not dead-lettered); an engine that refuses one text
// fails only that document.
func TestRecognizeTokenCountFailures(t *testing.T) {
	long := strings.Repeat("Ada Lovelace wrote notes. ", 200) + "marker"
	tests := []struct {
		name      string
		err       error
		wantBatch bool
	}{
		{"transport", errors.New("connection refused (test double)"), true},
		{"refused", &record.InputError{Reason: record.ReasonEngineRefused, Detail: "400 (test double)"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &countingEngine{ScriptedEngine: modeltest.ScriptedEngine{Context: 512}, marker: "marker", err: tt.err}
			r := newRecognizer(t, e, model.RecognizerOptions{Types: []string{"person"}, MaxNewTokens: 64})
			anns, err := r.Recognize(context.Background(), []record.Document{{Text: "short"}, {Text: long}})
			if tt.wantBatch {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want the engine's failure for the batch", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ie *record.InputError
			if anns[0].Err != nil || !errors.As(anns[1].Err, &ie) || ie.Reason != record.ReasonEngineRefused {
				t.Errorf("errs %v, %v; want nil and the refusal", anns[0].Err, anns[1].Err)
			}
		})
	}
}

// byteTokens scores an answer as one token per byte, each of probability p.
func byteTokens(answer string, p float64) []model.TokenLogProb {
	out := make([]model.TokenLogProb, len(answer))
	for i := range out {
		out[i] = model.TokenLogProb{Bytes: 1, LogProb: math.Log(p)}
	}
	return out
}

func TestRecognizeScores(t *testing.T) {
	answers := modeltest.Answers(map[string]string{"person": `["Ada", "Bo"]`, "place": `[]`})
	cases := []struct {
		name     string
		minScore float64
		logProbs func(text, query, answer string) []model.TokenLogProb
		want     []record.Entity
		empty    map[string]float64
		dropped  int
	}{
		{"scored: each mention its bytes and the closing quote", 0,
			func(_, q, a string) []model.TokenLogProb {
				if q == "place" {
					return byteTokens(a, 0.5)
				}
				return byteTokens(a, 0.9)
			},
			[]record.Entity{
				{Text: "Ada", Type: "person", Start: 0, End: 3, Score: ptr(record.RoundScore(math.Pow(0.9, 4)))},
				{Text: "Bo", Type: "person", Start: 8, End: 10, Score: ptr(record.RoundScore(math.Pow(0.9, 3)))},
			}, map[string]float64{"place": 0.25}, 0},
		{"min_score drops the lower", 0.7,
			func(_, _, a string) []model.TokenLogProb { return byteTokens(a, 0.9) },
			[]record.Entity{{Text: "Bo", Type: "person", Start: 8, End: 10, Score: ptr(record.RoundScore(math.Pow(0.9, 3)))}},
			map[string]float64{"place": 0.81}, 1},
		{"unscored engine: no scores, min_score keeps all", 0.7, nil,
			[]record.Entity{{Text: "Ada", Type: "person", Start: 0, End: 3}, {Text: "Bo", Type: "person", Start: 8, End: 10}}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eng := &modeltest.ScriptedEngine{Answer: answers, LogProbs: c.logProbs}
			r := newRecognizer(t, eng, model.RecognizerOptions{MinScore: c.minScore})
			anns, err := r.Recognize(context.Background(), []record.Document{{Text: "Ada and Bo", Types: []string{"person", "place"}}})
			if err != nil {
				t.Fatal(err)
			}
			a := anns[0]
			if len(a.Entities) != len(c.want) {
				t.Fatalf("entities %s, want %s", entities(a.Entities), entities(c.want))
			}
			for i := range c.want {
				g, w := a.Entities[i], c.want[i]
				if g.Text != w.Text || g.Start != w.Start || (g.Score == nil) != (w.Score == nil) || (g.Score != nil && *g.Score != *w.Score) {
					t.Errorf("entity %d: %s, want %s", i, entities(a.Entities[i:i+1]), entities(c.want[i:i+1]))
				}
			}
			if !maps.Equal(a.EmptyScores, c.empty) {
				t.Errorf("empty scores %v, want %v", a.EmptyScores, c.empty)
			}
			if a.BelowMinScore != c.dropped {
				t.Errorf("dropped %d, want %d", a.BelowMinScore, c.dropped)
			}
			if rec := a.Record("m", nil); !maps.Equal(rec.EmptyScores, c.empty) {
				t.Errorf("record's empty scores %v", rec.EmptyScores)
			}
		})
	}
}

// TestRecognizeScoresWindowMerge: the same span found by two overlapping
// windows keeps the higher of its two scores, and a type is "[]" only
// where every window said so.
func TestRecognizeScoresWindowMerge(t *testing.T) {
	for _, highFirst := range []bool{true, false} {
		seen := 0
		eng := &modeltest.ScriptedEngine{Context: 200,
			Answer: func(text, query string) string {
				if query == "person" && strings.Contains(text, "Ada Lovelace") {
					return `["Ada Lovelace"]`
				}
				if query == "place" && strings.Contains(text, "year 1801") {
					return `["nowhere"]`
				}
				return "[]"
			},
			LogProbs: func(text, query, answer string) []model.TokenLogProb {
				// The first window that finds the mention scores it high
				// or low, the others the other way.
				if query == "person" && answer != "[]" {
					seen++
					if (seen == 1) == highFirst {
						return byteTokens(answer, 0.9)
					}
				}
				return byteTokens(answer, 0.5)
			}}
		r := newRecognizer(t, eng, model.RecognizerOptions{MaxNewTokens: 32, OverlapTokens: 40})
		var b strings.Builder
		for i := range 30 {
			fmt.Fprintf(&b, "In year %d nothing much happened here. ", 1800+i)
			if i == 14 {
				b.WriteString("Ada Lovelace wrote. ")
			}
		}
		anns, err := r.Recognize(context.Background(), []record.Document{{Text: b.String(), Types: []string{"person", "place", "thing"}}})
		if err != nil {
			t.Fatal(err)
		}
		a := anns[0]
		if a.Err != nil || a.Windows < 2 {
			t.Fatalf("err %v, %d windows", a.Err, a.Windows)
		}
		found := 0
		for _, ans := range a.Answers {
			if ans.Type == "person" && ans.Text != "[]" {
				found++
			}
		}
		if found < 2 {
			t.Fatalf("the mention is in %d windows; the test needs two", found)
		}
		want := record.RoundScore(math.Pow(0.9, float64(len("Ada Lovelace")+1)))
		if len(a.Entities) != 1 || a.Entities[0].Score == nil || *a.Entities[0].Score != want {
			t.Errorf("highFirst=%v: entities %s, want one of score %v", highFirst, entities(a.Entities), want)
		}
		if _, ok := a.EmptyScores["place"]; ok {
			t.Errorf("place was found in a window but has an empty score: %v", a.EmptyScores)
		}
		if _, ok := a.EmptyScores["thing"]; !ok {
			t.Errorf("thing has no empty score: %v", a.EmptyScores)
		}
	}
}

func ptr(f float64) *float64 { return &f }

// entities prints entities with their scores.
func entities(es []record.Entity) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "{%q %d:%d", e.Text, e.Start, e.End)
		if e.Score != nil {
			fmt.Fprintf(&b, " %v", *e.Score)
		}
		b.WriteString("} ")
	}
	return b.String()
}
