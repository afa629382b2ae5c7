package distill

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func turns(values ...string) []Turn {
	out := make([]Turn, len(values))
	for i, v := range values {
		out[i] = Turn{From: []string{"human", "gpt"}[i%2], Value: v}
	}
	return out
}

func TestComputeStatsByHand(t *testing.T) {
	records := []Record{
		{ID: "r0", Conversations: turns("Text: Ada and Bob in Rome.", "I've read this text.",
			"What describes person in the text?", `["Ada", "Bob"]`,
			"What describes date in the text?", `[]`,
			"What describes city in the text?", `["Rome"]`)},
		{ID: "r1", Conversations: turns("Text: Cy in Oslo.", "I've read this text.",
			"What describes city in the text?", `["Oslo"]`,
			"What describes person in the text?", `["Cy"]`,
			"What describes award in the text?", `[]`,
			"What describes bad answer in the text?", `Oslo`)}, // unreadable: negative
		{ID: "r2", Conversations: turns("Text: nothing", "I've read this text.")},
	}
	got, err := ComputeStats(records, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Passages: 3, Pairs: 7, PositivePairs: 4, NegativePairs: 3, Entities: 5, DistinctTypes: 2,
		NegativeRatio: 0.75, PairsPerPassage: 7.0 / 3,
		TopTypes: []TypeCount{{"city", 2, 2}, {"person", 2, 3}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ComputeStats =\n%+v\nwant\n%+v", got, want)
	}
	got, _ = ComputeStats(records, 1)
	if !reflect.DeepEqual(got.TopTypes, want.TopTypes[:1]) {
		t.Errorf("top 1: %+v", got.TopTypes)
	}
	got, _ = ComputeStats(records, 0)
	if len(got.TopTypes) != 0 {
		t.Errorf("top 0: %+v", got.TopTypes)
	}
	if b, _ := json.Marshal(got); !strings.Contains(string(b), `"top_types":[]`) {
		t.Errorf("JSON %s", b)
	}
	empty, err := ComputeStats(nil, 5)
	if err != nil || !reflect.DeepEqual(empty, Stats{TopTypes: []TypeCount{}}) {
		t.Errorf("no records: %+v, %v", empty, err)
	}
}

func TestComputeStatsOfBuild(t *testing.T) {
	// A random dataset; the expected figures come from the Labelled
	// passages, not from the records.
	rng := rand.New(rand.NewPCG(8, 8))
	var ls []Labelled
	for i := range 300 {
		var tuples []Tuple
		for range rng.IntN(6) {
			tuples = append(tuples, Tuple{fmt.Sprintf("m%d", rng.IntN(4)), fmt.Sprintf("t%d", rng.IntN(12))})
		}
		ls = append(ls, Labelled{Passage: Passage{Text: fmt.Sprintf("p%d", i), Source: "s", Index: i}, Tuples: tuples})
	}
	pol := NegativePolicy{Ratio: 0.7}
	records, skipped := Build(ls, BuildOptions{Negatives: pol, Seed: 1})
	got, err := ComputeStats(records, 5)
	if err != nil {
		t.Fatal(err)
	}
	freq := TypeFrequencies(ls)
	var want Stats
	mentions := map[string]int{}
	for _, l := range ls {
		types := map[string]bool{}
		distinct := map[Tuple]bool{}
		for _, tp := range l.Tuples {
			types[tp.Type] = true
			distinct[tp] = true
		}
		for tp := range distinct {
			mentions[tp.Type]++
		}
		neg := min(pol.n(len(types)), len(freq)-len(types))
		if len(types)+neg == 0 {
			continue
		}
		want.Passages++
		want.PositivePairs += len(types)
		want.NegativePairs += neg
		want.Entities += len(distinct)
	}
	want.Pairs = want.PositivePairs + want.NegativePairs
	want.DistinctTypes = len(freq)
	want.NegativeRatio = float64(want.NegativePairs) / float64(want.PositivePairs)
	want.PairsPerPassage = float64(want.Pairs) / float64(want.Passages)
	for ty, n := range freq {
		want.TopTypes = append(want.TopTypes, TypeCount{ty, n, mentions[ty]})
	}
	slices.SortFunc(want.TopTypes, func(a, b TypeCount) int {
		if a.Passages != b.Passages {
			return b.Passages - a.Passages
		}
		return strings.Compare(a.Type, b.Type)
	})
	want.TopTypes = want.TopTypes[:5]
	if skipped != len(ls)-want.Passages {
		t.Errorf("Build skipped %d; want %d", skipped, len(ls)-want.Passages)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ComputeStats =\n%+v\nwant\n%+v", got, want)
	}
}

func TestComputeStatsRejectsBadRecords(t *testing.T) {
	good := turns("Text: a", "ok", "What describes x in the text?", "[]")
	swap := func(i int, tu Turn) []Turn {
		c := slices.Clone(good)
		c[i] = tu
		return c
	}
	tests := map[string][]Turn{
		"no turns":                  nil,
		"odd turns":                 good[:3],
		"no passage prefix":         swap(0, Turn{"human", "a"}),
		"passage from gpt":          swap(0, Turn{"gpt", "Text: a"}),
		"ack from human":            swap(1, Turn{"human", "ok"}),
		"not a question":            swap(2, Turn{"human", "Who is x?"}),
		"prefix and suffix overlap": swap(2, Turn{"human", "What describes in the text?"}),
		"question from gpt":         swap(2, Turn{"gpt", "What describes x in the text?"}),
		"answer from human":         swap(3, Turn{"human", "[]"}),
	}
	for name, tu := range tests {
		records := []Record{{ID: "fine", Conversations: good}, {ID: "bad-" + name, Conversations: tu}}
		_, err := ComputeStats(records, 3)
		if err == nil || !strings.Contains(err.Error(), `"bad-`+name+`"`) {
			t.Errorf("%s: error %v; want one naming the record", name, err)
		}
	}
	if _, err := ComputeStats([]Record{{ID: "fine", Conversations: good}}, 3); err != nil {
		t.Errorf("good record: %v", err)
	}
}
