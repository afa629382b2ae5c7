package eval

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model"
)

// DefaultLabelMap maps the labels of common CoNLL-style NER datasets
// (CoNLL-2003 and CrossNER) to the entity type names that UniNER's test
// sets ask about, and drops "misc", which names no type. Keys are lower
// case. A label missing from the map is used as written, in lower case.
func DefaultLabelMap() map[string]string {
	return map[string]string{
		"per":                "person",
		"loc":                "location",
		"org":                "organization",
		"organisation":       "organization",
		"misc":               "",
		"programlang":        "program language",
		"literarygenre":      "literary genre",
		"musicalartist":      "musical artist",
		"musicalinstrument":  "musical instrument",
		"musicgenre":         "music genre",
		"politicalparty":     "political party",
		"astronomicalobject": "astronomical object",
		"chemicalelement":    "chemical element",
		"chemicalcompound":   "chemical compound",
		"academicjournal":    "academic journal",
	}
}

// ParseLabelMap reads "label=type,label=type" (an empty type drops the
// label) and lays it over [DefaultLabelMap].
func ParseLabelMap(s string) (map[string]string, error) {
	m := DefaultLabelMap()
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("label map entry %q: want label=type (type empty to drop the label)", kv)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// conllToken is a token and the entity tag it carries.
type conllToken struct {
	text   string
	prefix byte // 'B', 'I', 'E', 'S' or 'O'
	label  string
}

// ReadCoNLL reads token-per-line NER data: "token<TAB>tag" (2 columns) or
// CoNLL-2003's "token POS chunk tag" (4 columns; the tag is the last
// column, the token the first). A blank line ends a sentence, and
// "-DOCSTART-" lines are skipped. Tags are BIO, IOB1, IOB2 or BIOES (BILOU
// too); an I- tag that does not continue an entity of its type starts one.
//
// Each sentence becomes a passage, its tokens joined by single spaces (as in
// UniNER's test sets), asked about every entity type of the file, in order
// of first appearance. labels maps a tag's label (lower-cased) to its entity
// type; an empty type drops it; a label not in the map is used in lower
// case. Query ids are "name/sentence/type", sentences numbered from 0.
func ReadCoNLL(r io.Reader, name string, labels map[string]string) (Dataset, error) {
	type sentence struct{ tokens []conllToken }
	var sents []sentence
	var cur []conllToken
	var types []string
	seenType := map[string]bool{}
	flush := func() {
		if len(cur) > 0 {
			sents = append(sents, sentence{cur})
			cur = nil
		}
	}
	err := readLines(r, func(n int, line string) error {
		if !utf8.ValidString(line) {
			return formatError(n, "not valid UTF-8")
		}
		if strings.TrimSpace(line) == "" {
			flush()
			return nil
		}
		var cols []string
		if strings.Contains(line, "\t") {
			cols = strings.Split(line, "\t")
		} else {
			cols = strings.Fields(line)
		}
		if cols[0] == "-DOCSTART-" {
			flush()
			return nil
		}
		if len(cols) < 2 {
			return formatError(n, "want a token and a tag, got %q", line)
		}
		tok := conllToken{text: strings.TrimSpace(cols[0])}
		if tok.text == "" {
			return formatError(n, "empty token")
		}
		tag := strings.TrimSpace(cols[len(cols)-1])
		if tag == "O" {
			tok.prefix = 'O'
		} else {
			p, label, ok := strings.Cut(tag, "-")
			if !ok || len(p) != 1 || label == "" || !strings.Contains("BIESLUbieslu", p) {
				return formatError(n, "tag %q is not O or B-, I-, E-, S-, L-, U- followed by a label", tag)
			}
			switch tok.prefix = p[0] &^ 0x20; tok.prefix { // upper case
			case 'L':
				tok.prefix = 'E'
			case 'U':
				tok.prefix = 'S'
			}
			typ, mapped := labels[strings.ToLower(label)]
			if !mapped {
				typ = strings.ToLower(label)
			}
			if typ == "" {
				tok.prefix = 'O'
			} else {
				tok.label = typ
				if !seenType[typ] {
					seenType[typ] = true
					types = append(types, typ)
				}
			}
		}
		cur = append(cur, tok)
		return nil
	})
	if err != nil {
		return Dataset{}, err
	}
	flush()
	if len(sents) == 0 {
		return Dataset{}, formatError(0, "no sentences")
	}
	d := Dataset{Name: name}
	for si, s := range sents {
		var text strings.Builder
		starts := make([]int, len(s.tokens)+1) // code-point offsets
		pos := 0
		for i, t := range s.tokens {
			if i > 0 {
				text.WriteByte(' ')
				pos++
			}
			starts[i] = pos
			text.WriteString(t.text)
			pos += utf8.RuneCountInString(t.text)
		}
		ends := func(i int) int { return starts[i] + utf8.RuneCountInString(s.tokens[i].text) }
		type entity struct {
			span  model.Span
			label string
		}
		var ents []entity
		open := -1 // index in ents of the entity that may continue
		for i, t := range s.tokens {
			switch {
			case t.prefix == 'O':
				open = -1
			case t.prefix == 'B' || t.prefix == 'S' || open < 0 || ents[open].label != t.label:
				ents = append(ents, entity{model.Span{Start: starts[i], End: ends(i)}, t.label})
				open = len(ents) - 1
				if t.prefix == 'S' || t.prefix == 'E' {
					open = -1
				}
			default: // I or E continuing the open entity
				ents[open].span.End = ends(i)
				if t.prefix == 'E' {
					open = -1
				}
			}
		}
		txt := text.String()
		runes := []rune(txt)
		for _, typ := range types {
			q := Query{ID: fmt.Sprintf("%s/%d/%s", name, si, typ), Text: txt, Type: typ, GoldSpans: []model.Span{}}
			for _, e := range ents {
				if e.label == typ {
					q.Gold = append(q.Gold, string(runes[e.span.Start:e.span.End]))
					q.GoldSpans = append(q.GoldSpans, e.span)
				}
			}
			d.Queries = append(d.Queries, q)
		}
	}
	return d, nil
}
