package config

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The README's configuration reference lies between these markers, and
// TestReadmeReference keeps it equal to what the Config struct says.
const (
	referenceBegin = "<!-- config reference: generated from config.Config by `go test ./config -run TestReadmeReference -update`; do not edit by hand -->"
	referenceEnd   = "<!-- end of the config reference -->"
)

// referenceTable is the reference: every field with its variable, type,
// default and doc comment.
func referenceTable(t *testing.T) string {
	var b strings.Builder
	b.WriteString("| key | environment variable | type | default | what it does |\n|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, f := range theSchema().fields {
		def := "—"
		if f.Default != "" {
			def = "`" + cell(f.Default) + "`"
		}
		doc := cell(fieldDoc(t, f))
		if f.Secret {
			doc += " **Secret**: `config print` redacts it."
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", f.Path, f.Env, f.Type, def, doc)
	}
	return b.String()
}

func TestReadmeReference(t *testing.T) {
	const path = "../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(referenceBegin))
	j := bytes.Index(readme, []byte(referenceEnd))
	if i < 0 || j < i {
		t.Fatalf("%s has no config reference markers", path)
	}
	start := i + len(referenceBegin) + 1
	want := referenceTable(t)
	if string(readme[start:j]) == want {
		return
	}
	if !*update {
		t.Fatalf("the config reference in %s is stale; regenerate it with: go test ./config -run TestReadmeReference -update", path)
	}
	out := append(append(append([]byte{}, readme[:start]...), want...), readme[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
