package llama

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// declaredStructs reads llama_decl.h and returns each struct it declares
// with its fields, in order.
func declaredStructs(t *testing.T) map[string][]string {
	t.Helper()
	src, err := os.ReadFile("llama_decl.h")
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string][]string{}
	body := regexp.MustCompile(`(?s)struct (llama_\w+) \{(.*?)\}`)
	field := regexp.MustCompile(`(\w+)\s*;`)
	for _, m := range body.FindAllSubmatch(src, -1) {
		var fields []string
		for _, line := range strings.Split(string(m[2]), "\n") {
			line, _, _ = strings.Cut(line, "//")
			for _, decl := range strings.Split(line, ";") {
				decl = strings.TrimSpace(decl)
				if decl == "" {
					continue
				}
				if f := field.FindStringSubmatch(decl + ";"); f != nil {
					fields = append(fields, f[1])
				}
			}
		}
		structs[string(m[1])] = fields
	}
	if len(structs) < 5 {
		t.Fatalf("found only %d structs in llama_decl.h", len(structs))
	}
	return structs
}

// layoutProgram is a C program that prints sizeof and offsetof of every
// declared struct and field, against whichever header it is compiled with.
func layoutProgram(structs map[string][]string) string {
	var b strings.Builder
	b.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include HEADER\nint main(void) {\n")
	for name, fields := range structs {
		fmt.Fprintf(&b, "  printf(\"%s %%zu\\n\", sizeof(struct %s));\n", name, name)
		for _, f := range fields {
			fmt.Fprintf(&b, "  printf(\"%s.%s %%zu %%zu\\n\", offsetof(struct %s, %s), sizeof(((struct %s *)0)->%s));\n", name, f, name, f, name, f)
		}
	}
	b.WriteString("  return 0;\n}\n")
	return b.String()
}

// TestDeclarationsMatchHeader proves that the binding's restated structs
// have the size and field offsets of the real llama.h of the pinned
// module, so that a version bump fails here instead of corrupting memory.
func TestDeclarationsMatchHeader(t *testing.T) {
	cc := cCompiler(t)
	realInclude, ggmlInclude := pinnedIncludes(t)
	structs := declaredStructs(t)
	dir := t.TempDir()
	prog := filepath.Join(dir, "layout.c")
	if err := os.WriteFile(prog, []byte(layoutProgram(structs)), 0o644); err != nil {
		t.Fatal(err)
	}
	here, _ := os.Getwd()
	run := func(header string, includes ...string) string {
		exe := filepath.Join(dir, "layout-"+strings.TrimSuffix(header, ".h"))
		args := []string{"-std=c11", "-o", exe, fmt.Sprintf("-DHEADER=\"%s\"", header)}
		for _, inc := range includes {
			args = append(args, "-I", inc)
		}
		cmd := exec.Command(cc, append(args, prog)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("compiling against %s: %v\n%s", header, err, stderr.String())
		}
		res, err := exec.Command(exe).Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(res)
	}
	ours := run("llama_decl.h", here)
	theirs := run("llama.h", realInclude, ggmlInclude)
	if ours != theirs {
		t.Errorf("llama_decl.h disagrees with the pinned llama.h:\n%s", diffLines(ours, theirs))
	}
	t.Logf("%d structs, %d lines of layout checked", len(structs), strings.Count(ours, "\n"))
}

// cCompiler returns the C compiler cgo uses.
func cCompiler(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Fatal("no C compiler: cgo needs one anyway")
		}
	}
	return cc
}

// pinnedIncludes returns the folders of the real llama.h and ggml.h in the
// pinned module.
func pinnedIncludes(t *testing.T) (llama, ggml string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	llama = filepath.Join(modDir, "llama", "llama.cpp", "include")
	ggml = filepath.Join(modDir, "ml", "backend", "ggml", "ggml", "include")
	if _, err := os.Stat(filepath.Join(llama, "llama.h")); err != nil {
		t.Fatalf("the pinned llama.h is not where it should be: %v", err)
	}
	return llama, ggml
}

// cDecl is one declaration of llama_decl.h: the name it declares and its
// text on one line.
type cDecl struct {
	name, text string
}

// declaredFunctions reads llama_decl.h and returns its function prototypes
// and its typedefs other than of structs (whose layout
// TestDeclarationsMatchHeader checks). It fails on a declaration it cannot
// tell apart, so that none goes unchecked. Prototypes of nerstream's own C
// helpers are left out.
func declaredFunctions(t *testing.T) (protos, typedefs []cDecl) {
	t.Helper()
	src, err := os.ReadFile("llama_decl.h")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(src), "")
	text = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(text, "")
	text = regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(text, "")
	text = regexp.MustCompile(`(?s)\{.*?\}`).ReplaceAllString(text, "{}")
	funcName := regexp.MustCompile(`(\w+)\s*\(`)
	fptrName := regexp.MustCompile(`\(\s*\*\s*(\w+)\s*\)`)
	lastName := regexp.MustCompile(`(\w+)\s*$`)
	for _, stmt := range strings.Split(text, ";") {
		stmt = strings.Join(strings.Fields(stmt), " ")
		switch {
		case stmt == "":
		case strings.Contains(stmt, "{"): // a struct, checked by layout
		case regexp.MustCompile(`^struct \w+$`).MatchString(stmt): // a forward declaration
		case strings.HasPrefix(stmt, "typedef "):
			m := fptrName.FindStringSubmatch(stmt)
			if m == nil {
				m = lastName.FindStringSubmatch(stmt)
			}
			if m == nil {
				t.Fatalf("llama_decl.h: a typedef without a name: %q", stmt)
			}
			typedefs = append(typedefs, cDecl{m[1], stmt + ";"})
		case strings.Contains(stmt, "("):
			m := funcName.FindStringSubmatch(stmt)
			if !strings.HasPrefix(m[1], "nerstream_") {
				protos = append(protos, cDecl{m[1], stmt + ";"})
			}
		default:
			t.Fatalf("llama_decl.h: a declaration the test cannot check: %q", stmt)
		}
	}
	if len(protos) < 30 || len(typedefs) < 5 {
		t.Fatalf("found only %d prototypes and %d typedefs in llama_decl.h", len(protos), len(typedefs))
	}
	return protos, typedefs
}

// declaredConstants reads the NERSTREAM_ constants of llama_decl.h: each
// names the real enumerator after its prefix.
func declaredConstants(t *testing.T) []cDecl {
	t.Helper()
	src, err := os.ReadFile("llama_decl.h")
	if err != nil {
		t.Fatal(err)
	}
	var out []cDecl
	for _, m := range regexp.MustCompile(`(?m)^#define (NERSTREAM_\w+)[ \t]+([^/\n]+)`).FindAllStringSubmatch(string(src), -1) {
		out = append(out, cDecl{m[1], strings.TrimSpace(m[2])})
	}
	if len(out) < 5 {
		t.Fatalf("found only %d NERSTREAM_ constants in llama_decl.h", len(out))
	}
	return out
}

// compileAgainstPinned compiles a C translation unit with the real headers
// on the include path, every warning an error, and fails the test with
// the compiler's messages.
func compileAgainstPinned(t *testing.T, name, unit string) {
	t.Helper()
	cc := cCompiler(t)
	realInclude, ggmlInclude := pinnedIncludes(t)
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I", realInclude, "-I", ggmlInclude, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("llama_decl.h disagrees with the pinned headers (%v):\n%s\nthe translation unit:\n%s", err, stderr.String(), unit)
	}
}

// prototypeUnit is a C translation unit that includes the real llama.h and
// ggml.h, checks that they declare every name llama_decl.h declares, then
// declares llama_decl.h's prototypes again (C refuses a redeclaration of
// an incompatible type) and asserts that each of its typedefs is
// compatible with the real one.
func prototypeUnit(protos, typedefs []cDecl) string {
	var b strings.Builder
	b.WriteString("#include \"llama.h\"\n#include \"ggml.h\"\n#include \"ggml-cpu.h\"\n\n")
	b.WriteString("// Every name is the real headers' first: a name they lack fails here.\nvoid nerstream_check_declared(void);\nvoid nerstream_check_declared(void) {\n")
	for _, p := range protos {
		fmt.Fprintf(&b, "    (void)&%s;\n", p.name)
	}
	for _, d := range typedefs {
		fmt.Fprintf(&b, "    (void)sizeof(%s);\n", d.name)
	}
	b.WriteString("}\n\n// llama_decl.h's prototypes.\n")
	for _, p := range protos {
		b.WriteString(p.text + "\n")
	}
	b.WriteString("\n// llama_decl.h's typedefs, renamed, and compatible with the real ones.\n")
	for _, d := range typedefs {
		ours := "nerstream_decl_" + d.name
		fmt.Fprintf(&b, "%s\n", regexp.MustCompile(`\b`+d.name+`\b`).ReplaceAllString(d.text, ours))
		fmt.Fprintf(&b, "_Static_assert(_Generic((%s *)0, %s *: 1, default: 0), \"llama_decl.h: typedef %s is not the real one\");\n", ours, d.name, d.name)
	}
	return b.String()
}

// TestPrototypesMatchHeader proves that every function prototype and
// typedef of llama_decl.h has the type the pinned llama.h, ggml.h and
// ggml-cpu.h give
// it, so that cgo never calls a function with arguments of another type.
func TestPrototypesMatchHeader(t *testing.T) {
	protos, typedefs := declaredFunctions(t)
	compileAgainstPinned(t, "prototypes.c", prototypeUnit(protos, typedefs))
	t.Logf("%d prototypes and %d typedefs checked", len(protos), len(typedefs))
}

// constantUnit is a C translation unit that includes the real headers and
// asserts that each NERSTREAM_ constant equals the real enumerator.
func constantUnit(consts []cDecl) string {
	var b strings.Builder
	b.WriteString("#include \"llama.h\"\n#include \"ggml.h\"\n\n")
	for _, c := range consts {
		real := strings.TrimPrefix(c.name, "NERSTREAM_")
		fmt.Fprintf(&b, "#define %s %s\n_Static_assert(%s == %s, \"llama_decl.h: %s is not %s\");\n", c.name, c.text, c.name, real, c.name, real)
	}
	return b.String()
}

// TestConstantsMatchHeader proves that the enum values the binding writes
// (NERSTREAM_ constants of llama_decl.h) are the pinned headers' values.
func TestConstantsMatchHeader(t *testing.T) {
	consts := declaredConstants(t)
	compileAgainstPinned(t, "constants.c", constantUnit(consts))
	t.Logf("%d constants checked", len(consts))
}

func diffLines(ours, theirs string) string {
	a, b := strings.Split(ours, "\n"), strings.Split(theirs, "\n")
	var out strings.Builder
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			fmt.Fprintf(&out, "  ours:   %s\n  llama.h: %s\n", x, y)
		}
	}
	return out.String()
}

// TestLlamaCppCommit checks LlamaCppCommit against the pinned module's
// own record of its llama.cpp commit.
func TestLlamaCppCommit(t *testing.T) {
	inc, _ := pinnedIncludes(t)
	b, err := os.ReadFile(filepath.Join(inc, "..", "..", "build-info.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `LLAMA_COMMIT = "` + LlamaCppCommit + `"`; !strings.Contains(string(b), want) {
		t.Errorf("build-info.cpp does not say %s:\n%s", want, b)
	}
}
