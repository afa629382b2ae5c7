package model

import (
	"math"
	"strings"

	"github.com/nerstream/nerstream/record"
)

// Scores (issue 19). A mention's score is the probability the model gave
// the tokens that spell it: the product, over every generated token that
// overlaps the bytes from the mention's first character to its closing
// quote (inclusive), of that token's probability. The closing quote counts
// because it is the model saying "the mention ends here": without it "Jane"
// would score as high as the "Jane Doe" it begins. A token that straddles a
// boundary (` ["Jane`, `",`, `"]`) counts whole: its probability is the
// model's choice of all its bytes, and cannot be split between them. The
// opening quote alone, in a token that holds nothing of the mention (`["`),
// does not count: the model chose to open a string, not which one.
//
// The answer "[]" scores as the product of all its tokens: decoding stops at
// its "]" (the in-process engine does not wait for EOS, so the end is the
// closing bracket, and no extra decode is spent on EOS).
//
// A mention is found in the answer by decoding each quoted string that
// starts a list item (after "[" or ","), double- or single-quoted as the
// lenient parser reads them; the first string that decodes to the mention is
// the one scored, as the parsers keep the first of repeats.

// scoredAnswer holds the log-probability of each string in one answer.
type scoredAnswer struct {
	mentions map[string]float64 // log-probability of the first string of each value
	empty    bool               // the answer is "[]"
	emptyLP  float64            // its log-probability
}

// scoreAnswer reads the scores of an answer text from its tokens. ok is
// false where the tokens are missing or do not spell the text (an engine
// that gave no probabilities, or a server whose tokens do not add up).
func scoreAnswer(text string, toks []TokenLogProb) (s scoredAnswer, ok bool) {
	if toks == nil {
		return s, false
	}
	ends := make([]int, len(toks)) // byte end of each token
	n := 0
	for i, t := range toks {
		if t.Bytes < 0 || math.IsNaN(t.LogProb) || t.LogProb > 0 {
			return s, false
		}
		n += t.Bytes
		ends[i] = n
	}
	if n != len(text) {
		return s, false
	}
	// logProb sums the tokens that overlap text[from:to].
	logProb := func(from, to int) float64 {
		sum, start := 0.0, 0
		for i, t := range toks {
			if ends[i] > from && start < to {
				sum += t.LogProb
			}
			start = ends[i]
		}
		return sum
	}
	if strings.TrimSpace(text) == "[]" {
		s.empty, s.emptyLP = true, logProb(0, len(text))
	}
	s.mentions = map[string]float64{}
	prev := byte(0) // the last byte outside strings that is not space
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"', '\'':
			if prev != '[' && prev != ',' {
				break
			}
			decode := decodePyJSONString
			if c == '\'' {
				decode = decodeSingleQuoted
			}
			v, next, err := decode(text, i)
			if err != nil {
				return s, true // cut short: the strings before are scored
			}
			if _, seen := s.mentions[v]; !seen {
				s.mentions[v] = logProb(i+1, next)
			}
			i, prev = next-1, '"'
			continue
		}
		prev = c
	}
	return s, true
}

// probability turns a log-probability into a record's score.
func probability(lp float64) *float64 {
	p := record.RoundScore(math.Exp(lp))
	return &p
}

// AnswerScores returns the scores of one answer as records carry them
// (probabilities rounded by [record.RoundScore]): each string of the answer
// by its decoded value, and the score of the answer "[]" (nil unless the
// answer is "[]"). ok is false where the tokens are missing or do not spell
// the text; then there are no scores. It is for callers that keep raw
// answers, such as saved evaluation predictions.
func AnswerScores(text string, toks []TokenLogProb) (mentions map[string]float64, empty *float64, ok bool) {
	s, ok := scoreAnswer(text, toks)
	if !ok {
		return nil, nil, false
	}
	mentions = make(map[string]float64, len(s.mentions))
	for v, lp := range s.mentions {
		mentions[v] = *probability(lp)
	}
	if s.empty {
		empty = probability(s.emptyLP)
	}
	return mentions, empty, true
}
