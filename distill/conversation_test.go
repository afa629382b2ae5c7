package distill

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
)

func TestFormatAnswer(t *testing.T) {
	// Expected outputs are Python's json.dumps of the same lists.
	tests := []struct {
		in   []string
		want string
	}{
		{nil, `[]`},
		{[]string{"a"}, `["a"]`},
		{[]string{"García", `a"b`, "😀"}, `["Garc\u00eda", "a\"b", "\ud83d\ude00"]`},
		{[]string{"tab\tnl\ncr\rbs\\", "\b\f\x00\x1f\x7f", "</script>&'/"},
			`["tab\tnl\ncr\rbs\\", "\b\f\u0000\u001f\u007f", "</script>&'/"]`},
		{[]string{"東京", "\xed\xa0\x80", "éé", "\u2028"}, `["\u6771\u4eac", "\ud800", "\u00e9\u00e9", "\u2028"]`},
		{[]string{"", " "}, `["", " "]`},
		{[]string{"bad\xffbyte"}, `["bad\ufffdbyte"]`},
	}
	for _, tt := range tests {
		if got := FormatAnswer(tt.in); got != tt.want {
			t.Errorf("FormatAnswer(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestFormatAnswerRoundTrip(t *testing.T) {
	// model.ParseOfficial, the official evaluation's reader, reads every
	// answer back to its mentions. (Not a mention holding "]": the
	// official parser stops at the first "]" of the line.)
	lists := [][]string{
		{"Ada Lovelace"},
		{"García Márquez", "東京", "😀 emoji", `quote " and \ backslash`},
		{"line\nbreak", "tab\there", "\x00\x01\x1f\x7f", "'single'", "[bracket"},
		{"\xed\xa0\x80", "\xed\xbf\xbf"}, // lone surrogates as ParseOfficial keeps them
	}
	rng := rand.New(rand.NewPCG(1, 1))
	alphabet := []rune("aZ9 \"\\/'\n\t\x00\x1fé東😀\u2028[{}")
	for range 200 {
		var list []string
		for range 1 + rng.IntN(4) {
			r := make([]rune, 1+rng.IntN(8))
			for i := range r {
				r[i] = alphabet[rng.IntN(len(alphabet))]
			}
			list = append(list, string(r))
		}
		lists = append(lists, list)
	}
	for _, list := range lists {
		ans := FormatAnswer(list)
		for _, c := range []byte(ans) {
			if c < 0x20 || c >= 0x7f {
				t.Errorf("FormatAnswer(%q) = %q: not printable ASCII", list, ans)
				break
			}
		}
		if got := model.ParseOfficial(ans); !slices.Equal(got, list) {
			t.Errorf("ParseOfficial(FormatAnswer(%q)) = %q", list, got)
		}
	}
}

func TestTypeFrequencies(t *testing.T) {
	ls := []Labelled{
		{Tuples: []Tuple{{"A", "person"}, {"B", "person"}, {"C", "city"}}},
		{Tuples: []Tuple{{"D", "city"}}},
		{},
		{Tuples: []Tuple{{"E", "person"}, {"F", "date"}}},
	}
	want := map[string]int{"person": 2, "city": 2, "date": 1}
	if got := TypeFrequencies(ls); !reflect.DeepEqual(got, want) {
		t.Errorf("TypeFrequencies = %v; want %v", got, want)
	}
}

func TestNegativePolicy(t *testing.T) {
	tests := []struct {
		p         NegativePolicy
		positives int
		want      int
	}{
		{NegativePolicy{}, 5, 0},
		{NegativePolicy{Count: 3}, 0, 3},
		{NegativePolicy{Count: 3}, 10, 3},
		{NegativePolicy{Count: 2, Ratio: 5}, 10, 2}, // Count wins
		{NegativePolicy{Ratio: 0.5}, 1, 1},          // 0.5 rounds up
		{NegativePolicy{Ratio: 0.5}, 3, 2},          // 1.5 rounds up
		{NegativePolicy{Ratio: 0.5}, 4, 2},
		{NegativePolicy{Ratio: 0.4}, 1, 0},
		{NegativePolicy{Ratio: 1.5}, 3, 5}, // 4.5
		{NegativePolicy{Ratio: 2}, 0, 0},
		{NegativePolicy{Count: -1, Ratio: -1}, 4, 0},
	}
	for _, tt := range tests {
		if got := tt.p.n(tt.positives); got != tt.want {
			t.Errorf("%+v with %d positives: %d negatives; want %d", tt.p, tt.positives, got, tt.want)
		}
	}
}

// testLabelled is a small dataset: type frequencies person 3, location 2,
// organization 2, date 1, event 1, award 1.
func testLabelled() []Labelled {
	return []Labelled{
		{Passage: Passage{Text: "Ada met Bob in London.", Source: "a.txt", Index: 0},
			Tuples: []Tuple{{"Ada", "person"}, {"London", "location"}, {"Bob", "person"}, {"Ada", "person"}}},
		{Passage: Passage{Text: "Acme hired Cy on 3 May.", Source: "a.txt", Index: 1},
			Tuples: []Tuple{{"Acme", "organization"}, {"Cy", "person"}, {"3 May", "date"}}},
		{Passage: Passage{Text: "Nothing here."}, ID: "empty"},
		{Passage: Passage{Text: "Dee won the Nobel Prize at the Expo in Paris for Acme."}, ID: "custom-id",
			Tuples: []Tuple{{"Dee", "person"}, {"Nobel Prize", "award"}, {"Expo", "event"}, {"Paris", "location"}, {"Acme", "organization"}}},
	}
}

// pairs returns a record's question/answer pairs as "type=answer", sorted.
func pairs(t *testing.T, r Record) []string {
	t.Helper()
	var out []string
	for i := 2; i+1 < len(r.Conversations); i += 2 {
		q, a := r.Conversations[i], r.Conversations[i+1]
		typ, ok := strings.CutPrefix(q.Value, "What describes ")
		if ok {
			typ, ok = strings.CutSuffix(typ, " in the text?")
		}
		if !ok || q.From != "human" || a.From != "gpt" {
			t.Fatalf("record %s: turns %d-%d are %+v, %+v", r.ID, i, i+1, q, a)
		}
		out = append(out, typ+"="+a.Value)
	}
	slices.Sort(out)
	return out
}

func TestBuildWithoutNegatives(t *testing.T) {
	ls := testLabelled()
	records, skipped := Build(ls, BuildOptions{Seed: 1})
	if skipped != 1 || len(records) != 3 {
		t.Fatalf("Build: %d records, %d skipped; want 3, 1", len(records), skipped)
	}
	wantIDs := []string{"a.txt#0", "a.txt#1", "custom-id"}
	wantPairs := [][]string{
		{`location=["London"]`, `person=["Ada", "Bob"]`},
		{`date=["3 May"]`, `organization=["Acme"]`, `person=["Cy"]`},
		{`award=["Nobel Prize"]`, `event=["Expo"]`, `location=["Paris"]`, `organization=["Acme"]`, `person=["Dee"]`},
	}
	texts := []string{ls[0].Passage.Text, ls[1].Passage.Text, ls[3].Passage.Text}
	for i, r := range records {
		if r.ID != wantIDs[i] {
			t.Errorf("record %d: id %q; want %q", i, r.ID, wantIDs[i])
		}
		head := []Turn{{"human", "Text: " + texts[i]}, {"gpt", "I've read this text."}}
		if !reflect.DeepEqual(r.Conversations[:2], head) {
			t.Errorf("record %d starts %+v", i, r.Conversations[:2])
		}
		if got := pairs(t, r); !slices.Equal(got, wantPairs[i]) {
			t.Errorf("record %d: pairs %q; want %q", i, got, wantPairs[i])
		}
	}
}

func TestBuildNegatives(t *testing.T) {
	ls := testLabelled()
	freq := TypeFrequencies(ls)
	for _, pol := range []NegativePolicy{{Count: 2}, {Ratio: 0.5}, {Count: 100}} {
		records, skipped := Build(ls, BuildOptions{Negatives: pol, Seed: 7})
		wantSkipped := 0
		if pol.Count == 0 {
			wantSkipped = 1 // the passage without entities gets no negatives
		}
		if skipped != wantSkipped {
			t.Errorf("%+v: %d skipped; want %d", pol, skipped, wantSkipped)
		}
		for _, r := range records {
			var l Labelled
			for _, c := range ls {
				if strings.HasSuffix(r.Conversations[0].Value, c.Passage.Text) {
					l = c
				}
			}
			positive := map[string]bool{}
			for _, tp := range l.Tuples {
				positive[tp.Type] = true
			}
			negatives := 0
			for _, p := range pairs(t, r) {
				typ, ans, _ := strings.Cut(p, "=")
				if ans != "[]" {
					continue
				}
				negatives++
				if positive[typ] || freq[typ] == 0 {
					t.Errorf("%+v: record %s: negative type %q is positive or not in the dataset", pol, r.ID, typ)
				}
			}
			want := min(pol.n(len(positive)), len(freq)-len(positive))
			if negatives != want {
				t.Errorf("%+v: record %s has %d negatives; want %d", pol, r.ID, negatives, want)
			}
		}
	}
}

func TestBuildShuffles(t *testing.T) {
	ls := testLabelled()
	// The last passage has five positive types, and one type of the
	// dataset (date) is left for its one negative.
	want := `award=["Nobel Prize"]|date=[]|event=["Expo"]|location=["Paris"]|organization=["Acme"]|person=["Dee"]`
	orders := map[string]bool{}
	for seed := range uint64(30) {
		records, skipped := Build(ls, BuildOptions{Seed: seed, Negatives: NegativePolicy{Count: 1}})
		if skipped != 0 || len(records) != 4 || records[3].ID != "custom-id" {
			t.Fatalf("seed %d: %d records, %d skipped", seed, len(records), skipped)
		}
		r := records[3]
		var order []string
		for _, turn := range r.Conversations[2:] {
			order = append(order, turn.Value)
		}
		orders[strings.Join(order, "|")] = true
		if got := strings.Join(pairs(t, r), "|"); got != want {
			t.Errorf("seed %d: pairs %s; want %s", seed, got, want)
		}
	}
	if len(orders) < 10 {
		t.Errorf("30 seeds gave only %d orders of the pairs", len(orders))
	}
}

func TestBuildDeterministic(t *testing.T) {
	var ls []Labelled
	for i := range 50 {
		var tuples []Tuple
		for j := range 1 + i%4 {
			tuples = append(tuples, Tuple{fmt.Sprintf("m%d", j), fmt.Sprintf("type%d", (i+j)%9)})
		}
		ls = append(ls, Labelled{Passage: Passage{Text: fmt.Sprintf("passage %d", i), Source: "s", Index: i}, Tuples: tuples})
	}
	opts := BuildOptions{Seed: 3, Negatives: NegativePolicy{Ratio: 1}}
	a, _ := Build(ls, opts)
	b, _ := Build(ls, opts)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different records")
	}
	opts.Seed = 4
	if c, _ := Build(ls, opts); reflect.DeepEqual(a, c) {
		t.Error("different seeds, same records")
	}

	// A passage's record does not depend on the draws made for earlier
	// passages: give passage 0 more types (drawing more, and a type of
	// its own that changes no other passage's candidates) and the rest
	// stay the same.
	changed := slices.Clone(ls)
	changed[0].Tuples = append(slices.Clone(ls[0].Tuples), Tuple{"x", "type1"}, Tuple{"y", "type2"}, Tuple{"z", "type3"})
	opts = BuildOptions{Seed: 3}
	a, _ = Build(ls, opts)
	c, _ := Build(changed, opts)
	if reflect.DeepEqual(a[0], c[0]) {
		t.Fatal("passage 0 unchanged; the test shows nothing")
	}
	if !reflect.DeepEqual(a[1:], c[1:]) {
		t.Error("changing passage 0 changed the records of later passages")
	}
}

// TestBuildNamedTypesAreNotNegatives: a type the teacher named for a
// passage, though Filter dropped its mention, is never that passage's
// negative.
func TestBuildNamedTypesAreNotNegatives(t *testing.T) {
	ls := []Labelled{
		{Passage: Passage{Text: "Ada met Babbage in London.", Source: "a"}, Tuples: []Tuple{{"Ada", "person"}, {"London", "city"}}},
		{Passage: Passage{Text: "The bridge opened.", Source: "b"}, Tuples: []Tuple{{"bridge", "structure"}}},
		// The teacher named "person" here, but its mention was not
		// verbatim and was dropped.
		{Passage: Passage{Text: "grace hopper wrote COBOL.", Source: "c"}, Tuples: []Tuple{{"COBOL", "language"}}, Named: []string{"person", "language"}},
	}
	for seed := range uint64(200) {
		records, _ := Build(ls, BuildOptions{Negatives: NegativePolicy{Count: 3}, Seed: seed})
		for _, p := range pairs(t, records[2]) {
			if p == "person=[]" {
				t.Fatalf("seed %d: the named type person was drawn as a negative", seed)
			}
		}
	}
}
