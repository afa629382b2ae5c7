package config

import (
	"slices"
	"strings"
)

// hintKey is the " (did you mean …?)" after an unknown key in section
// ("" for the top level), or "". A close sibling comes first, by its key
// (by its path when full); else a field or section of that name, or a
// close one, elsewhere, by its path.
func hintKey(section, key string, full bool) string {
	s := theSchema()
	if strings.Contains(key, ".") {
		if p := joinPath(section, key); s.byPath[p] != nil || s.sections[p] != nil {
			return " (keys are not paths: nest it, " + nested(key) + ")"
		}
		if s.byPath[key] != nil || s.sections[key] != nil {
			return " (did you mean " + key + "? keys are not paths: nest it at the top level, " + nested(key) + ")"
		}
	}
	var siblings []string
	if t, ok := s.sections[section]; ok {
		siblings = keys(t)
	}
	// A sibling one typo away; else the same name in another section
	// (batch.brokers is kafka.brokers); else a sibling a few typos away;
	// else a close name in another section.
	sib, d := closest(key, siblings)
	if full {
		for i := range sib {
			sib[i] = joinPath(section, sib[i])
		}
	}
	if len(sib) > 0 && d <= 1 {
		return didYouMean(sib)
	}
	var same, leaves []string
	for _, p := range allPaths() {
		parent, leaf := splitPath(p)
		if parent == section {
			continue
		}
		if norm(leaf) == norm(key) {
			same = append(same, p)
		}
		leaves = append(leaves, leaf)
	}
	if len(same) > 0 {
		return didYouMean(same)
	}
	if len(sib) > 0 {
		return didYouMean(sib)
	}
	near, _ := closest(key, leaves)
	var out []string
	for _, p := range allPaths() {
		if parent, leaf := splitPath(p); parent != section && slices.Contains(near, leaf) {
			out = append(out, p)
		}
	}
	return didYouMean(out)
}

// hintPath is the hint after an unknown --set path.
func hintPath(path string) string {
	s := theSchema()
	section, key := splitPath(path)
	if _, ok := s.sections[section]; ok {
		return hintKey(section, key, true)
	}
	if c, _ := closest(path, allPaths()); len(c) > 0 {
		return didYouMean(c)
	}
	return hintKey("", key, true) // unknown section: a field of that name anywhere
}

// hintEnv is the hint after an unknown NERSTREAM_* variable.
func hintEnv(name string) string {
	s := theSchema()
	var suffixes []string
	for _, f := range s.fields {
		suffixes = append(suffixes, strings.TrimPrefix(f.Env, envPrefix))
	}
	near, d := closest(strings.TrimPrefix(name, envPrefix), suffixes)
	for i := range near {
		near[i] = envPrefix + near[i]
	}
	if len(near) > 0 && d <= 1 {
		return didYouMean(near)
	}
	// NERSTREAM_BATCH_BROKERS: a field named brokers in another section.
	var same []string
	for _, f := range s.fields {
		_, leaf := splitPath(f.Path)
		if strings.HasSuffix(name, "_"+strings.ToUpper(leaf)) {
			same = append(same, f.Env)
		}
	}
	if len(same) > 0 {
		return didYouMean(same)
	}
	return didYouMean(near)
}

func didYouMean(c []string) string {
	switch len(c) {
	case 0:
		return ""
	case 1:
		return " (did you mean " + c[0] + "?)"
	}
	return " (did you mean " + strings.Join(c[:len(c)-1], ", ") + " or " + c[len(c)-1] + "?)"
}

// nested writes a dotted key as YAML nesting: a.b.c is a: {b: {c: …}}.
func nested(key string) string {
	parts := strings.Split(key, ".")
	out := parts[len(parts)-1] + ": …"
	for i := len(parts) - 2; i >= 0; i-- {
		out = parts[i] + ": {" + out + "}"
	}
	return out
}

// allPaths is every field and section path but the top level's "".
func allPaths() []string {
	s := theSchema()
	var out []string
	for p := range s.sections {
		if p != "" {
			out = append(out, p)
		}
	}
	for _, f := range s.fields {
		out = append(out, f.Path)
	}
	slices.Sort(out)
	return out
}

func splitPath(p string) (parent, leaf string) {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// closest returns the candidates nearest to key and their distance, if
// a typo could explain the difference: an edit distance of at most 2, or
// a third of the key's length, and less than the key's length, case,
// dashes and underscores aside.
func closest(key string, candidates []string) ([]string, int) {
	nk := norm(key)
	limit := max(2, len(nk)/3)
	best := limit
	var out []string
	for _, c := range candidates {
		nc := norm(c)
		d := min(distance(nk, nc), distance(squash(nk), squash(nc)))
		if d >= len(nk) || d > limit || d > best {
			continue
		}
		if d < best {
			best, out = d, nil
		}
		out = append(out, c)
	}
	return out, best
}

func norm(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }

// squash drops the separators: maxdocs and MaxDocs are max_docs.
func squash(s string) string {
	return strings.NewReplacer("_", "", ".", "").Replace(s)
}

// distance is the Levenshtein distance of a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
