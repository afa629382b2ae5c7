package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a test double of testing.TB that records a Skipf or Fatalf
// and stops the goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs f with a recorder, in a goroutine of its own so that Skipf
// and Fatalf can end it.
func call(t *testing.T, f func(testing.TB) string) (rec *recorder, got string) {
	rec = &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = f(rec)
	}()
	<-done
	return rec, got
}

// TestMissingData: present data is returned; absent or damaged data skips
// with "SKIPPED" and the reason, or fails when RequireEnv=1.
func TestMissingData(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "uniner"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(root, "good.gguf")
	damaged := filepath.Join(root, "damaged.gguf")
	if err := os.WriteFile(good, []byte("GGUF\x03\x00\x00\x00\xff\xfe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(damaged, []byte("GGUF\x03\x00\x00\x00\uFFFD\uFFFD"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    func(testing.TB) string
		want string // the path returned, or "" when the test must stop
		says string // what the reason holds
	}{
		{"folder", func(t testing.TB) string { return dir(t, root, "uniner") }, filepath.Join(root, "uniner"), ""},
		{"absent folder", func(t testing.TB) string { return dir(t, root, "conll") }, "", "../shared/data/conll"},
		{"a file for a folder", func(t testing.TB) string { return dir(t, root, "good.gguf") }, "", "not a folder"},
		{"no module", func(t testing.TB) string { return dir(t, "", "uniner") }, "", "no go.mod"},
		{"file", func(t testing.TB) string { return file(t, root, "good.gguf") }, good, ""},
		{"absent file", func(t testing.TB) string { return file(t, root, "vocab/x.jsonl") }, "", "../shared/data/vocab/x.jsonl"},
		{"a folder for a file", func(t testing.TB) string { return file(t, root, "uniner") }, "", "a folder"},
		{"vocabulary", func(t testing.TB) string { return vocab(t, good) }, good, ""},
		{"damaged vocabulary", func(t testing.TB) string { return vocab(t, damaged) }, "", "2 U+FFFD"},
		{"absent vocabulary", func(t testing.TB) string { return vocab(t, filepath.Join(root, "none.gguf")) }, "", "cannot be read"},
	}
	for _, require := range []string{"", "1"} {
		t.Run("require="+require, func(t *testing.T) {
			t.Setenv(RequireEnv, require)
			for _, c := range cases {
				rec, got := call(t, c.f)
				switch {
				case c.want != "":
					if got != c.want || rec.skipped != "" || rec.failed != "" {
						t.Errorf("%s: %q (skipped %q, failed %q), want %q", c.name, got, rec.skipped, rec.failed, c.want)
					}
				case require == "1":
					if rec.failed == "" || rec.skipped != "" || !strings.Contains(rec.failed, c.says) || !strings.Contains(rec.failed, RequireEnv) {
						t.Errorf("%s: failed %q, skipped %q; want a failure that says %q", c.name, rec.failed, rec.skipped, c.says)
					}
				default:
					if rec.skipped == "" || rec.failed != "" || !strings.HasPrefix(rec.skipped, "SKIPPED: ") || !strings.Contains(rec.skipped, c.says) {
						t.Errorf("%s: skipped %q, failed %q; want a skip that says SKIPPED and %q", c.name, rec.skipped, rec.failed, c.says)
					}
				}
			}
		})
	}
}

// TestRoot: from a package's folder, the shared data is beside the
// module's root, whatever the package's depth.
func TestRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Dir(filepath.Dir(wd)) // internal/shareddata
	if _, err := os.Stat(filepath.Join(module, "go.mod")); err != nil {
		t.Fatalf("no go.mod two folders up from %s: %v", wd, err)
	}
	if got, want := root(), filepath.Join(filepath.Dir(module), "shared", "data"); got != want {
		t.Errorf("root() = %q, want %q", got, want)
	}
	t.Chdir(t.TempDir())
	if got := root(); got != "" {
		t.Errorf("outside the module, root() = %q, want \"\"", got)
	}
}

// TestPromptCases reads the cases of a file, and fails the test on a line
// that is not one, or on too few cases.
func TestPromptCases(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.jsonl", `{"text":"Ada","type":"person","ids":[1,2]}`+"\n\n"+`{"text":"x","type":"y","ids":[1]}`+"\n")
	rec, cases := callCases(t, good, 2)
	if rec.failed != "" || len(cases) != 2 || cases[0].Text != "Ada" || cases[0].Type != "person" || len(cases[0].IDs) != 2 || cases[1].IDs[0] != 1 {
		t.Errorf("good file: %+v (failed %q)", cases, rec.failed)
	}
	for name, line := range map[string]string{
		"not JSON":      `{"text":`,
		"unknown field": `{"text":"a","type":"b","ids":[1],"extra":1}`,
		"no ids":        `{"text":"a","type":"b"}`,
		"no type":       `{"text":"a","ids":[1]}`,
		"ids as text":   `{"text":"a","type":"b","ids":"1 2"}`,
	} {
		path := write("bad.jsonl", `{"text":"Ada","type":"person","ids":[1,2]}`+"\n"+line+"\n")
		if rec, _ := callCases(t, path, 1); !strings.Contains(rec.failed, "bad.jsonl:2: not a case") {
			t.Errorf("%s: failed %q, want a failure naming line 2", name, rec.failed)
		}
	}
	if rec, _ := callCases(t, filepath.Join(dir, "absent.jsonl"), 0); rec.failed == "" {
		t.Error("an absent file did not fail")
	}
	if rec, _ := callCases(t, good, 3); !strings.Contains(rec.failed, "2 cases, want 3") {
		t.Errorf("a file with too few cases: failed %q", rec.failed)
	}
}

func callCases(t *testing.T, path string, atLeast int) (*recorder, []PromptCase) {
	var cases []PromptCase
	rec, _ := call(t, func(tb testing.TB) string {
		cases = promptCases(tb, path, atLeast)
		return ""
	})
	return rec, cases
}
