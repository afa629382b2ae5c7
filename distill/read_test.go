package distill

import (
	"errors"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	collect := func(in string) ([]Document, error) {
		var docs []Document
		for d, err := range ReadFile(strings.NewReader(in), "in.txt") {
			if err != nil {
				return docs, err
			}
			docs = append(docs, d)
		}
		return docs, nil
	}
	docs, err := collect("{\"id\": \"a\", \"text\": \"Ada wrote.\"}\n\n{\"text\": \"Grace sailed.\"}\n")
	if err != nil || len(docs) != 2 || docs[0].Source != "a" || docs[1].Source != "in.txt:3" || docs[1].Text != "Grace sailed." {
		t.Errorf("JSON lines: %+v, %v", docs, err)
	}
	docs, err = collect("Ada wrote\nthe first program.\n\n\nGrace sailed.")
	if err != nil || len(docs) != 2 || docs[0].Source != "in.txt:1" || docs[0].Text != "Ada wrote\nthe first program.\n" || docs[1].Source != "in.txt:5" {
		t.Errorf("text blocks: %+v, %v", docs, err)
	}
	docs, err = collect("{\"text\": \"fine\"}\n{\"text\": 42}\n{\"text\": \"never read\"}\n")
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "in.txt:2") || len(docs) != 1 {
		t.Errorf("a bad line: %+v, %v", docs, err)
	}
}
