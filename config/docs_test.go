package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// The reference's doc text is each field's doc comment, read from the
// source of the package that declares the field's section (config,
// consumers, producers, model, pipeline, telemetry, model/openai), so that
// the docs live beside the settings they describe.

const modulePath = "github.com/nerstream/nerstream"

// sourceDocs maps "import/path.Type.Field" to the field's doc comment on
// one line, for every struct type of the module's packages that config
// uses; it is parsed once.
var sourceDocs = sync.OnceValues(func() (map[string]string, error) {
	docs := map[string]string{}
	seen := map[string]bool{}
	for _, f := range theSchema().fields {
		pkg := f.owner.PkgPath()
		if seen[pkg] {
			continue
		}
		seen[pkg] = true
		dir := filepath.Join("..", strings.TrimPrefix(strings.TrimPrefix(pkg, modulePath), "/"))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			ast.Inspect(file, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				var prevDoc, prevName string
				for _, fl := range st.Fields.List {
					doc := ""
					if fl.Doc != nil {
						doc = strings.Join(strings.Fields(fl.Doc.Text()), " ")
					}
					for _, name := range fl.Names {
						d := doc
						// "CertFile and KeyFile are ..." documents both.
						if d == "" && prevName != "" && strings.HasPrefix(prevDoc, prevName+" and "+name.Name+" ") {
							d = prevDoc
						}
						docs[pkg+"."+ts.Name.Name+"."+name.Name] = d
						prevDoc, prevName = d, name.Name
					}
				}
				return false
			})
		}
	}
	return docs, nil
})

// fieldDoc is the doc comment of a field of Config.
func fieldDoc(t *testing.T, f field) string {
	t.Helper()
	docs, err := sourceDocs()
	if err != nil {
		t.Fatalf("reading the field docs: %v", err)
	}
	return docs[f.owner.PkgPath()+"."+f.owner.Name()+"."+f.name]
}

// fieldByPath is the field of Config at path.
func fieldByPath(t *testing.T, path string) field {
	t.Helper()
	f := theSchema().byPath[path]
	if f == nil {
		t.Fatalf("no field %s", path)
	}
	return *f
}

func TestFieldDocs(t *testing.T) {
	for _, f := range theSchema().fields {
		if fieldDoc(t, f) == "" {
			t.Errorf("%s (%s.%s) has no doc comment", f.Path, f.owner, f.name)
		}
	}
	if d := fieldDoc(t, fieldByPath(t, "batch.max_docs")); !strings.HasPrefix(d, "MaxDocs closes a micro-batch") || strings.Contains(d, "\n") {
		t.Errorf("batch.max_docs doc %q", d)
	}
	if d := fieldDoc(t, fieldByPath(t, "telemetry.key_file")); !strings.Contains(d, "KeyFile") {
		t.Errorf("telemetry.key_file doc %q", d)
	}
	if d := fieldDoc(t, fieldByPath(t, "kafka.tls.key_file")); !strings.HasPrefix(d, "CertFile and KeyFile are") {
		t.Errorf("kafka.tls.key_file doc %q", d)
	}
	if f := fieldByPath(t, "model.entity_types"); f.owner != reflect.TypeFor[Config]().Field(3).Type.Field(1).Type {
		t.Errorf("model.entity_types is declared by %v, want the recognizer's options", f.owner)
	}
}
