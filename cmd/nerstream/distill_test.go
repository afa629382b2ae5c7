package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/distill"
	"github.com/nerstream/nerstream/eval"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// teacherGazetteer is what the test teacher knows: a mention and the type
// it gives it, as written in its answers.
var teacherGazetteer = []distill.Tuple{
	{Mention: "Ada Lovelace", Type: "person"},
	{Mention: "Charles Babbage", Type: "Person"},
	{Mention: "Grace Hopper", Type: "person"},
	{Mention: "Alan Turing", Type: "person"},
	{Mention: "London", Type: "location"},
	{Mention: "Bletchley Park", Type: "location"},
	{Mention: "Royal Society", Type: "organisations "},
	{Mention: "Harvard", Type: "organization"},
	{Mention: "IBM", Type: "Organization"},
	{Mention: "COBOL", Type: "programming  language"},
	{Mention: "Analytical Engine", Type: "machine"},
}

// distillDocs are the test's documents, as JSON lines: one repeated
// exactly, one nearly, and one long enough for several passages.
var distillDocs = []string{
	`{"id":"d1","text":"Ada Lovelace wrote the first published program for the Analytical Engine, the calculating machine that Charles Babbage designed and never finished building in London during the middle of the nineteenth century."}`,
	`{"id":"d2","text":"Grace Hopper worked at Harvard and designed COBOL, which IBM adopted."}`,
	`{"id":"d3","text":"Alan Turing broke codes at Bletchley Park during the war, with a team of mathematicians and engineers. He later joined the Royal Society as a fellow. The weather in London was grey that year, and the newspapers wrote about other things entirely, as they usually do."}`,
	`{"id":"d4","text":"Ada Lovelace wrote the first published program for the Analytical Engine, the calculating machine that Charles Babbage designed and never finished building in London during the middle of the nineteenth century."}`,
	`{"id":"d5","text":"Ada Lovelace wrote the first published program for the Analytical Engine, the calculating machine that Charles Babbage designed and never finished building in London during the middle of the nineteenth century!"}`,
	`{"id":"d6","text":"A quiet afternoon with tea and no names at all."}`,
}

// testTeacher is a test double of an OpenAI-compatible chat teacher. It
// answers each passage with the gazetteer's mentions found in it, in the
// paper's tuple format, in one of three styles: clean; with chatter and
// single quotes; or with a malformed tuple and a mention not in the
// passage. The first request about a passage that holds a trigger word
// fails: 429 with Retry-After ("Grace"), past the client's timeout
// ("Turing"), 500 ("IBM"). When failFrom > 0, every answer after the
// first failFrom fails with 500.
type testTeacher struct {
	failFrom int

	mu       sync.Mutex
	seen     map[string]int // passage → requests
	answered []string       // passages answered, in order
}

func newTestTeacher(t *testing.T, failFrom int) (*testTeacher, string) {
	tt := &testTeacher{failFrom: failFrom, seen: map[string]int{}}
	srv := httptest.NewServer(tt)
	t.Cleanup(srv.Close)
	return tt, srv.URL + "/v1"
}

func (tt *testTeacher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model       string  `json:"model"`
		Temperature float64 `json:"temperature"`
		Messages    []struct {
			Role, Content string
		} `json:"messages"`
	}
	if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "teacher-x" ||
		req.Temperature != 0 || len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[0].Content != distill.SystemMessage ||
		!strings.HasPrefix(req.Messages[1].Content, distill.Instruction+"\n\nPassage: ") {
		http.Error(w, `{"error":{"message":"bad request (test double)"}}`, http.StatusBadRequest)
		return
	}
	passage := strings.TrimPrefix(req.Messages[1].Content, distill.Instruction+"\n\nPassage: ")
	tt.mu.Lock()
	tt.seen[passage]++
	first := tt.seen[passage] == 1
	full := tt.failFrom > 0 && len(tt.answered) >= tt.failFrom
	tt.mu.Unlock()
	switch {
	case full:
		http.Error(w, `{"error":{"message":"overloaded (test double)"}}`, http.StatusInternalServerError)
		return
	case first && strings.Contains(passage, "Grace"):
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"message":"slow down (test double)"}}`, http.StatusTooManyRequests)
		return
	case first && strings.Contains(passage, "Turing"):
		// No answer until the client gives up, past its timeout. The
		// server notices a client that hangs up only once the body is
		// read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
			http.Error(w, `{"error":{"message":"too late (test double)"}}`, http.StatusGatewayTimeout)
		}
		return
	case first && strings.Contains(passage, "IBM"):
		http.Error(w, `{"error":{"message":"CUDA error (test double)"}}`, http.StatusInternalServerError)
		return
	}
	var parts []string
	style := len(passage) % 3
	for _, g := range teacherGazetteer {
		if !strings.Contains(passage, g.Mention) {
			continue
		}
		if style == 1 {
			parts = append(parts, fmt.Sprintf("('%s', '%s')", g.Mention, g.Type))
		} else {
			parts = append(parts, fmt.Sprintf("(%q, %q)", g.Mention, g.Type))
		}
	}
	answer := "[" + strings.Join(parts, ", ") + "]"
	switch style {
	case 1:
		answer = "Sure! Here are the entities:\n" + answer + "\nLet me know if you need more."
	case 2:
		answer = strings.TrimSuffix(answer, "]")
		if len(parts) > 0 {
			answer += ", "
		}
		answer += `("Atlantis", "location"), ("broken"), ]`
	}
	tt.mu.Lock()
	tt.answered = append(tt.answered, passage)
	tt.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": answer}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 50 + len(passage)/4, "completion_tokens": len(answer) / 4},
	})
}

// distillArgs are the flags of a test run. The request timeout is what
// ends the teacher's held "Turing" request; it leaves the healthy requests
// ample time on a busy machine.
func distillArgs(in, teacher, out string, extra ...string) []string {
	return append([]string{"distill", "--in", in, "--teacher", teacher, "--teacher-model", "teacher-x", "--out", out,
		"--passage-tokens", "40", "--negatives", "2", "--seed", "7", "--retries", "3", "--request-timeout", "2s"}, extra...)
}

func writeDistillInput(t *testing.T) string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "docs.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(distillDocs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestDistill is issue 8's end-to-end test: a teacher that answers in the
// paper's tuple format, sometimes badly and sometimes after a failure;
// the output is exactly the golden file for the seed, whatever the
// concurrency, its records hold what the teacher found, and eval reads it.
func TestDistill(t *testing.T) {
	in := writeDistillInput(t)
	_, url := newTestTeacher(t, 0)
	dir := t.TempDir()
	out := filepath.Join(dir, "pile.jsonl")
	code, stdout, errs := runCLI(t, "", distillArgs(in, url, out, "--concurrency", "4")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep distill.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	// The golden file.
	golden := filepath.Join("testdata", "distill", "pile.jsonl")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/nerstream -run TestDistill -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s:\n%s", golden, got)
	}

	// The same again, one request at a time and a fresh checkpoint: the
	// same bytes.
	_, url2 := newTestTeacher(t, 0)
	out2 := filepath.Join(dir, "again.jsonl")
	if code, _, errs := runCLI(t, "", distillArgs(in, url2, out2, "--concurrency", "1")...); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errs)
	}
	if again, _ := os.ReadFile(out2); string(again) != string(got) {
		t.Errorf("a run with concurrency 1 wrote other bytes:\n%s", again)
	}

	// What the records hold, checked against the gazetteer.
	records, err := distill.Read(strings.NewReader(string(got)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Documents != 6 || rep.ExactDuplicates != 1 || rep.NearDuplicates != 1 || rep.Records != len(records) || rep.Refused+rep.Failed != 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.Dropped.NotInPassage == 0 || rep.TuplesSkipped == 0 {
		t.Errorf("the bad answers were not exercised: %+v", rep)
	}
	allTypes := map[string]bool{}
	for _, g := range teacherGazetteer {
		allTypes[distill.NormalizeType(g.Type)] = true
	}
	for _, r := range records {
		turns := r.Conversations
		passage := strings.TrimPrefix(turns[0].Value, "Text: ")
		if turns[1].Value != "I've read this text." {
			t.Errorf("%s: second turn %q", r.ID, turns[1].Value)
		}
		want := map[string][]string{}
		for _, g := range teacherGazetteer {
			if strings.Contains(passage, g.Mention) {
				typ := distill.NormalizeType(g.Type)
				want[typ] = append(want[typ], g.Mention)
			}
		}
		negatives := 0
		for k := 2; k < len(turns); k += 2 {
			typ := strings.TrimSuffix(strings.TrimPrefix(turns[k].Value, "What describes "), " in the text?")
			mentions := model.ParseOfficial(turns[k+1].Value)
			switch {
			case len(mentions) == 0:
				negatives++
				if want[typ] != nil || !allTypes[typ] {
					t.Errorf("%s: negative type %q is in the passage or unknown", r.ID, typ)
				}
			case !slices.Equal(mentions, want[typ]):
				t.Errorf("%s: %q answered %q, want %q", r.ID, typ, mentions, want[typ])
			default:
				delete(want, typ)
			}
		}
		if len(want) != 0 || negatives != 2 {
			t.Errorf("%s: types not asked %v; %d negatives, want 2", r.ID, want, negatives)
		}
	}

	// eval reads it.
	sets, err := eval.Load(out, eval.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for _, r := range records {
		pairs += len(r.Conversations)/2 - 1
	}
	if len(sets) != 1 || len(sets[0].Queries) != pairs {
		t.Errorf("eval read %d datasets, want 1 with %d queries", len(sets), pairs)
	}

	// distill stats.
	code, stdout, errs = runCLI(t, "", "distill", "stats", out, "--top", "3")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errs)
	}
	var st distill.Stats
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Passages != len(records) || st.Pairs != pairs || st.NegativePairs != 2*len(records) || len(st.TopTypes) != 3 ||
		// location and person are in 3 passages each; ties go by name.
		st.TopTypes[0] != (distill.TypeCount{Type: "location", Passages: 3, Mentions: 3}) || st.TopTypes[1] != (distill.TypeCount{Type: "person", Passages: 3, Mentions: 4}) {
		t.Errorf("stats %+v", st)
	}
}

// TestDistillResume: a run whose teacher starts failing stops with the
// answers it got in the checkpoint; the next run asks only the rest, and
// writes what one clean run writes.
func TestDistillResume(t *testing.T) {
	in := writeDistillInput(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "pile.jsonl")
	first, url := newTestTeacher(t, 3)
	code, _, errs := runCLI(t, "", distillArgs(in, url, out, "--concurrency", "1", "--retries", "1")...)
	if code != 1 || !strings.Contains(errs, "run again") {
		t.Fatalf("failing teacher: exit %d, %q; want 1 and how to go on", code, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an incomplete run wrote the output")
	}
	if len(first.answered) != 3 {
		t.Fatalf("the first teacher answered %d passages, want 3", len(first.answered))
	}
	second, url2 := newTestTeacher(t, 0)
	code, stdout, errs := runCLI(t, "", distillArgs(in, url2, out, "--concurrency", "2")...)
	if code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "resuming: 3 answers") {
		t.Errorf("no resume line: %q", errs)
	}
	for _, p := range first.answered {
		if second.seen[p] != 0 {
			t.Errorf("passage %q sent again after it was answered", p)
		}
	}
	var rep distill.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Cached != 3 || rep.Asked != rep.Sampled-3 {
		t.Errorf("report %+v: want 3 cached, the rest asked", rep)
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile(filepath.Join("testdata", "distill", "pile.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("resumed output differs from a clean run's:\n%s", got)
	}
}

func TestDistillUsage(t *testing.T) {
	in := writeDistillInput(t)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(`{"text":"fine"}`+"\n"+`{"text": 3}`+"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"distill"}, "required"},
		{[]string{"distill", "--teacher", "http://x/v1", "--teacher-model", "m", "--out", "o.jsonl"}, "one input"},
		{distillArgs(in, "ftp://x", "o.jsonl"), "teacher"},
		{distillArgs(in, "http://127.0.0.1:1/v1", "o.jsonl", "--near-duplicate", "0"), "near-duplicate"},
		{distillArgs(in, "http://127.0.0.1:1/v1", "o.jsonl", "--tokenizer", "missing.gguf"), "tokenizer"},
		{distillArgs(bad, "http://127.0.0.1:1/v1", filepath.Join(t.TempDir(), "o.jsonl")), "bad.jsonl:2"},
		{[]string{"distill", "stats"}, "one dataset"},
		{[]string{"distill", "stats", in}, "docs.jsonl"},
	} {
		code, _, errs := runCLI(t, "", tc.args...)
		checkOneLineError(t, code, 2, errs, tc.want)
	}
}

// TestDistillFromTopic reads the documents from a topic on the kfake
// broker, with run's input settings, and writes what the file gives; a
// record that is no document is counted and left out.
func TestDistillFromTopic(t *testing.T) {
	c := kafkatest.StartBroker(t, 1)
	var msgs []kafka.Message
	for _, d := range distillDocs {
		msgs = append(msgs, kafka.Message{Value: []byte(d)})
	}
	msgs = append(msgs, kafka.Message{Value: []byte(`{"text": 42}`)})
	kafkatest.ProduceRaw(t, c.ListenAddrs(), msgs...)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nerstream.yaml")
	yaml := fmt.Sprintf("kafka:\n  brokers: [%q]\ninput:\n  topics: [%q]\n", c.ListenAddrs()[0], kafkatest.InTopic)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := newTestTeacher(t, 0)
	out := filepath.Join(dir, "pile.jsonl")
	args := distillArgs("", url, out)
	args = slices.Delete(args, 1, 3) // no --in
	code, stdout, errs := runCLI(t, "", append(args, "--config", cfg)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		distill.Report
		Skipped int `json:"skipped_records"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Documents != len(distillDocs) || rep.Skipped != 1 {
		t.Errorf("report %+v: want %d documents and 1 skipped record", rep, len(distillDocs))
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile(filepath.Join("testdata", "distill", "pile.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("output from the topic differs from the file's:\n%s", got)
	}
}

// TestDistillModelTokenizer splits passages by a GGUF vocabulary: every
// passage fits the budget as that vocabulary counts it.
func TestDistillModelTokenizer(t *testing.T) {
	in := writeDistillInput(t)
	vocab := writeServeModel(t)
	_, url := newTestTeacher(t, 0)
	out := filepath.Join(t.TempDir(), "pile.json")
	code, _, errs := runCLI(t, "", distillArgs(in, url, out, "--tokenizer", vocab, "--passage-tokens", "24")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := distill.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	opts := llama.DefaultOptions()
	opts.VocabOnly = true
	eng, err := llama.Load(vocab, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	longest := 0
	for _, r := range records {
		n, err := eng.TokenCount(t.Context(), strings.TrimPrefix(r.Conversations[0].Value, "Text: "))
		if err != nil {
			t.Fatal(err)
		}
		if n > 24 {
			t.Errorf("%s: passage of %d tokens, over 24", r.ID, n)
		}
		longest = max(longest, n)
	}
	if len(records) <= 5 || longest < 12 {
		t.Errorf("%d records, longest passage %d tokens: the vocabulary did not drive the split", len(records), longest)
	}
}
