package eval

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/shareddata"
	"github.com/nerstream/nerstream/model"
)

// conllQuery is what a test expects of one query: its type and gold
// mentions (in order), and their code-point spans.
type conllQuery struct {
	typ   string
	gold  []string
	spans []model.Span
}

func sp(start, end int) model.Span { return model.Span{Start: start, End: end} }

func TestReadCoNLL(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		labels map[string]string // nil: DefaultLabelMap
		texts  []string          // one per sentence
		// queries lists, per sentence, the queries in type order.
		queries [][]conllQuery
	}{
		{
			name:  "two-column tab BIO",
			in:    "Ada\tB-PER\nLovelace\tI-PER\nmet\tO\nBabbage\tB-PER\n.\tO\n\nIn\tO\nLondon\tB-LOC\n\n",
			texts: []string{"Ada Lovelace met Babbage .", "In London"},
			queries: [][]conllQuery{
				{{"person", []string{"Ada Lovelace", "Babbage"}, []model.Span{sp(0, 12), sp(17, 24)}}, {"location", nil, []model.Span{}}},
				{{"person", nil, []model.Span{}}, {"location", []string{"London"}, []model.Span{sp(3, 9)}}},
			},
		},
		{
			name: "four-column CoNLL-2003 with -DOCSTART- and CRLF",
			in: "-DOCSTART- -X- -X- O\r\n\r\nSOCCER NN I-NP O\r\n- : O O\r\nJAPAN NNP I-NP B-LOC\r\nGET VB I-VP O\r\n\r\n" +
				"-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\nGerman JJ B-NP B-MISC\r\ncall NN I-NP O\r\n",
			texts: []string{"SOCCER - JAPAN GET", "EU rejects German call"},
			queries: [][]conllQuery{
				{{"location", []string{"JAPAN"}, []model.Span{sp(9, 14)}}, {"organization", nil, []model.Span{}}},
				{{"location", nil, []model.Span{}}, {"organization", []string{"EU"}, []model.Span{sp(0, 2)}}},
			},
		},
		{
			name:  "-DOCSTART- without a blank line after it ends the sentence",
			in:    "A\tB-PER\n-DOCSTART-\tO\nB\tB-PER\n",
			texts: []string{"A", "B"},
			queries: [][]conllQuery{
				{{"person", []string{"A"}, []model.Span{sp(0, 1)}}},
				{{"person", []string{"B"}, []model.Span{sp(0, 1)}}},
			},
		},
		{
			name: "IOB1: I- starts an entity, B- only between adjacent entities of a type",
			in: "Peter I-PER\nBlackburn I-PER\nJohn B-PER\nSmith I-PER\nand O\nMary I-PER\nin O\nBonn I-LOC\n" +
				"Paris B-LOC\n",
			texts: []string{"Peter Blackburn John Smith and Mary in Bonn Paris"},
			queries: [][]conllQuery{{
				{"person", []string{"Peter Blackburn", "John Smith", "Mary"}, []model.Span{sp(0, 15), sp(16, 26), sp(31, 35)}},
				{"location", []string{"Bonn", "Paris"}, []model.Span{sp(39, 43), sp(44, 49)}},
			}},
		},
		{
			name:  "BIOES",
			in:    "New\tB-LOC\nYork\tI-LOC\nCity\tE-LOC\nand\tO\nRome\tS-LOC\nRome\tS-LOC\nSan\tB-LOC\nJose\tE-LOC\nJose\tE-LOC\n",
			texts: []string{"New York City and Rome Rome San Jose Jose"},
			queries: [][]conllQuery{{
				// An E- with nothing open starts (and ends) an entity.
				{"location", []string{"New York City", "Rome", "Rome", "San Jose", "Jose"}, []model.Span{sp(0, 13), sp(18, 22), sp(23, 27), sp(28, 36), sp(37, 41)}},
			}},
		},
		{
			name:  "BILOU, lower-case prefixes",
			in:    "New\tB-LOC\nYork\tL-LOC\nRome\tU-LOC\nSan\tb-LOC\nJose\tl-LOC\n",
			texts: []string{"New York Rome San Jose"},
			queries: [][]conllQuery{{
				{"location", []string{"New York", "Rome", "San Jose"}, []model.Span{sp(0, 8), sp(9, 13), sp(14, 22)}},
			}},
		},
		{
			name:  "an I- of another type after B-X starts an entity",
			in:    "Bank\tB-ORG\nof\tI-ORG\nEngland\tI-LOC\nstaff\tI-LOC\n",
			texts: []string{"Bank of England staff"},
			queries: [][]conllQuery{
				{{"organization", []string{"Bank of"}, []model.Span{sp(0, 7)}}, {"location", []string{"England staff"}, []model.Span{sp(8, 21)}}},
			},
		},
		{
			name:  "label map: org mapped, misc dropped, unmapped labels lower-cased, an I- after misc starts an entity",
			in:    "Apple\tB-org\nBritish\tB-MISC\nBrown\tI-PER\nCOVID-19\tB-Disease\nAI\tB-field\nLisp\tB-programlang\n",
			texts: []string{"Apple British Brown COVID-19 AI Lisp"},
			queries: [][]conllQuery{{
				{"organization", []string{"Apple"}, []model.Span{sp(0, 5)}},
				{"person", []string{"Brown"}, []model.Span{sp(14, 19)}},
				{"disease", []string{"COVID-19"}, []model.Span{sp(20, 28)}},
				{"field", []string{"AI"}, []model.Span{sp(29, 31)}},
				{"program language", []string{"Lisp"}, []model.Span{sp(32, 36)}},
			}},
		},
		{
			name:   "a custom label map",
			in:     "Apple\tB-org\nBritish\tB-misc\nBrown\tB-per\n",
			labels: map[string]string{"org": "company", "misc": "nationality", "per": ""},
			texts:  []string{"Apple British Brown"},
			queries: [][]conllQuery{{
				{"company", []string{"Apple"}, []model.Span{sp(0, 5)}},
				{"nationality", []string{"British"}, []model.Span{sp(6, 13)}},
			}},
		},
		{
			name:  "unicode tokens: offsets are code points",
			in:    "Zürich\tB-LOC\nund\tO\n東京\tB-LOC\n😀\tO\nİstanbul\tB-LOC\nEl\tB-PER\nNiño\tI-PER\n",
			texts: []string{"Zürich und 東京 😀 İstanbul El Niño"},
			queries: [][]conllQuery{{
				{"location", []string{"Zürich", "東京", "İstanbul"}, []model.Span{sp(0, 6), sp(11, 13), sp(16, 24)}},
				{"person", []string{"El Niño"}, []model.Span{sp(25, 32)}},
			}},
		},
		{
			name:  "several blank lines, white space around the columns, a final sentence without a blank line",
			in:    "\n\n  A \t B-PER \n\n\n\nB\tO\n",
			texts: []string{"A", "B"},
			queries: [][]conllQuery{
				{{"person", []string{"A"}, []model.Span{sp(0, 1)}}},
				{{"person", nil, []model.Span{}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := tt.labels
			if labels == nil {
				labels = DefaultLabelMap()
			}
			d, err := ReadCoNLL(strings.NewReader(tt.in), "set", labels)
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "set" {
				t.Errorf("name %q, want set", d.Name)
			}
			var want []Query
			for si, qs := range tt.queries {
				for _, q := range qs {
					want = append(want, Query{ID: fmt.Sprintf("set/%d/%s", si, q.typ), Text: tt.texts[si], Type: q.typ, Gold: q.gold, GoldSpans: q.spans})
				}
			}
			if len(d.Queries) != len(want) {
				t.Fatalf("%d queries, want %d: %+v", len(d.Queries), len(want), d.Queries)
			}
			for i, q := range d.Queries {
				w := want[i]
				if q.ID != w.ID || q.Text != w.Text || q.Type != w.Type || !slices.Equal(q.Gold, w.Gold) ||
					q.GoldSpans == nil || !slices.Equal(q.GoldSpans, w.GoldSpans) {
					t.Errorf("query %d:\n got %+v\nwant %+v", i, q, w)
				}
				runes := []rune(q.Text)
				for k, s := range q.GoldSpans {
					if got := string(runes[s.Start:s.End]); k >= len(q.Gold) || got != q.Gold[k] {
						t.Errorf("query %s: span %v is %q, gold %q", q.ID, s, got, q.Gold)
					}
				}
			}
		})
	}
}

func TestReadCoNLLErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"one column", "EU\tB-ORG\n\nrejects\n", "line 3: want a token and a tag"},
		{"one column, spaces", "EU B-ORG\nrejects\n", "line 2: want a token and a tag"},
		{"bad tag prefix", "EU\tB-ORG\nfoo\tX-foo\n", `line 2: tag "X-foo" is not O or B-`},
		{"tag without a label", "EU\tB-\n", `line 1: tag "B-" is not O`},
		{"tag without a dash", "EU\tORG\n", `line 1: tag "ORG" is not O`},
		{"long prefix", "EU\tBI-ORG\n", `line 1: tag "BI-ORG"`},
		{"empty token", "EU\tB-ORG\n\tO\n", "line 2: empty token"},
		{"invalid UTF-8", "EU\tB-ORG\n\nZ\xfcrich\tB-LOC\n", "line 3: not valid UTF-8"},
		{"no sentences", "\n\n-DOCSTART- -X- -X- O\n\n", "no sentences"},
		{"empty", "", "no sentences"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCoNLL(strings.NewReader(tt.in), "set", DefaultLabelMap())
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseLabelMap(t *testing.T) {
	m, err := ParseLabelMap(" ORG = company , misc=nationality,per=")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"org": "company", "misc": "nationality", "per": "", "loc": "location", "programlang": "program language"} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("m[%q] = %q, %v; want %q", k, got, ok, v)
		}
	}
	if m, err := ParseLabelMap("  "); err != nil || len(m) != len(DefaultLabelMap()) {
		t.Errorf("ParseLabelMap(blank) = %v, %v; want the default map", m, err)
	}
	for _, bad := range []string{"org", "=x", "org=company,,", "org:company"} {
		if _, err := ParseLabelMap(bad); err == nil {
			t.Errorf("ParseLabelMap(%q): no error", bad)
		}
	}
}

// conllData is the folder of the shared data that holds the BIO files.
const conllData = "conll"

// TestCoNLLMatchesUniNER reads CrossNER's BIO test files and checks them
// against UniNER's conversions of the same test sets: the same sentences
// in the same order, and, for every type UniNER asks about, the same gold
// mentions.
//
// What was found (and is asserted below): the sentence texts agree exactly
// (CrossNER_politics.json lacks the last sentence of the politics BIO file,
// 651 sentences against 650, and is compared on the first 650), every type
// UniNER asks about is a label of the BIO file (with DefaultLabelMap; misc is
// never asked about), and the gold lists agree exactly, in order, for all
// queries but a few: AI 5,599 of 5,603 (4 differ), literature 4,574 of
// 4,576, music 5,578 of 5,580, politics 5,199 of 5,200, science 8,687 of
// 8,688. Every difference is a mention that ends at the last token of its
// sentence (a sentence without final punctuation, e.g. "... such as linear
// predictive coding , PSOLA"): UniNER's conversion lost an entity still
// open when the sentence ended. With such mentions removed from the BIO
// gold, all queries agree.
func TestCoNLLMatchesUniNER(t *testing.T) {
	conllDir := shareddata.Dir(t, conllData)
	uninerDir := shareddata.Dir(t, uninerData)
	tests := []struct {
		conll, uniner string
		sentences     int // in the BIO file
		compared      int // sentences in the UniNER file
		queries       int
		differ        int // queries whose gold lists differ
	}{
		{"crossner_ai_test.txt", "CrossNER_AI.json", 431, 431, 5603, 4},
		{"crossner_literature_test.txt", "CrossNER_literature.json", 416, 416, 4576, 2},
		{"crossner_music_test.txt", "CrossNER_music.json", 465, 465, 5580, 2},
		{"crossner_politics_test.txt", "CrossNER_politics.json", 651, 650, 5200, 1},
		{"crossner_science_test.txt", "CrossNER_science.json", 543, 543, 8688, 1},
	}
	for _, tt := range tests {
		t.Run(tt.conll, func(t *testing.T) {
			cds, err := Load(filepath.Join(conllDir, tt.conll), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			uds, err := Load(filepath.Join(uninerDir, tt.uniner), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cd, ud := cds[0], uds[0]

			// The BIO file: sentence texts, and per sentence the queries by type.
			var ctexts []string
			var cbytype []map[string]Query
			for _, q := range cd.Queries {
				si, err := sentenceIndex(q.ID, cd.Name)
				if err != nil {
					t.Fatal(err)
				}
				if si == len(ctexts) {
					ctexts = append(ctexts, q.Text)
					cbytype = append(cbytype, map[string]Query{})
				}
				cbytype[si][q.Type] = q
			}
			if len(ctexts) != tt.sentences {
				t.Errorf("%s: %d sentences, want %d", tt.conll, len(ctexts), tt.sentences)
			}

			// The UniNER file: consecutive records with the same passage
			// form one sentence (a type asked twice starts another: a
			// passage may occur twice in a row, as in CrossNER_AI).
			var utexts []string
			var asked map[string]bool
			differ, missingTypes := 0, 0
			for _, q := range ud.Queries {
				if len(utexts) == 0 || q.Text != utexts[len(utexts)-1] || asked[q.Type] {
					utexts = append(utexts, q.Text)
					asked = map[string]bool{}
				}
				asked[q.Type] = true
				si := len(utexts) - 1
				if si >= len(ctexts) {
					continue
				}
				if q.Text != ctexts[si] {
					continue // counted below
				}
				cq, ok := cbytype[si][q.Type]
				if !ok {
					missingTypes++
					t.Errorf("sentence %d: UniNER asks about %q, which the BIO file does not label", si, q.Type)
					continue
				}
				if slices.Equal(cq.Gold, q.Gold) {
					continue
				}
				differ++
				// Every difference: mentions ending the sentence are missing.
				n := len([]rune(cq.Text))
				var kept []string
				for k, s := range cq.GoldSpans {
					if s.End != n {
						kept = append(kept, cq.Gold[k])
					}
				}
				if !slices.Equal(kept, q.Gold) {
					t.Errorf("sentence %d, %s: BIO gold %q, UniNER gold %q (not only sentence-final mentions missing)", si, q.Type, cq.Gold, q.Gold)
				}
			}
			if len(utexts) != tt.compared {
				t.Errorf("%s: %d passages, want %d", tt.uniner, len(utexts), tt.compared)
			}
			for i := range min(len(utexts), len(ctexts)) {
				if utexts[i] != ctexts[i] {
					t.Fatalf("sentence %d: BIO text %q, UniNER text %q", i, ctexts[i], utexts[i])
				}
			}
			if len(ud.Queries) != tt.queries {
				t.Errorf("%d UniNER queries, want %d", len(ud.Queries), tt.queries)
			}
			if differ != tt.differ {
				t.Errorf("%d queries have different gold lists, want %d (of %d)", differ, tt.differ, len(ud.Queries))
			}
		})
	}
}

// sentenceIndex reads the sentence number of a CoNLL query id "name/i/type".
func sentenceIndex(id, name string) (int, error) {
	rest, ok := strings.CutPrefix(id, name+"/")
	if !ok {
		return 0, fmt.Errorf("query id %q does not start with %s/", id, name)
	}
	num, _, ok := strings.Cut(rest, "/")
	var si int
	if _, err := fmt.Sscanf(num, "%d", &si); !ok || err != nil {
		return 0, fmt.Errorf("query id %q: no sentence number", id)
	}
	return si, nil
}

// TestCoNLLPlusPlus reads the CoNLL++ test set (4 columns, -DOCSTART-).
// It has 3,453 sentences (46,435 tokens, 231 documents), as CoNLL-2003's
// English test set has; the 3,684 "sentences" of the CoNLL-2003 paper count
// the 231 -DOCSTART- lines too. The data README's 3,452 is one short,
// most likely from counting the sentences that a blank line ends: the
// file's last sentence ends with the file (no blank line after it), and
// ReadCoNLL keeps it.
func TestCoNLLPlusPlus(t *testing.T) {
	f, err := os.Open(filepath.Join(shareddata.Dir(t, conllData), "conllpp_test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ReadCoNLL(f, "conllpp_test", DefaultLabelMap())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	sentences := 0
	for _, q := range d.Queries {
		if !slices.Contains(types, q.Type) {
			types = append(types, q.Type)
		}
		if q.Type == d.Queries[0].Type {
			sentences++
		}
		if strings.Contains(q.Text, "DOCSTART") {
			t.Fatalf("%s: a -DOCSTART- line became text: %q", q.ID, q.Text)
		}
	}
	if !slices.Equal(types, []string{"location", "person", "organization"}) {
		t.Errorf("types %q, want location, person, organization (misc dropped)", types)
	}
	if sentences != 3453 || len(d.Queries) != 3*3453 {
		t.Errorf("%d sentences (%d queries), want 3453", sentences, len(d.Queries))
	}
	// The last sentence, which no blank line ends: "... with his
	// younger brother , Bobby ." with Bobby B-PER.
	last := d.Queries[len(d.Queries)-2]
	if last.ID != "conllpp_test/3452/person" || !strings.HasSuffix(last.Text, "with his younger brother , Bobby .") ||
		len(last.Gold) == 0 || last.Gold[len(last.Gold)-1] != "Bobby" {
		t.Errorf("last sentence's person query: %+v", last)
	}
}
