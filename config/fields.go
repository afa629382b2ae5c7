package config

import (
	_ "embed"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	redactaddr "github.com/nerstream/nerstream/internal/redact"
)

// Field describes one leaf of [Config], for documentation and for the
// reference table of settings.
type Field struct {
	// Path is the field's dotted path, its YAML keys: "batch.max_docs".
	Path string
	// Env is the variable that overrides it: "NERSTREAM_BATCH_MAX_DOCS".
	Env string
	// Type is "int", "duration", "string", "bool", "float",
	// "list of strings" or "map of strings".
	Type string
	// Default is the value in [Default], in the form that the variable
	// and --set take: scalars as YAML writes them ("32", "20ms", "0s",
	// "false"), lists comma-separated, maps k=v,k2=v2; "" when none.
	Default string
	// Secret marks a value that [Config.Redacted] hides.
	Secret bool
}

// field is a leaf of Config as the loader sees it.
type field struct {
	Field
	index []int // reflect index path from Config
	// owner declares the field, name is its Go name: where its doc
	// comment is (the README's reference reads it from the source).
	owner reflect.Type
	name  string
}

var durationType = reflect.TypeFor[time.Duration]()

// schema is Config's shape, computed once by reflection.
type schema struct {
	fields   []field
	byPath   map[string]*field
	byEnv    map[string]*field
	sections map[string]reflect.Type // "kafka", "model.prompt", and "" for Config
}

var theSchema = sync.OnceValue(func() *schema {
	return buildSchema(reflect.ValueOf(Default()))
})

// buildSchema walks the struct def (its values are the defaults) by
// reflection.
func buildSchema(def reflect.Value) *schema {
	s := &schema{byPath: map[string]*field{}, byEnv: map[string]*field{}, sections: map[string]reflect.Type{}}
	var walk func(prefix string, t reflect.Type, index []int)
	walk = func(prefix string, t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(slices.Clone(index), i)
			if isInline(sf) {
				walk(prefix, sf.Type, idx) // its keys are the section's own
				continue
			}
			key := yamlKey(sf)
			if key == "" {
				continue
			}
			path := joinPath(prefix, key)
			if sf.Type.Kind() == reflect.Struct {
				s.sections[path] = sf.Type
				walk(path, sf.Type, idx)
				continue
			}
			s.fields = append(s.fields, field{
				Field: Field{
					Path:    path,
					Env:     EnvVar(path),
					Type:    typeName(sf.Type),
					Default: formatValue(def.FieldByIndex(idx)),
					Secret:  sf.Tag.Get("secret") == "true",
				},
				index: idx,
				owner: t,
				name:  sf.Name,
			})
		}
	}
	s.sections[""] = def.Type()
	walk("", def.Type(), nil)
	for i := range s.fields {
		s.byPath[s.fields[i].Path] = &s.fields[i]
		s.byEnv[s.fields[i].Env] = &s.fields[i]
	}
	return s
}

// yamlKey is the YAML key of a struct field, "" for none (unexported,
// "-", or inline).
func yamlKey(sf reflect.StructField) string {
	if !sf.IsExported() || isInline(sf) {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(sf.Name) // yaml's own rule
	}
	return name
}

// isInline reports whether a struct field's keys are its parent's
// (yaml:",inline").
func isInline(sf reflect.StructField) bool {
	_, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	return sf.IsExported() && sf.Type.Kind() == reflect.Struct && slices.Contains(strings.Split(opts, ","), "inline")
}

// keys returns the YAML keys of the struct type t, with the keys of its
// inline fields, in order.
func keys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		sf := t.Field(i)
		if isInline(sf) {
			out = append(out, keys(sf.Type)...)
		} else if k := yamlKey(sf); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// fieldIndex is the index path of the field of struct type t with YAML
// key key, looking into inline fields, or nil.
func fieldIndex(t reflect.Type, key string) []int {
	for i := range t.NumField() {
		sf := t.Field(i)
		if isInline(sf) {
			if sub := fieldIndex(sf.Type, key); sub != nil {
				return append([]int{i}, sub...)
			}
		} else if k := yamlKey(sf); k != "" && k == key {
			return []int{i}
		}
	}
	return nil
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// typeName is the Type of a Field.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Float64:
		return "float"
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Map:
		return "map of " + typeName(t.Elem()) + "s"
	}
	panic("config: no type name for " + t.String())
}

// formatValue writes a leaf value in the form of an environment variable.
func formatValue(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		return formatValue(v.Elem())
	case reflect.Slice:
		s := make([]string, v.Len())
		for i := range s {
			s[i] = formatValue(v.Index(i))
		}
		return strings.Join(s, ",")
	case reflect.Map:
		m := v.Interface().(map[string]string)
		var s []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s = append(s, k+"="+m[k])
		}
		return strings.Join(s, ",")
	}
	panic("config: cannot format " + v.Type().String())
}

// EnvVar returns the environment variable that overrides the field at
// path: NERSTREAM_ and the path in upper case, its dots and its words'
// underscores both underscores. EnvVar("kafka.brokers") is
// NERSTREAM_KAFKA_BROKERS. It does not check that the field exists.
func EnvVar(path string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

const envPrefix = "NERSTREAM_"

// Fields returns every leaf field of [Config] in the struct's order.
func Fields() []Field {
	s := theSchema()
	out := make([]Field, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.Field
	}
	return out
}

// reservedEnv reports whether a NERSTREAM_* variable belongs to another
// part of nerstream and so is no configuration override:
// NERSTREAM_HOME, NERSTREAM_MODEL_DIR (the model cache),
// NERSTREAM_WRITE_PERTURBED, the build scripts' NERSTREAM_BUILD_CACHE,
// NERSTREAM_GGML_SOURCES, NERSTREAM_GPU_KIT and NERSTREAM_CI_CACHE (a
// shell that builds GPU modules must still run nerstream), every
// NERSTREAM_REQUIRE_* (tests that must not skip) and every
// NERSTREAM_TEST_* variable.
func reservedEnv(name string) bool {
	switch name {
	case "NERSTREAM_HOME", "NERSTREAM_MODEL_DIR", "NERSTREAM_WRITE_PERTURBED",
		"NERSTREAM_BUILD_CACHE", "NERSTREAM_GGML_SOURCES", "NERSTREAM_GPU_KIT", "NERSTREAM_CI_CACHE":
		return true
	}
	return strings.HasPrefix(name, "NERSTREAM_TEST_") || strings.HasPrefix(name, "NERSTREAM_REQUIRE_")
}

// Redacted returns a copy of c fit to print. Every non-empty secret value
// is replaced by "[redacted]": the fields tagged secret:"true"
// (kafka.sasl.password, model.openai.api_key and telemetry.headers, where
// API keys go); in a map, every value is a secret and the keys stay. Every
// other value that holds an address (model.openai.endpoints,
// telemetry.endpoint, a model.path to download) is shown with the user
// information and the query values of its addresses REDACTED
// (internal/redact): a password or a signature in an address is as secret
// as a password field. c itself is untouched.
func (c Config) Redacted() Config {
	redact(reflect.ValueOf(&c).Elem(), theSchema().fields)
	return c
}

// redact hides the secrets of the struct v in place; a slice or map is
// replaced, not changed, since v may share it.
func redact(v reflect.Value, fields []field) {
	const hidden = "[redacted]"
	for _, f := range fields {
		fv := v.FieldByIndex(f.index)
		hide := redactaddr.String
		if f.Secret {
			hide = func(s string) string {
				if s == "" {
					return ""
				}
				return hidden
			}
		}
		switch {
		case fv.Kind() == reflect.String:
			if s := fv.String(); hide(s) != s {
				fv.SetString(hide(s))
			}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			s := reflect.MakeSlice(fv.Type(), fv.Len(), fv.Len())
			changed := false
			for i := range fv.Len() {
				e := fv.Index(i).String()
				s.Index(i).SetString(hide(e))
				changed = changed || hide(e) != e
			}
			if changed {
				fv.Set(s)
			}
		case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.String:
			if fv.IsNil() {
				continue
			}
			changed := false
			m := reflect.MakeMapWithSize(fv.Type(), fv.Len())
			for it := fv.MapRange(); it.Next(); {
				val := it.Value()
				if shown := hide(val.String()); shown != val.String() {
					val, changed = reflect.ValueOf(shown).Convert(fv.Type().Elem()), true
				}
				m.SetMapIndex(it.Key(), val)
			}
			if changed {
				fv.Set(m)
			}
		case f.Secret:
			panic("config: secret:\"true\" on a " + fv.Type().String() + " field, " + f.Path)
		}
	}
}
