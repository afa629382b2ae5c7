package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/record"
)

// TestAnnotateScores: annotate on the real tiny model (substring answers,
// so that its mentions align) applies --calibration, a map whose points
// are the raw scores that the test reads itself from the same model
// (modeltest.RawScores): each entity's score is the precision the map
// gives its raw score. --min-score drops exactly the entities scored below
// it, against the run without. model.min_score and model.calibration given
// by --set do the same, and a flag wins over the configuration.
func TestAnnotateScores(t *testing.T) {
	texts := []string{"Jane Doe paid ACME Corp. in Paris on Monday.", "Bob met Ada in Paris.", "Ada Lovelace worked with Charles Babbage in London."}
	types := []string{"person", "organization", "location", "date"}
	const maxNew = 16
	m, err := engines.Open(context.Background(), "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1, SubstringAnswers: true}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := modeltest.RawScores(context.Background(), m.Engine, texts, types, maxNew)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := modeltest.RankCalibration(modeltest.AllScores(raw))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	calPath := filepath.Join(dir, "calibration.json")
	b, _ := json.Marshal(cal)
	os.WriteFile(calPath, b, 0o600)
	var lines []string
	for i, text := range texts {
		lines = append(lines, fmt.Sprintf(`{"id":"d%d","text":%q}`, i, text))
	}
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	annotate := func(extra ...string) ([]record.Annotation, string) {
		t.Helper()
		args := append([]string{"annotate", "--model", "synth:tiny", "--threads", "1", "--substring", "--max-new-tokens", strconv.Itoa(maxNew),
			"--types", strings.Join(types, ","), "--batch", "8"}, extra...)
		code, out, errs := runCLI(t, "", append(args, in)...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", extra, code, errs)
		}
		var recs []record.Annotation
		for l := range strings.Lines(out) {
			var r record.Annotation
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%q: %v: %s", extra, err, l)
			}
			recs = append(recs, r)
		}
		if len(recs) != len(texts) {
			t.Fatalf("%q: %d records, want %d", extra, len(recs), len(texts))
		}
		return recs, out
	}
	span := func(e record.Entity) string { return fmt.Sprintf("%s/%d/%d/%s", e.Type, e.Start, e.End, e.Text) }

	plain, _ := annotate()
	calibrated, _ := annotate("--calibration", calPath)
	n := 0
	for i, r := range calibrated {
		if !slices.Equal(mapSpans(plain[i].Entities, span), mapSpans(r.Entities, span)) {
			t.Errorf("%s: calibration changed the entities: %v, without %v", r.ID, mapSpans(r.Entities, span), mapSpans(plain[i].Entities, span))
		}
		for _, e := range r.Entities {
			n++
			// The raw score comes from another engine, whose batches
			// differ: the resident prompt prefix's cells then move each
			// token's log-probability by about 1e-4 (relative), and a
			// mention's score multiplies several (CI saw more than 1e-3). The
			// map is monotone, so the score lies between the map's
			// values 1% either side: still far from the raw scores
			// (about 1e-6), which an unapplied map would leave.
			p, known := raw[texts[i]][e.Type][cmp.Or(e.Mention, e.Text)]
			lo, hi := cal.Apply(p*(1-1e-2)), cal.Apply(p*(1+1e-2))
			if !known || e.Score == nil || *e.Score < record.RoundScore(lo) || *e.Score > record.RoundScore(hi) {
				t.Errorf("%s: entity %s scored %v, want %v to %v: the map's precision of its raw score %v (known: %v)", r.ID, span(e), scoreOf(e), lo, hi, p, known)
			}
		}
	}
	if n < 4 {
		t.Fatalf("%d entities: the texts should give several", n)
	}

	minScore := cal.Precisions[len(cal.Precisions)/2]
	ms := strconv.FormatFloat(minScore, 'g', -1, 64)
	kept, keptOut := annotate("--calibration", calPath, "--min-score", ms)
	dropped := 0
	for i, r := range calibrated {
		var want []string
		for _, e := range r.Entities {
			if *e.Score >= minScore {
				want = append(want, span(e)+"="+fmt.Sprint(*e.Score))
			} else {
				dropped++
			}
		}
		got := mapSpans(kept[i].Entities, func(e record.Entity) string { return span(e) + "=" + fmt.Sprint(scoreOf(e)) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: with --min-score %s: %v, want %v", r.ID, ms, got, want)
		}
	}
	if dropped == 0 || dropped == n {
		t.Fatalf("--min-score %s dropped %d of %d entities: want some kept and some dropped", ms, dropped, n)
	}
	t.Logf("%d entities, %d below %s", n, dropped, ms)

	// The same settings from the configuration, and a flag that wins.
	if _, out := annotate("--set", "model.calibration="+calPath, "--set", "model.min_score="+ms); out != keptOut {
		t.Errorf("with --set model.min_score and model.calibration:\n%s\nwant as with the flags:\n%s", out, keptOut)
	}
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("model:\n  min_score: 0.99\n  calibration: "+filepath.Join(dir, "none.json")+"\n"), 0o600)
	if _, out := annotate("--config", cfg, "--min-score", ms, "--calibration", calPath); out != keptOut {
		t.Errorf("flags over --config:\n%s\nwant as with the flags alone:\n%s", out, keptOut)
	}
}

func mapSpans(es []record.Entity, f func(record.Entity) string) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, f(e))
	}
	return out
}

func scoreOf(e record.Entity) any {
	if e.Score == nil {
		return nil
	}
	return *e.Score
}

// hostileCalibrations are calibration files that annotate and serve
// refuse in one line, by name.
func hostileCalibrations(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"missing":     filepath.Join(dir, "none.json"),
		"a directory": dir,
		"a device":    "/dev/null",
	}
	for name, content := range map[string]string{
		"not JSON":       "calibration\x1b[2J",
		"empty":          "",
		"huge":           `{"method":"isotonic","scores":[0.1],"precisions":[0.5],"x":"` + strings.Repeat("a", 2<<20) + `"}`,
		"decreasing":     `{"method":"isotonic","scores":[0.1,0.5],"precisions":[0.9,0.2]}`,
		"NaN point":      `{"method":"isotonic","scores":[NaN],"precisions":[0.5]}`,
		"outside [0, 1]": `{"method":"isotonic","scores":[0.1],"precisions":[1e308]}`,
		"no points":      `{"method":"isotonic","scores":[],"precisions":[]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}
	return files
}

// TestAnnotateScoreSettingsRefused: a minimum score outside [0, 1] (NaN
// and infinities too) and a calibration file that cannot be used, by flag
// or by --set, exit 2 with one line naming the setting, before any input
// is read (the input file does not exist: its error would come first
// otherwise).
func TestAnnotateScoreSettingsRefused(t *testing.T) {
	missingInput := filepath.Join(t.TempDir(), "in.jsonl")
	type refusal struct {
		args     []string
		contains string
	}
	cases := []refusal{
		{[]string{"--min-score", "1.5"}, "--min-score 1.5: must be between 0 and 1"},
		{[]string{"--min-score", "-0.1"}, "--min-score -0.1: must be between 0 and 1"},
		{[]string{"--min-score", "NaN"}, "--min-score NaN: must be between 0 and 1"},
		{[]string{"--min-score", "+Inf"}, "must be between 0 and 1"},
		{[]string{"--min-score", "high"}, "invalid value"},
		{[]string{"--set", "model.min_score=2"}, "model.min_score: must be between 0 and 1"},
		{[]string{"--set", "model.min_score=NaN"}, "model.min_score"},
	}
	for _, p := range hostileCalibrations(t) {
		cases = append(cases,
			refusal{[]string{"--calibration", p}, "--calibration: "},
			refusal{[]string{"--set", "model.calibration=" + p}, "model.calibration: "})
	}
	for _, tc := range cases {
		code, _, errs := runCLI(t, "", append(append([]string{"annotate", "--model", "synth:tiny"}, tc.args...), missingInput)...)
		checkOneLineError(t, code, 2, errs, tc.contains)
		if strings.Contains(errs, "\x1b") || len(errs) > 300 {
			t.Errorf("%q: the line is not short and plain: %.300q", tc.args, errs)
		}
	}
}

// TestAnnotateModelSettings: every key of the model section that annotate
// is given through --config or --set is applied, or refused in one line
// naming it (the openai engine's, which annotate takes from its flags):
// none is ignored. A flag given wins.
func TestAnnotateModelSettings(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"id":"d","text":"Jane Doe paid ACME Corp. in Paris on Monday."}`+"\n"), 0o600)
	base := []string{"annotate", "--threads", "1", "--substring"}
	annotate := func(extra ...string) record.Annotation {
		t.Helper()
		code, out, errs := runCLI(t, "", append(append(slices.Clone(base), extra...), in)...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", extra, code, errs)
		}
		var r record.Annotation
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%q: %v: %s", extra, err, out)
		}
		return r
	}
	// model.path stands for --model, model.entity_types for --types.
	r := annotate("--set", "model.path=synth:tiny", "--set", "model.entity_types=person,date")
	if !slices.Equal(r.EntityTypes, []string{"person", "date"}) || len(r.Entities) == 0 {
		t.Errorf("model.path and model.entity_types: %+v, want person and date asked, and entities", r)
	}
	if r := annotate("--model", "synth:tiny", "--set", "model.entity_types=person,date", "--types", "location"); !slices.Equal(r.EntityTypes, []string{"location"}) {
		t.Errorf("--types over model.entity_types: asked %q, want location", r.EntityTypes)
	}
	// model.max_new_tokens: one token is no list, so no entity; but
	// --max-new-tokens wins.
	if r := annotate("--model", "synth:tiny", "--set", "model.max_new_tokens=1"); len(r.Entities) != 0 || len(r.Unaligned) != 0 {
		t.Errorf("model.max_new_tokens=1: %+v, want no entities", r)
	}
	if r := annotate("--model", "synth:tiny", "--set", "model.max_new_tokens=1", "--max-new-tokens", "16"); len(r.Entities) == 0 {
		t.Errorf("--max-new-tokens 16 over model.max_new_tokens=1: %+v, want entities", r)
	}
	// model.max_entity_types, which has no flag: two types are too many.
	code, out, errs := runCLI(t, "", "annotate", "--model", "synth:tiny", "--types", "person,date", "--set", "model.max_entity_types=1", in)
	if code != 0 || !strings.Contains(out, `"error":"`+record.ReasonTooManyTypes+`: `) {
		t.Errorf("model.max_entity_types=1: exit %d, %s%s, want the line refused", code, out, errs)
	}
	// model.parse, model.prompt.*: applied, so a bad value is refused.
	for _, tc := range []struct{ set, contains string }{
		{"model.prompt.variant=supervised", "model.prompt.dataset: required"},
		{"model.parse=strict", "model.parse"},
		{"model.window_tokens=-1", "model.window_tokens"},
		{"model.engine=openai", "model.openai.endpoints: required"},
	} {
		code, _, errs := runCLI(t, "", "annotate", "--model", "synth:tiny", "--set", tc.set, in)
		checkOneLineError(t, code, 2, errs, tc.contains)
	}
	// The openai engine's keys: refused, by name, secrets unshown, when
	// annotate runs that engine; with the llama engine, model.openai.* is
	// ignored, as run ignores it (the key is never used, so never shown).
	openaiFlags := []string{"--engine", "openai", "--endpoint", "http://127.0.0.1:1/v1"}
	code, out, errs = runCLI(t, "", "annotate", "--model", "synth:tiny", "--set", "model.openai.api_key=s3cret", "--set", "model.openai.dialect=vllm", in)
	if code != 0 || strings.Contains(out+errs, "s3cret") {
		t.Errorf("model.openai.* with the llama engine: exit %d, %s%s, want it ignored as run ignores it", code, out, errs)
	}
	for _, tc := range []struct {
		engine   []string
		set      []string
		contains string
	}{
		{nil, []string{"model.engine=openai", "model.openai.endpoints=http://127.0.0.1:1/v1"}, "model.engine: annotate takes the openai engine from its flags"},
		{openaiFlags, []string{"model.openai.dialect=vllm"}, "model.openai: annotate takes"},
		{openaiFlags, []string{"model.openai.api_key=s3cret"}, "model.openai: annotate takes"},
	} {
		args := []string{"annotate", "--model", "synth:tiny"}
		if tc.engine != nil {
			args = append([]string{"annotate"}, tc.engine...)
		}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		code, _, errs := runCLI(t, "", append(args, filepath.Join(dir, "missing.jsonl"))...)
		checkOneLineError(t, code, 2, errs, tc.contains)
		if strings.Contains(errs, "s3cret") {
			t.Errorf("%q: the error shows the key: %s", tc.set, errs)
		}
	}
}

// TestServeScoreFlagsRefused: serve refuses the same minimum scores and
// calibration files in one line, exit 2, before anything listens.
func TestServeScoreFlagsRefused(t *testing.T) {
	cases := [][]string{{"--min-score", "1.5"}, {"--min-score", "-0.1"}, {"--min-score", "NaN"}, {"--min-score", "-Inf"}}
	for _, p := range hostileCalibrations(t) {
		cases = append(cases, []string{"--calibration", p})
	}
	for _, args := range cases {
		code, out, errs := runCLI(t, "", append([]string{"serve", "--model", "synth:tiny", "--listen", "127.0.0.1:0"}, args...)...)
		checkOneLineError(t, code, 2, errs, args[0])
		if strings.Contains(errs+out, "listening") || strings.Contains(errs, "\x1b") || len(errs) > 300 {
			t.Errorf("%q: %q: listened first, or not a short plain line", args, errs)
		}
	}
}

// TestServeScoreFlags: serve's --min-score and --calibration reach the
// server's options (the ready line shows them), and /v1/annotate answers
// with them. server's TestAnnotateScores checks what they do to the
// entities on the real tiny model.
func TestServeScoreFlags(t *testing.T) {
	calPath := filepath.Join(t.TempDir(), "calibration.json")
	os.WriteFile(calPath, []byte(`{"method":"isotonic","scores":[0.1,0.5],"precisions":[0.2,0.9],"samples":9}`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append(slices.Clone(serveArgs), "--min-score", "0.375", "--calibration", calPath), strings.NewReader(""), io.Discard, logs)
	}()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(logs.String(), `"msg":"serve: ready"`) {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before it was ready; log:\n%s", c, logs.String())
		case <-deadline:
			t.Fatalf("serve not ready; log:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(logs.String(), `"min_score":0.375,"calibrated":true`) {
		t.Errorf("the ready line does not show the score settings:\n%s", logs.String())
	}
	base := "http://" + serveListening.FindStringSubmatch(logs.String())[1]
	if status, body := post(t, base+"/v1/annotate", `{"text": "Jane Doe paid ACME Corp. in Paris."}`); status != http.StatusOK {
		t.Errorf("annotate: %d %s", status, body)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited %d; log:\n%s", c, logs.String())
		}
	case <-deadline:
		t.Fatalf("serve did not stop; log:\n%s", logs.String())
	}
}
