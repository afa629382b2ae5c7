package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// pyString is a JSON string decoded as Python's json module decodes it.
type pyString string

func (s *pyString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return fmt.Errorf("want a string, got null")
	}
	v, err := model.UnquoteJSON(string(b))
	if err != nil {
		return err
	}
	*s = pyString(v)
	return nil
}

// conversation is one record of UniNER's conversation format (also that of
// Pile-NER, its training data).
type conversation struct {
	ID            pyString `json:"id"`
	Conversations []struct {
		From  pyString `json:"from"`
		Value pyString `json:"value"`
	} `json:"conversations"`
}

// ReadUniNER reads UniNER conversation JSON: a list of records, or one
// record per line. A record's first human turn holds the passage after
// "Text: "; each later human turn "What describes X in the text?" and the
// answer after it make one query. A record with one question keeps its id
// as the query's id; one with several numbers them "id/0", "id/1", ….
// name is the dataset's name.
func ReadUniNER(r io.Reader, name string) (Dataset, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Dataset{}, err
	}
	var records []conversation
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &records); err != nil {
			return Dataset{}, formatError(0, "not UniNER conversation JSON: %v", err)
		}
	} else {
		err := readLines(bytes.NewReader(data), func(n int, text string) error {
			if strings.TrimSpace(text) == "" {
				return nil
			}
			var c conversation
			if err := json.Unmarshal([]byte(text), &c); err != nil {
				return formatError(n, "not a UniNER conversation record: %v", err)
			}
			records = append(records, c)
			return nil
		})
		if err != nil {
			return Dataset{}, err
		}
	}
	d := Dataset{Name: name}
	for i, rec := range records {
		id := string(rec.ID)
		if id == "" {
			id = fmt.Sprintf("%d", i)
		}
		where := fmt.Sprintf("record %d (id %q)", i, id)
		turns := rec.Conversations
		if len(turns) < 4 || len(turns)%2 != 0 {
			return Dataset{}, formatError(0, "%s: want the passage, its acknowledgement, then question/answer pairs; got %d turns", where, len(turns))
		}
		first := string(turns[0].Value)
		_, text, ok := strings.Cut(first, "Text: ")
		if !ok {
			return Dataset{}, formatError(0, "%s: the first turn does not start the passage with \"Text: \"", where)
		}
		questions := len(turns)/2 - 1
		for k := 0; k < questions; k++ {
			q := string(turns[2+2*k].Value)
			typ, ok := strings.CutPrefix(q, "What describes ")
			if ok {
				typ, ok = strings.CutSuffix(typ, " in the text?")
			}
			if !ok {
				return Dataset{}, formatError(0, "%s: turn %d is not \"What describes X in the text?\": %.60q", where, 2+2*k, q)
			}
			qid := id
			if questions > 1 {
				qid = fmt.Sprintf("%s/%d", id, k)
			}
			d.Queries = append(d.Queries, Query{
				ID:   qid,
				Text: text,
				Type: typ,
				Gold: model.ParseOfficial(string(turns[3+2*k].Value)),
			})
		}
	}
	if len(d.Queries) == 0 {
		return Dataset{}, formatError(0, "no queries")
	}
	return d, nil
}
