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
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Fatal("no C compiler: cgo needs one anyway")
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	realInclude := filepath.Join(modDir, "llama", "llama.cpp", "include")
	ggmlInclude := filepath.Join(modDir, "ml", "backend", "ggml", "ggml", "include")
	if _, err := os.Stat(filepath.Join(realInclude, "llama.h")); err != nil {
		t.Fatalf("the pinned llama.h is not where it should be: %v", err)
	}
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
