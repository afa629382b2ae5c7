package eval

import "testing"

// TestNormalize checks Normalize against Python's normalize_answer (the
// wants were printed by the official code under Python 3.11). Lone
// surrogates, which Python keeps in a str, are WTF-8 bytes here.
func TestNormalize(t *testing.T) {
	const (
		d800 = "\xed\xa0\x80" // WTF-8 of U+D800
		dc00 = "\xed\xb0\x80" // WTF-8 of U+DC00
	)
	tests := []struct{ in, want string }{
		{"", ""},
		{"The Beatles", "beatles"},
		{"a an the", ""},
		{"A", ""},
		{"THE END", "end"},
		{"Theatre", "theatre"},
		{"ann the\u00a0x", "ann x"},
		{"the 1990s", "1990s"},
		// punctuation goes before the articles: "_" and "-" join words.
		{"the_end", "theend"},
		{"An-the", "anthe"},
		{"U.S.A.", "usa"},
		{"k-means", "kmeans"},
		{"l'amour", "lamour"},
		{"“Quoted”—text", "“quoted”—text"}, // only ASCII punctuation goes
		{"  Many \t spaces\n", "many spaces"},
		// str.lower: full mapping of U+0130, final sigma, title case, ẞ.
		{"İstanbul", "i\u0307stanbul"},
		{"ΟΔΟΣ", "οδος"},
		{"ΟΔΟΣ.", "οδος"},
		{"Σ", "σ"},
		{"ΑΣΑ", "ασα"},
		{"ΑΣ'Β", "ασβ"}, // "'" is case-ignorable, and lower case comes before punctuation goes
		{"ǅ", "ǆ"},
		{"ẞ", "ß"},
		{"ᾼ", "ᾳ"},
		// str.split white space: U+001C-U+001F, U+0085, U+2028; not U+200B.
		{"X\x1cY", "x y"},
		{"a\x1fb", "b"},
		{"the\u0085x", "x"},
		{"a\u2028b", "b"},
		{"zero\u200bwidth", "zero\u200bwidth"},
		// re's \w: combining marks are not word characters, so an
		// article next to one is a word of its own; "²" is one.
		{"the\u0301 end", "\u0301 end"},
		{"\u0301the end", "\u0301 end"},
		{"A\u0308", "\u0308"},
		{"Thé end", "thé end"},
		{"a² b", "a² b"},
		// WTF-8 of lone surrogates passes through, as a non-word character.
		{d800 + "The X", d800 + " x"},
		{"x" + dc00 + "a" + dc00, "x" + dc00 + " " + dc00},
		{"\xff", "\xff"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%+q) = %+q, want %+q", tt.in, got, tt.want)
		}
	}
}

func TestOfficialItems(t *testing.T) {
	got := OfficialItems([]string{"The Beatles", "beatles", "Beatles!", "a", "", "Stones"})
	want := []string{"beatles", "", "stones"}
	if len(got) != len(want) {
		t.Fatalf("OfficialItems = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("OfficialItems = %q, want %q", got, want)
		}
	}
	if got := OfficialItems(nil); got == nil || len(got) != 0 {
		t.Errorf("OfficialItems(nil) = %#v, want an empty list", got)
	}
}
