package distill

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// Stats are the figures the paper reports for Pile-NER.
type Stats struct {
	Passages        int     `json:"passages"`
	Pairs           int     `json:"pairs"`          // question/answer pairs
	PositivePairs   int     `json:"positive_pairs"` // answers with mentions
	NegativePairs   int     `json:"negative_pairs"` // answers without: []
	Entities        int     `json:"entities"`       // mentions over all positive answers
	DistinctTypes   int     `json:"distinct_types"` // types with a positive pair
	NegativeRatio   float64 `json:"negative_ratio"` // negative pairs / positive pairs
	PairsPerPassage float64 `json:"pairs_per_passage"`
	// TopTypes are the most frequent types by the passages in which they
	// have a positive pair, ties broken by name.
	TopTypes []TypeCount `json:"top_types"`
}

// TypeCount is how often a type occurs.
type TypeCount struct {
	Type     string `json:"type"`
	Passages int    `json:"passages"` // passages with a positive pair for it
	Mentions int    `json:"mentions"` // mentions in its positive answers
}

// ComputeStats reads the figures from records; top bounds TopTypes (none
// when top <= 0). It parses each answer with model.ParseOfficial, as the
// official evaluation would: an answer that gives no mentions (including
// one the parser cannot read) makes a negative pair. A record that is not a
// passage turn, an acknowledgement and question/answer pairs is an error
// naming the record's id.
func ComputeStats(records []Record, top int) (Stats, error) {
	var st Stats
	counts := make(map[string]*TypeCount)
	for i, r := range records {
		if err := checkRecord(r); err != nil {
			return Stats{}, fmt.Errorf("distill: record %d (id %q): %w", i, r.ID, err)
		}
		st.Passages++
		inRecord := make(map[string]bool)
		for k := 2; k < len(r.Conversations); k += 2 {
			typ := strings.TrimSuffix(strings.TrimPrefix(r.Conversations[k].Value, questionPrefix), questionSuffix)
			mentions := model.ParseOfficial(r.Conversations[k+1].Value)
			st.Pairs++
			if len(mentions) == 0 {
				st.NegativePairs++
				continue
			}
			st.PositivePairs++
			st.Entities += len(mentions)
			c := counts[typ]
			if c == nil {
				c = &TypeCount{Type: typ}
				counts[typ] = c
			}
			c.Mentions += len(mentions)
			if !inRecord[typ] {
				inRecord[typ] = true
				c.Passages++
			}
		}
	}
	st.DistinctTypes = len(counts)
	if st.PositivePairs > 0 {
		st.NegativeRatio = float64(st.NegativePairs) / float64(st.PositivePairs)
	}
	if st.Passages > 0 {
		st.PairsPerPassage = float64(st.Pairs) / float64(st.Passages)
	}
	all := make([]TypeCount, 0, len(counts))
	for _, c := range counts {
		all = append(all, *c)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Passages != all[j].Passages {
			return all[i].Passages > all[j].Passages
		}
		return all[i].Type < all[j].Type
	})
	st.TopTypes = all[:max(0, min(top, len(all)))]
	return st, nil
}

// checkRecord reports what makes a record other than a passage turn, an
// acknowledgement and question/answer pairs.
func checkRecord(r Record) error {
	turns := r.Conversations
	if len(turns) < 2 || len(turns)%2 != 0 {
		return fmt.Errorf("want the passage, its acknowledgement, then question/answer pairs; got %d turns", len(turns))
	}
	if turns[0].From != humanRole || !strings.HasPrefix(turns[0].Value, passagePrefix) {
		return fmt.Errorf("turn 0 is not the human's %q and a passage", passagePrefix)
	}
	if turns[1].From != gptRole {
		return fmt.Errorf("turn 1 is not gpt's acknowledgement")
	}
	for k := 2; k < len(turns); k += 2 {
		q := turns[k].Value
		if turns[k].From != humanRole || !strings.HasPrefix(q, questionPrefix) || !strings.HasSuffix(q, questionSuffix) ||
			len(q) < len(questionPrefix)+len(questionSuffix) {
			return fmt.Errorf("turn %d is not the human's question %q: %.60q", k, question("X"), q)
		}
		if turns[k+1].From != gptRole {
			return fmt.Errorf("turn %d is not gpt's answer", k+1)
		}
	}
	return nil
}
