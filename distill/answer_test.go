package distill

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseTuples(t *testing.T) {
	type tp = Tuple
	tests := []struct {
		name    string
		answer  string
		want    []Tuple
		skipped int
	}{
		{"plain", `[("Barack Obama", "person"), ("Hawaii", "location")]`,
			[]tp{{"Barack Obama", "person"}, {"Hawaii", "location"}}, 0},
		{"chatter around", "Sure! Here are the entities:\n[(\"Paris\", \"city\")]\nLet me know if you need more.",
			[]tp{{"Paris", "city"}}, 0},
		{"single quotes, escaped apostrophe", `[('Ada\'s Bank', 'organization'), ('Ada', 'person')]`,
			[]tp{{"Ada's Bank", "organization"}, {"Ada", "person"}}, 0},
		{"double quotes holding a single quote", `[("O'Brien", "person")]`,
			[]tp{{"O'Brien", "person"}}, 0},
		{"single quotes holding a double quote", `[('the "Boss"', 'nickname')]`,
			[]tp{{`the "Boss"`, "nickname"}}, 0},
		{"unescaped apostrophe in single quotes", `[('O'Brien', 'person'), ('Ada's Bank' , 'organization')]`,
			[]tp{{"O'Brien", "person"}, {"Ada's Bank", "organization"}}, 0},
		{"unicode", `[("García Márquez", "作家"), ("東京", "city")]`,
			[]tp{{"García Márquez", "作家"}, {"東京", "city"}}, 0},
		{"unicode escapes", `[("Garc\u00eda", "person"), ("\ud83d\ude00", "emoji"), ("\U0001F600", "emoji"), ("caf\xe9", "place")]`,
			[]tp{{"García", "person"}, {"😀", "emoji"}, {"😀", "emoji"}, {"café", "place"}}, 0},
		{"other escapes", `[("a\tb\nc\\d\"e", "x"), ("back\slash", "y"), ("oct\101", "z"), ("a\/b", "w")]`,
			[]tp{{"a\tb\nc\\d\"e", "x"}, {`back\slash`, "y"}, {"octA", "z"}, {"a/b", "w"}}, 0},
		{"newlines between tuples", "[\n  (\"A\", \"t1\"),\n  (\"B\", \"t2\")\n]",
			[]tp{{"A", "t1"}, {"B", "t2"}}, 0},
		{"white space everywhere", "[ (  'A' ,\t'b'  ) ,(\"C\",\"d\") ]",
			[]tp{{"A", "b"}, {"C", "d"}}, 0},
		{"trailing comma", `[("A", "t"), ("B", "t"),]`,
			[]tp{{"A", "t"}, {"B", "t"}}, 0},
		{"trailing comma inside a tuple", `[("A", "t",)]`, []tp{{"A", "t"}}, 0},
		{"missing closing bracket", `[("A", "t"), ("B", "t")`,
			[]tp{{"A", "t"}, {"B", "t"}}, 0},
		{"missing closing bracket after a comma", "[(\"A\", \"t\"),\n",
			[]tp{{"A", "t"}}, 0},
		{"truncated final tuple", `[("A", "t"), ("B", "ty`,
			[]tp{{"A", "t"}}, 1},
		{"truncated after the mention", `[("A", "t"), ("B",`,
			[]tp{{"A", "t"}}, 1},
		{"truncated inside an escape", `[("A", "t"), ("B\u00`,
			[]tp{{"A", "t"}}, 1},
		{"final tuple missing only its parenthesis", `[("A", "t"), ("B", "t"`,
			[]tp{{"A", "t"}, {"B", "t"}}, 0},
		{"empty list", `[]`, nil, 0},
		{"no entities", "There are no entities in this passage.", nil, 0},
		{"empty string", "", nil, 0},
		{"brackets in chatter before the list", `Here [is] the list: [("A", "t")]`,
			[]tp{{"A", "t"}}, 0},
		{"nested brackets in chatter", `As in [ref [1], (2)] and [[3]]: [("A", "t")] [("B", "u")]`,
			[]tp{{"A", "t"}}, 0},
		{"apostrophe in chatter", `Here's what I found [it's long]: [("A", "t")]`,
			[]tp{{"A", "t"}}, 0},
		{"3-tuples skipped", `[("A", "t", "x"), ("B", "t"), ("C",)]`,
			[]tp{{"B", "t"}}, 2},
		{"numbers skipped", `[("A", 1), (2, "t"), 3, ("B", "t"), (None, "t")]`,
			[]tp{{"B", "t"}}, 4},
		{"unquoted item skipped", `[(A, "t"), ("B", "t")]`, []tp{{"B", "t"}}, 1},
		{"stray text in the list", `[("A", "t"), ..., ("B", "t")]`,
			[]tp{{"A", "t"}, {"B", "t"}}, 1},
		{"broken string in a tuple", `[("A, "t"), ("B", "t")]`, []tp{{"B", "t"}}, 1},
		{"newline inside a string", "[(\"A\nB\", \"t\"), (\"C\", \"t\")]", []tp{{"C", "t"}}, 1},
		{"JSON lists", `[["A", "t"], ["B \"q\"", "u"]]`,
			[]tp{{"A", "t"}, {`B "q"`, "u"}}, 0},
		{"JSON list with a wrong arity", `[["A"], ["B", "u"]]`, []tp{{"B", "u"}}, 1},
		{"fenced python block", "```python\n[('A', 't'),\n ('B', 'u')]\n```\nDone.",
			[]tp{{"A", "t"}, {"B", "u"}}, 0},
		{"missing comma between tuples", `[("A", "t") ("B", "u")]`,
			[]tp{{"A", "t"}, {"B", "u"}}, 0},
		{"repeated instruction example passed over",
			Instruction + "\nAnswer: [(\"A\", \"t\")]", []tp{{"A", "t"}}, 0},
		{"only the instruction example", `[("entity 1", "type of entity 1")]`, nil, 0},
		{"list of bare strings is no tuple list", `["A", "B"]`, nil, 0},
		{"brackets inside strings", `[("a[1] (b)", "t, u")]`, []tp{{"a[1] (b)", "t, u"}}, 0},
		{"empty strings kept for Filter", `[("", "t"), ("A", "")]`, []tp{{"", "t"}, {"A", ""}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := ParseTuples(tt.answer)
			if !reflect.DeepEqual(got, tt.want) || skipped != tt.skipped {
				t.Errorf("ParseTuples(%q)\n = %q, skipped %d\nwant %q, skipped %d", tt.answer, got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

func TestParseTuplesCutAnywhere(t *testing.T) {
	// Every prefix of a good answer parses without panicking, keeps only
	// tuples of the full answer, in order, and loses at most the one cut.
	full := `Entities: [("Ada\'s Bank", 'organization'), ("Garc\u00eda", "person"), ['x', "y"]]`
	all, _ := ParseTuples(full)
	if len(all) != 3 {
		t.Fatalf("full answer gives %q", all)
	}
	for n := range len(full) {
		got, skipped := ParseTuples(full[:n])
		if len(got) > len(all) || !slices.Equal(got, all[:len(got)]) {
			t.Fatalf("prefix %q gives %q", full[:n], got)
		}
		if skipped > 1 {
			t.Errorf("prefix %q: %d skipped", full[:n], skipped)
		}
	}
}

func TestNormalizeType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Person", "person"},
		{"  Organizations ", "organizations"},
		{"people", "people"},
		{"Sports\t  TEAM\n", "sports team"},
		{"ÉCOLE Normale", "école normale"},
		{"ΣΟΦΙΑ", "σοφια"},
		{"\u00a0date\u3000time ", "date time"},
		{"   ", ""},
	}
	for _, tt := range tests {
		if got := NormalizeType(tt.in); got != tt.want {
			t.Errorf("NormalizeType(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestFilter(t *testing.T) {
	passage := "Ada Lovelace worked with Charles Babbage in London. Ada's notes [1]"
	type tp = Tuple
	in := []tp{
		{"Ada Lovelace", "Person"},
		{" Charles Babbage ", "PERSON"},     // trimmed, found
		{"Ada Lovelace", "person"},          // repeat after normalisation
		{"ada lovelace", "person"},          // case differs: not verbatim
		{"Paris", "city"},                   // not in passage
		{"London", "   "},                   // empty type
		{"London", strings.Repeat("x", 51)}, // long type
		{"London", strings.Repeat("é", 50)}, // 50 characters (100 bytes) is fine
		{"  ", "person"},                    // empty mention
		{"London", "City"},
		{"Ada", "person"},
		{"Ada's notes", "Work  Of Art"},
		{"notes [1]", "citation"}, // "]" would cut the answer at parsing
	}
	got, st := Filter(passage, in, FilterOptions{})
	want := []tp{
		{"Ada Lovelace", "person"},
		{"Charles Babbage", "person"},
		{"London", strings.Repeat("é", 50)},
		{"London", "city"},
		{"Ada", "person"},
		{"Ada's notes", "work of art"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Filter =\n%q\nwant\n%q", got, want)
	}
	wantSt := FilterStats{NotInPassage: 2, EmptyType: 1, LongType: 1, EmptyMention: 1, Bracket: 1, Duplicate: 1}
	if st != wantSt {
		t.Errorf("stats = %+v; want %+v", st, wantSt)
	}
	if st.Dropped()+len(got) != len(in) {
		t.Errorf("dropped %d + kept %d != %d tuples", st.Dropped(), len(got), len(in))
	}

	// Custom limits.
	got, st = Filter("a verylongname here", []tp{{"verylongname", "type"}, {"a", "typetype"}, {"here", "t"}},
		FilterOptions{MaxMentionRunes: 5, MaxTypeRunes: 4})
	if want := []tp{{"here", "t"}}; !reflect.DeepEqual(got, want) || st.LongMention != 1 || st.LongType != 1 {
		t.Errorf("Filter with limits = %q, %+v", got, st)
	}
}
