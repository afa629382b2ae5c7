package modeltest

import (
	"math"
	"testing"

	"github.com/nerstream/nerstream/model"
)

func TestMentionProbabilities(t *testing.T) {
	lp := math.Log
	for _, tc := range []struct {
		name   string
		answer string
		toks   []model.TokenLogProb
		want   map[string]float64
		ok     bool
	}{
		// `["` holds nothing of "y": not counted; `y` and `",` are, and
		// `"P` and `"]` for "P".
		{"two", `["y","P"]`, []model.TokenLogProb{{Bytes: 2, LogProb: lp(0.5)}, {Bytes: 1, LogProb: lp(0.1)}, {Bytes: 2, LogProb: lp(0.2)}, {Bytes: 2, LogProb: lp(0.3)}, {Bytes: 2, LogProb: lp(0.4)}},
			map[string]float64{"y": 0.1 * 0.2, "P": 0.3 * 0.4}, true},
		{"repeat", `["a", "a"]`, []model.TokenLogProb{{Bytes: 3, LogProb: lp(0.5)}, {Bytes: 4, LogProb: lp(0.25)}, {Bytes: 3, LogProb: lp(0.1)}},
			map[string]float64{"a": 0.5 * 0.25}, true},
		{"empty", `[]`, []model.TokenLogProb{{Bytes: 2, LogProb: lp(0.9)}}, map[string]float64{}, true},
		{"escape", `["a\"b"]`, []model.TokenLogProb{{Bytes: 8, LogProb: 0}}, nil, false},
		{"tokens short", `["a"]`, []model.TokenLogProb{{Bytes: 2, LogProb: 0}}, nil, false},
	} {
		got, ok := MentionProbabilities(tc.answer, tc.toks)
		if ok != tc.ok || len(got) != len(tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
			continue
		}
		for k, w := range tc.want {
			if math.Abs(got[k]-w) > 1e-12 {
				t.Errorf("%s: %q %v, want %v", tc.name, k, got[k], w)
			}
		}
	}
}

func TestRankCalibration(t *testing.T) {
	c, err := RankCalibration([]float64{3e-9, 1e-12, 3e-9, 5e-6})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[float64]float64{1e-12: 0.05, 3e-9: 0.5, 5e-6: 0.95} {
		if p, ok := Precision(c, s); !ok || p != want || c.Apply(s) != want {
			t.Errorf("%v: precision %v %v, apply %v, want %v", s, p, ok, c.Apply(s), want)
		}
	}
	if _, err := RankCalibration([]float64{0.1, 0.1}); err == nil {
		t.Error("one distinct score: accepted")
	}
}
