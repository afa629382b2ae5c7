package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsBareName(t *testing.T) {
	for s, want := range map[string]bool{
		DefaultModelFile: true, "m.gguf": true, "model": true,
		"": false, ".": false, "..": false, "./m.gguf": false, "models/m.gguf": false, "/abs/m.gguf": false,
		`dir\m.gguf`: false, DefaultModelRef: false, "https://host/m.gguf": false,
	} {
		if got := IsBareName(s); got != want {
			t.Errorf("IsBareName(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestFind is the model half of issue 17's finding that a bare model.path
// ("UniNER-7B-type.Q4_K_M.gguf", as examples/nerstream.yaml had it)
// resolved against the working folder only, never the model cache, and
// failed with "stat UniNER-7B-type.Q4_K_M.gguf: no such file", saying
// nothing of model pull. Now the working folder's file wins, then the
// cache's one model of that name: put there by hand, or pulled from any
// source; none or several say what to do.
func TestFind(t *testing.T) {
	isolate(t)
	a, b := synthModelSeed(t, 1), synthModelSeed(t, 2)
	hf := &filesServer{files: map[string][]byte{
		"/o/r/resolve/main/m.gguf":     a,
		"/o/r/resolve/v2/m.gguf":       b,
		"/o/r/resolve/main/sub/n.gguf": a,
	}}
	t.Setenv("HF_ENDPOINT", serve(t, hf))
	web := serve(t, &filesServer{files: map[string][]byte{"/files/m.gguf": b}})

	type setup struct {
		pulls []string // references pulled into the cache first
		flat  bool     // a file {cache}/NAME, put there by hand
		here  bool     // a file NAME in the working folder
		strip bool     // the pulled models lose their manifests
		alter bool     // the pulled models change size after the pull
	}
	cases := []struct {
		name     string
		find     string
		setup    setup
		wantErr  error
		wantPath func(dir string) string
		wantMsg  []string
	}{
		{name: "pulled from an hf:// reference", find: "m.gguf", setup: setup{pulls: []string{"hf://o/r/m.gguf"}},
			wantPath: func(dir string) string { return filepath.Join(dir, "hf", "o", "r", "main", "m.gguf") }},
		{name: "pulled from a folder of a repository", find: "n.gguf", setup: setup{pulls: []string{"hf://o/r/sub/n.gguf"}},
			wantPath: func(dir string) string { return filepath.Join(dir, "hf", "o", "r", "main", "sub%2Fn.gguf") }},
		{name: "pulled from an address", find: "m.gguf", setup: setup{pulls: []string{web + "/files/m.gguf"}},
			wantPath: func(dir string) string { return mustRef(t, web+"/files/m.gguf").CachePath(dir) }},
		{name: "put in the cache folder by hand", find: "m.gguf", setup: setup{flat: true},
			wantPath: func(dir string) string { return filepath.Join(dir, "m.gguf") }},
		{name: "the working folder's file wins", find: "m.gguf", setup: setup{here: true, flat: true, pulls: []string{"hf://o/r/m.gguf"}},
			wantPath: func(string) string { return "m.gguf" }},
		{name: "nothing of that name", find: "other.gguf", setup: setup{pulls: []string{"hf://o/r/m.gguf", web + "/files/m.gguf"}},
			wantErr: ErrNotCached, wantMsg: []string{`"other.gguf" is neither a file of the working folder nor in the model cache`, "nerstream model pull hf://OWNER/REPO/other.gguf"}},
		{name: "the default model says its reference", find: DefaultModelFile,
			wantErr: ErrNotCached, wantMsg: []string{"nerstream model pull " + DefaultModelRef}},
		{name: "a pulled file without its manifest", find: "m.gguf", setup: setup{pulls: []string{"hf://o/r/m.gguf"}, strip: true},
			wantErr: ErrNotCached},
		{name: "two revisions", find: "m.gguf", setup: setup{pulls: []string{"hf://o/r/m.gguf", "hf://o/r/m.gguf@v2"}},
			wantErr: ErrAmbiguous, wantMsg: []string{"2 models named", "pulled from hf://o/r/m.gguf)", "pulled from hf://o/r/m.gguf@v2)"}},
		{name: "by hand and pulled", find: "m.gguf", setup: setup{pulls: []string{web + "/files/m.gguf"}, flat: true},
			wantErr: ErrAmbiguous, wantMsg: []string{"by hand", "pulled from " + web + "/files/m.gguf"}},
		{name: "a pulled model that changed", find: "m.gguf", setup: setup{pulls: []string{"hf://o/r/m.gguf"}, alter: true},
			wantErr: ErrCorrupt, wantMsg: []string{"nerstream model pull hf://o/r/m.gguf fetches it again"}},
		{name: "control characters are quoted", find: "m\n\x1b[31m.gguf",
			wantErr: ErrNotCached, wantMsg: []string{`"m\n\x1b[31m.gguf"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(t.TempDir())
			opts := Options{Dir: dir}
			for _, ref := range c.setup.pulls {
				res, err := Pull(context.Background(), ref, opts)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case c.setup.strip:
					os.Remove(res.Path + manifestSuffix)
				case c.setup.alter:
					os.WriteFile(res.Path, a[:len(a)-1], 0o644)
				}
			}
			if c.setup.flat {
				os.WriteFile(filepath.Join(dir, c.find), b, 0o644)
			}
			if c.setup.here {
				os.WriteFile(c.find, a, 0o644)
			}
			got, err := Find(c.find, opts)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Find(%q) = %q, %v; want %v", c.find, got, err, c.wantErr)
				}
				for _, m := range c.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not say %q", err, m)
					}
				}
				if strings.ContainsAny(err.Error(), "\n\x1b") {
					t.Errorf("error %q breaks the line", err)
				}
				return
			}
			if err != nil || got != c.wantPath(dir) {
				t.Fatalf("Find(%q) = %q, %v; want %q", c.find, got, err, c.wantPath(dir))
			}
		})
	}
}

// TestFindRefusesPaths: Find is for bare names only; a path or a
// reference is the caller's mistake.
func TestFindRefusesPaths(t *testing.T) {
	for _, s := range []string{"", "models/m.gguf", "../m.gguf", DefaultModelRef} {
		if _, err := Find(s, Options{Dir: t.TempDir()}); !errors.Is(err, ErrBadRef) {
			t.Errorf("Find(%q): %v, want ErrBadRef", s, err)
		}
	}
}
