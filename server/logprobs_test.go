package server

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/nerstream/nerstream/model"
)

func TestChoiceLogprobs(t *testing.T) {
	c := model.Completion{Text: " [\"Zoë\"]", Tokens: []model.TokenLogProb{{Bytes: 4, LogProb: -0.25}, {Bytes: 1, LogProb: -1}, {Bytes: 1, LogProb: math.Inf(-1)}, {Bytes: 3, LogProb: 0}}}
	lp := choiceLogprobs(c)
	b, err := json.Marshal(lp)
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	// The ë is cut in two tokens: its bytes are exact in the chat form.
	if len(lp.Tokens) != 4 || lp.TextOffset[3] != 6 || *lp.TokenLogprobs[0] != -0.25 || *lp.TokenLogprobs[2] != -math.MaxFloat64 ||
		len(lp.Content[2].Bytes) != 1 || lp.Content[2].Bytes[0] != 0xc3 || *lp.Content[3].Logprob != 0 {
		t.Errorf("logprobs %s", b)
	}
	for name, bad := range map[string]model.Completion{
		"NaN":                {Text: "[]", Tokens: []model.TokenLogProb{{Bytes: 2, LogProb: math.NaN()}}},
		"past the text":      {Text: "[]", Tokens: []model.TokenLogProb{{Bytes: 3, LogProb: -1}}},
		"negative bytes":     {Text: "[]", Tokens: []model.TokenLogProb{{Bytes: -1, LogProb: -1}}},
		"no log-probs given": {Text: "[]"},
	} {
		if lp := choiceLogprobs(bad); lp != nil {
			t.Errorf("%s: %+v, want none", name, lp)
		}
	}
}
