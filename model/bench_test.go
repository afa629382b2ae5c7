package model

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// benchCorpus builds n texts of about 1 KB, each with the mentions a model
// would name in it: most spelled as in the text, some in another case, some
// with other white space, and a few absent.
func benchCorpus(n int) (texts []string, mentions [][]string) {
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"Ada Lovelace", "Charles Babbage", "Analytical Engine", "London", "Royal Society",
		"Grace Hopper", "United States Navy", "Harvard Mark I", "COBOL", "Alan Turing", "Bletchley Park",
		"naive Bayes classifier", "Gaussian mixture model", "Association for Computational Linguistics"}
	filler := strings.Fields("the of and a to in is was for on that with as by at from his her which it an were are this be has had")
	for range n {
		var b strings.Builder
		var ms []string
		for b.Len() < 1000 {
			for range 4 + rng.IntN(8) {
				b.WriteString(filler[rng.IntN(len(filler))])
				b.WriteByte(' ')
			}
			name := names[rng.IntN(len(names))]
			b.WriteString(name)
			b.WriteString(" . ")
			switch k := rng.IntN(20); {
			case k < 14:
				ms = append(ms, name)
			case k < 17:
				ms = append(ms, strings.ToLower(name))
			case k < 19:
				ms = append(ms, strings.ReplaceAll(name, " ", ""))
			default:
				ms = append(ms, "Konrad Zuse")
			}
		}
		texts = append(texts, b.String())
		mentions = append(mentions, ms)
	}
	return texts, mentions
}

func BenchmarkAlign(b *testing.B) {
	benchAlign(b, func(text string) func(string) []Span { return NewAligner(text).Find })
}

// benchAlign aligns every mention of the corpus in its text; finder makes
// the search for one text.
func benchAlign(b *testing.B, finder func(text string) func(mention string) []Span) {
	texts, mentions := benchCorpus(100)
	total := 0
	for _, ms := range mentions {
		total += len(ms)
	}
	b.ResetTimer()
	for b.Loop() {
		for i, text := range texts {
			find := finder(text)
			for _, m := range mentions[i] {
				_ = find(m)
			}
		}
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "mentions/s")
}

// BenchmarkAlignExactOnly is the ceiling for BenchmarkAlign: exact
// matches only, with strings.Index and code-point conversion, and no
// fallback for case or white space.
func BenchmarkAlignExactOnly(b *testing.B) {
	benchAlign(b, func(text string) func(string) []Span {
		return func(m string) []Span {
			var out []Span
			for from := 0; ; {
				i := strings.Index(text[from:], m)
				if i < 0 {
					return out
				}
				start := utf8.RuneCountInString(text[:from+i])
				out = append(out, Span{start, start + utf8.RuneCountInString(m)})
				from += i + len(m)
			}
		}
	})
}

// BenchmarkAlignRegexp is a baseline for BenchmarkAlign: a common port
// that ignores case and white space with one regular expression per
// mention, (?i) and \s* between the mention's characters.
func BenchmarkAlignRegexp(b *testing.B) {
	benchAlign(b, func(text string) func(string) []Span {
		return func(m string) []Span {
			var pat strings.Builder
			pat.WriteString("(?i)")
			for i, r := range strings.Join(strings.Fields(m), "") {
				if i > 0 {
					pat.WriteString(`\s*`)
				}
				pat.WriteString(regexp.QuoteMeta(string(r)))
			}
			var out []Span
			for _, loc := range regexp.MustCompile(pat.String()).FindAllStringIndex(text, -1) {
				start := utf8.RuneCountInString(text[:loc[0]])
				out = append(out, Span{start, start + utf8.RuneCountInString(text[loc[0]:loc[1]])})
			}
			return out
		}
	})
}

var benchAnswers = []string{
	`[]`,
	` ["Ada Lovelace", "Charles Babbage"]`,
	` ["naive Bayes classifier", "Gaussian mixture model", "variational autoencoders"]`,
	` ["caf\u00e9 de Flore"]`,
	`Sure! The entities are ["London", "Royal Society"].`,
}

func BenchmarkParseOfficial(b *testing.B) {
	for b.Loop() {
		for _, a := range benchAnswers {
			_ = ParseOfficial(OfficialResponse(a))
		}
	}
	b.ReportMetric(float64(len(benchAnswers)*b.N)/b.Elapsed().Seconds(), "answers/s")
}

func BenchmarkParseLenient(b *testing.B) {
	for b.Loop() {
		for _, a := range benchAnswers {
			_ = ParseLenient(a)
		}
	}
	b.ReportMetric(float64(len(benchAnswers)*b.N)/b.Elapsed().Seconds(), "answers/s")
}

// BenchmarkParseRegexpJSON is the baseline for the parsers: the official
// parser ported word for word, with regexp and encoding/json.
func BenchmarkParseRegexpJSON(b *testing.B) {
	re := regexp.MustCompile(`^\[(.*?)\]`)
	for b.Loop() {
		for _, a := range benchAnswers {
			m := re.FindString(strings.TrimSpace(a))
			if m == "" {
				m = "[]"
			}
			var items []any
			_ = json.Unmarshal([]byte(m), &items)
		}
	}
	b.ReportMetric(float64(len(benchAnswers)*b.N)/b.Elapsed().Seconds(), "answers/s")
}
