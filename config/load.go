package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sources are the layers over the defaults, lowest first: the file, then
// the environment, then flags.
type Sources struct {
	// Env is the environment as os.Environ gives it ("KEY=VALUE"); only
	// NERSTREAM_* entries are read.
	Env []string
	// Set are "path=value" overrides from flags (--set batch.max_docs=64),
	// applied last.
	Set []string
}

// LoadFrom reads the YAML file at path over [Default], then the
// variables of src.Env, then src.Set; path "" means no file.
//
// Every problem in any layer is collected and returned together as
// [Problems]: unknown keys and variables (with a hint when a known one is
// close), values of the wrong form, and --set entries that are not
// path=value. Each starts with where it is: the field path for the file
// ("batch.linger: ...", "model.entity_types[1]: ...",
// "telemetry.headers[key]: ..."), the variable and the path for the
// environment ("NERSTREAM_BATCH_LINGER (batch.linger): ..."), and
// "--set batch.linger: ..." for a flag.
//
// The Config returned with Problems still holds every value that
// decoded, the defaults elsewhere, so that [Config.Validate] can add its
// own problems to the list. A file that cannot be read is a plain error
// that wraps the cause (errors.Is(err, fs.ErrNotExist) works). A file
// that is not YAML is a [*SyntaxError], alone: nothing of it was read, so
// the other layers' problems and Validate's (every required key missing)
// would only hide it.
func LoadFrom(path string, src Sources) (Config, error) {
	cfg := Default()
	var p Problems
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading the configuration: %w", err)
		}
		if err := decodeYAML(path, data, &cfg, &p); err != nil {
			return Config{}, err
		}
	}
	applyEnv(&cfg, src.Env, &p)
	applySet(&cfg, src.Set, &p)
	if len(p) > 0 {
		return cfg, p
	}
	return cfg, nil
}

// Load reads a YAML file over the defaults: LoadFrom(path, Sources{}).
func Load(path string) (Config, error) {
	return LoadFrom(path, Sources{})
}

// Read reads YAML over the defaults, with the rules of [LoadFrom] and no
// environment or flags. A problem with the document as a whole is
// reported at "config".
func Read(r io.Reader) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("reading the configuration: %w", err)
	}
	cfg := Default()
	var p Problems
	if err := decodeYAML("config", data, &cfg, &p); err != nil {
		return Config{}, err
	}
	if len(p) > 0 {
		return cfg, p
	}
	return cfg, nil
}

// SyntaxError is a configuration that is not YAML, with YAML's message
// and its line: "FILE: line 2: did not find expected node content".
type SyntaxError struct {
	// Label names the document: the file's path, or "config" for [Read].
	Label string
	// Message is YAML's message, without its "yaml: " prefix.
	Message string
}

func (e *SyntaxError) Error() string { return e.Label + ": " + e.Message }

// decodeYAML decodes data over cfg, field by field, so that one bad value
// does not hide the others. label names the document in its own
// problems (it is not a mapping) and in the [*SyntaxError] it returns
// when it is not YAML.
func decodeYAML(label string, data []byte, cfg *Config, p *Problems) error {
	syntax := func(err error) error {
		return &SyntaxError{Label: label, Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			return syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return syntax(err)
	default:
		*p = append(*p, fmt.Sprintf("%s: line %d: a second YAML document (---); a configuration is one document", label, extra.Line))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	add := func(path, msg string) {
		if path == "" {
			path = label
		}
		*p = append(*p, path+": "+msg)
	}
	decodeStruct("", doc.Content[0], reflect.ValueOf(cfg).Elem(), add)
	return nil
}

// decodeStruct decodes the mapping n into the section v at path.
func decodeStruct(path string, n *yaml.Node, v reflect.Value, add func(path, msg string)) {
	n = unalias(n)
	if isNull(n) {
		return // "kafka:" with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		add(path, "must be a mapping of keys, not "+describe(n))
		return
	}
	seen := map[string]int{}
	for _, kv := range mappingPairs(n, func(msg string) { add(path, msg) }) {
		k, val := kv.key, kv.value
		if k.Kind != yaml.ScalarNode {
			add(path, fmt.Sprintf("line %d: a key must be a name, not %s", k.Line, describe(k)))
			continue
		}
		kp := joinPath(path, k.Value)
		if msg := twice(seen, kv); msg != "" {
			add(kp, msg)
		}
		idx := fieldIndex(v.Type(), k.Value)
		if idx == nil {
			add(kp, "unknown key"+hintKey(path, k.Value, false))
			continue
		}
		fv := v.FieldByIndex(idx)
		if fv.Kind() == reflect.Struct {
			decodeStruct(kp, val, fv, add)
			continue
		}
		decodeLeaf(val, fv, false, func(sub, msg string) { add(kp+sub, msg) })
	}
}

// pair is a key and its value in a mapping; merged says it came from a
// merge key.
type pair struct {
	key, value *yaml.Node
	merged     bool
}

// mappingPairs returns the pairs of a mapping, with those of its merge
// keys (<<: *defaults) first, so that the mapping's own keys win over
// them.
func mappingPairs(n *yaml.Node, bad func(msg string)) []pair {
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			val = unalias(val)
			srcs := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				srcs = val.Content
			}
			for _, m := range srcs {
				if m = unalias(m); m.Kind != yaml.MappingNode {
					bad(fmt.Sprintf("line %d: << merges a mapping, not %s", k.Line, describe(m)))
					continue
				}
				for _, p := range mappingPairs(m, bad) {
					p.merged = true
					merged = append(merged, p)
				}
			}
			continue
		}
		own = append(own, pair{key: k, value: val})
	}
	return append(merged, own...)
}

// twice records a mapping's own key in seen (its line), and says so when
// the key was there already. Keys from text (line 0) are not checked.
func twice(seen map[string]int, p pair) string {
	if p.merged || p.key.Line == 0 {
		return ""
	}
	line, dup := seen[p.key.Value]
	seen[p.key.Value] = p.key.Line
	switch {
	case !dup:
		return ""
	case line == p.key.Line:
		return fmt.Sprintf("given twice (line %d)", line)
	}
	return fmt.Sprintf("given twice (lines %d and %d)", line, p.key.Line)
}

func unalias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a value in a problem: the scalar quoted, or its kind.
func describe(n *yaml.Node) string {
	switch unalias(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// The forms that values must have, in problems.
const (
	durationForm = "a duration (like 20ms or 5s)"
	listForm     = "a list of strings (like [a, b])"
	mapForm      = "a mapping of strings (like {key: value})"
)

// decodeLeaf decodes n into the leaf field v. text says n came from a
// variable or --set rather than YAML: a null there is no value of a
// scalar field, where YAML's null keeps the default. Problems go to add
// with the sub-path of a list item ("[1]") or map value ("[key]"), or "".
func decodeLeaf(n *yaml.Node, v reflect.Value, text bool, add func(sub, msg string)) {
	n = unalias(n)
	null := isNull(n)
	scalar := func(form string) bool {
		if n.Kind != yaml.ScalarNode {
			add("", "must be "+form+", not "+describe(n))
			return false
		}
		return true
	}
	switch t := v.Type(); {
	case t == durationType:
		if (null && !text) || !scalar(durationForm) {
			return
		}
		d, msg := parseDuration(n.Value)
		if msg != "" {
			add("", msg)
			return
		}
		v.SetInt(int64(d))
	case t.Kind() == reflect.Int:
		if (null && !text) || !scalar("an integer") {
			return
		}
		var x int
		switch {
		case n.ShortTag() == "!!int" && n.Decode(&x) == nil:
			v.SetInt(int64(x))
		case digits.MatchString(n.Value):
			add("", n.Value+" is out of range")
		default:
			add("", strconv.Quote(n.Value)+" is not an integer")
		}
	case t.Kind() == reflect.Bool:
		if (null && !text) || !scalar("true or false") {
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil || null {
			add("", strconv.Quote(n.Value)+" is not true or false")
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.String:
		if null || !scalar("a string") {
			return
		}
		var s string
		if err := n.Decode(&s); err != nil {
			add("", strconv.Quote(n.Value)+" is not a string")
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Float64:
		if (null && !text) || !scalar("a number") {
			return
		}
		var f float64
		if tag := n.ShortTag(); (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil {
			add("", strconv.Quote(n.Value)+" is not a number")
			return
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Float64:
		if null {
			v.SetZero() // unset
			return
		}
		if !scalar("a number") {
			return
		}
		var f float64
		if tag := n.ShortTag(); (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil {
			add("", strconv.Quote(n.Value)+" is not a number")
			return
		}
		v.Set(reflect.ValueOf(&f))
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		if null {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			add("", "must be "+listForm+", not "+describe(n))
			return
		}
		list := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if item = unalias(item); item.Kind != yaml.ScalarNode {
				add(fmt.Sprintf("[%d]", i), "must be a string, not "+describe(item))
				continue
			}
			var s string
			if isNull(item) || item.Decode(&s) == nil {
				list = append(list, s)
			} else {
				add(fmt.Sprintf("[%d]", i), strconv.Quote(item.Value)+" is not a string")
			}
		}
		v.Set(reflect.ValueOf(list))
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		if null {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode {
			add("", "must be "+mapForm+", not "+describe(n))
			return
		}
		m := map[string]string{}
		seen := map[string]int{}
		for _, kv := range mappingPairs(n, func(msg string) { add("", msg) }) {
			k, val := kv.key, unalias(kv.value)
			if k.Kind != yaml.ScalarNode {
				add("", fmt.Sprintf("line %d: a key must be a string, not %s", k.Line, describe(k)))
				continue
			}
			sub := "[" + k.Value + "]"
			if msg := twice(seen, kv); msg != "" {
				add(sub, msg)
			}
			if val.Kind != yaml.ScalarNode {
				add(sub, "must be a string, not "+describe(val))
				continue
			}
			var s string
			if isNull(val) || val.Decode(&s) == nil {
				m[k.Value] = s
			} else {
				add(sub, strconv.Quote(val.Value)+" is not a string")
			}
		}
		v.Set(reflect.ValueOf(m))
	default:
		panic("config: no decoder for " + t.String())
	}
}

// digits is an integer too large for YAML to read as one.
var digits = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

// parseDuration parses a duration, or says what is wrong with s. A bare
// number other than 0 is wrong: 20 could mean 20ms or 20s.
func parseDuration(s string) (time.Duration, string) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, ""
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f == 0 {
			return 0, ""
		}
		return 0, fmt.Sprintf("%s is a bare number: add a unit: %sms or %ss", s, s, s)
	}
	return 0, strconv.Quote(s) + " is not " + durationForm
}

// applyEnv applies the NERSTREAM_* variables of env to cfg, in the order
// of Fields; the unknown ones are problems.
func applyEnv(cfg *Config, env []string, p *Problems) {
	s := theSchema()
	vals := map[string]string{}
	var unknown []string
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || reservedEnv(name) {
			continue
		}
		if s.byEnv[name] == nil {
			if !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
			continue
		}
		vals[name] = val // the last one counts, as in exec's environment
	}
	v := reflect.ValueOf(cfg).Elem()
	for _, f := range s.fields {
		val, ok := vals[f.Env]
		if !ok {
			continue
		}
		setText(v.FieldByIndex(f.index), val, func(sub, msg string) {
			*p = append(*p, fmt.Sprintf("%s (%s%s): %s", f.Env, f.Path, sub, msg))
		})
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		*p = append(*p, name+": unknown variable"+hintEnv(name))
	}
}

// applySet applies the path=value entries of set to cfg, in order.
func applySet(cfg *Config, set []string, p *Problems) {
	s := theSchema()
	v := reflect.ValueOf(cfg).Elem()
	for _, e := range set {
		path, val, ok := strings.Cut(e, "=")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			*p = append(*p, fmt.Sprintf("--set %s: want path=value, like batch.max_docs=64", e))
			continue
		}
		f := s.byPath[path]
		if f == nil {
			if _, section := s.sections[path]; section {
				*p = append(*p, fmt.Sprintf("--set %s: a section, not a field: set its fields, like %s", path, firstField(path)))
			} else {
				*p = append(*p, "--set "+path+": unknown key"+hintPath(path))
			}
			continue
		}
		setText(v.FieldByIndex(f.index), val, func(sub, msg string) {
			*p = append(*p, "--set "+path+sub+": "+msg)
		})
	}
}

// firstField is the path of the first field of a section.
func firstField(section string) string {
	for _, f := range theSchema().fields {
		if strings.HasPrefix(f.Path, section+".") {
			return f.Path
		}
	}
	return section
}

// setText sets the leaf v from the text of a variable or --set: scalars
// as YAML reads them (strings verbatim), lists comma-separated, maps
// k=v,k2=v2; "" is an empty list or map, and an unset sampling ratio.
func setText(v reflect.Value, s string, add func(sub, msg string)) {
	var n *yaml.Node
	switch v.Kind() {
	case reflect.String:
		n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	case reflect.Slice:
		n = &yaml.Node{Kind: yaml.SequenceNode}
		if strings.TrimSpace(s) != "" {
			for item := range strings.SplitSeq(s, ",") {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.TrimSpace(item)})
			}
		}
	case reflect.Map:
		n = &yaml.Node{Kind: yaml.MappingNode}
		for item := range strings.SplitSeq(s, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			k, val, ok := strings.Cut(item, "=")
			if k = strings.TrimSpace(k); !ok || k == "" {
				add("", strconv.Quote(item)+" is not key=value")
				continue
			}
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.TrimSpace(val)})
		}
	default:
		n = &yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(s)}
	}
	decodeLeaf(n, v, true, add)
}
