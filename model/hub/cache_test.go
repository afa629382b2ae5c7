package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model/gguf"
)

// synthModelSeed is a small valid GGUF file whose bytes depend on seed.
func synthModelSeed(t *testing.T, seed uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gguf.Synth(&b, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// filesServer serves a body per path (404 elsewhere), with its SHA-256 in
// X-Linked-Etag as Hugging Face does, and counts the requests per path.
type filesServer struct {
	files map[string][]byte
	mu    sync.Mutex
	hits  map[string]int
}

func (f *filesServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.hits == nil {
		f.hits = map[string]int{}
	}
	f.hits[r.URL.Path]++
	f.mu.Unlock()
	body, ok := f.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Linked-Etag", `"`+sha(body)+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (f *filesServer) requests(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

// TestCacheKeyedBySource is the regression test of issue 16's finding
// "the model cache is keyed by the file name alone". Reproduction, before
// the fix: `nerstream model pull https://anywhere.example/UniNER-7B-type.Q4_K_M.gguf`
// stored the file as {cache}/UniNER-7B-type.Q4_K_M.gguf, and then
// Resolve(hf://mradermacher/UniNER-7B-type-GGUF/UniNER-7B-type.Q4_K_M.gguf),
// the default model of demo and run, returned that file without a request:
// one pull of that name from any address became the default model. The
// same held between any two sources with one file name: two hosts, two
// ports, two revisions, two folders of a repository.
func TestCacheKeyedBySource(t *testing.T) {
	isolate(t)
	a, b := synthModelSeed(t, 1), synthModelSeed(t, 2)
	hf := &filesServer{files: map[string][]byte{
		"/mradermacher/UniNER-7B-type-GGUF/resolve/main/" + DefaultModelFile: a,
		"/o/r/resolve/v1/m.gguf":       a,
		"/o/r/resolve/v2/m.gguf":       b,
		"/o/r/resolve/main/x/m.gguf":   a,
		"/o/r/resolve/main/y/m.gguf":   b,
		"/o/r/resolve/main/m.gguf":     b,
		"/o/r/resolve/main/sub/m.gguf": a,
	}}
	hfURL := serve(t, hf)
	web1 := serve(t, &filesServer{files: map[string][]byte{"/x/" + DefaultModelFile: b, "/m.gguf": a, "/p/m.gguf": a}})
	web2 := serve(t, &filesServer{files: map[string][]byte{"/m.gguf": b}})
	tests := []struct {
		name          string
		first, second string
		firstBody     []byte
		secondBody    []byte
	}{
		{"any address, then the default model", web1 + "/x/" + DefaultModelFile, DefaultModelRef, b, a},
		{"two ports of one host", web1 + "/m.gguf", web2 + "/m.gguf", a, b},
		{"two revisions", "hf://o/r/m.gguf@v1", "hf://o/r/m.gguf@v2", a, b},
		{"two folders of a repository", "hf://o/r/x/m.gguf", "hf://o/r/y/m.gguf", a, b},
		{"a folder and the top of a repository", "hf://o/r/sub/m.gguf", "hf://o/r/m.gguf", a, b},
		{"an address, then an hf:// reference", web1 + "/p/m.gguf", "hf://o/r/m.gguf", a, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HF_ENDPOINT", hfURL)
			opts := Options{Dir: t.TempDir()}
			first, err := Pull(context.Background(), tt.first, opts)
			if err != nil {
				t.Fatal(err)
			}
			second, err := Resolve(context.Background(), tt.second, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(second); !bytes.Equal(got, tt.secondBody) {
				t.Fatalf("Resolve(%s) = %s, the model pulled from %s", tt.second, second, tt.first)
			}
			again, err := Resolve(context.Background(), tt.first, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(again); again != first.Path || !bytes.Equal(got, tt.firstBody) {
				t.Errorf("Resolve(%s) = %s after the second pull, want %s as it was", tt.first, again, first.Path)
			}
		})
	}
}

// TestCacheDetectsCorruption is the regression test of issue 16's finding
// that a cached model was used without any check. Reproduction, before the
// fix: pull a model, change its bytes in the cache, and run with the same
// reference: Resolve returned the changed file (nothing recorded its
// digest), and `model pull` said "already in the cache".
//
// Now the manifest beside the file holds its size, SHA-256 and time.
// Resolve (every load) re-hashes when the size or the time differ; Pull
// hashes always. A corrupted model is reported and downloaded again. The
// tests move the file's time on by a second after changing it, so that
// they do not depend on the file system's time resolution.
func TestCacheDetectsCorruption(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	other := synthModelSeed(t, 99)
	flip := func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)/2] ^= 0xff
		return c
	}
	resolve := func(ctx context.Context, ref string, o Options) (string, error) { return Resolve(ctx, ref, o) }
	pull := func(ctx context.Context, ref string, o Options) (string, error) {
		res, err := Pull(ctx, ref, o)
		return res.Path, err
	}
	tests := []struct {
		name      string
		corrupt   []byte // the file's new content
		keepTime  bool   // put the file's old time back
		dropMan   bool   // delete the manifest
		use       func(context.Context, string, Options) (string, error)
		wantNotes string
	}{
		{"a byte flipped, Resolve", flip(model), false, false, resolve, "is corrupted"},
		{"truncated, Resolve", model[:len(model)/2], false, false, resolve, "is corrupted"},
		{"replaced by another model, Resolve", other, false, false, resolve, "is corrupted"},
		{"a byte flipped, Pull", flip(model), false, false, pull, "is corrupted"},
		{"a byte flipped and the time put back, Pull", flip(model), true, false, pull, "is corrupted"},
		{"no manifest, Resolve", model, false, true, resolve, "has no readable manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelServer{body: model, header: etag(sha(model))}
			url := serve(t, m) + "/m.gguf"
			dir := t.TempDir()
			res, err := Pull(context.Background(), url, Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(res.Path, tt.corrupt, 0o644); err != nil {
				t.Fatal(err)
			}
			mtime := fi.ModTime().Add(time.Second)
			if tt.keepTime {
				mtime = fi.ModTime()
			}
			if err := os.Chtimes(res.Path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if tt.dropMan {
				os.Remove(res.Path + ".manifest.json")
			}
			var log bytes.Buffer
			got, err := tt.use(context.Background(), url, Options{Dir: dir, Progress: &log})
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(got); !bytes.Equal(b, model) {
				t.Fatalf("the cached model was used as it is, changed (progress %q)", log.String())
			}
			if !strings.Contains(log.String(), tt.wantNotes) || !strings.Contains(log.String(), "downloading it again") {
				t.Errorf("progress %q does not say the model %s and is downloaded again", log.String(), tt.wantNotes)
			}
			if reqs, _ := m.requests(); len(reqs) != 2 {
				t.Errorf("%d requests, want 2", len(reqs))
			}
		})
	}
}

// TestCacheLoadCheckIsCheap: while the file keeps the size and time its
// manifest recorded, Resolve does not read it; a new time with the same
// bytes (a copy, a touch) costs one hash, recorded for the next load.
func TestCacheLoadCheckIsCheap(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	m := &modelServer{body: model}
	url := serve(t, m) + "/m.gguf"
	dir := t.TempDir()
	res, err := Pull(context.Background(), url, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	before, err := readManifest(res.Path + manifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if before.Source != url || before.SHA256 != sha(model) || before.Size != int64(len(model)) {
		t.Fatalf("manifest %+v", before)
	}
	touched := time.Unix(0, before.ModTime).Add(time.Hour)
	if err := os.Chtimes(res.Path, touched, touched); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(context.Background(), url, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	after, err := readManifest(res.Path + manifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if after.ModTime != touched.UnixNano() || after.SHA256 != before.SHA256 {
		t.Errorf("manifest after a touch: %+v, want the new time %d", after, touched.UnixNano())
	}
	// The size and time match now: the next load does not hash.
	hashes := 0
	defer func(h func(string) (string, error)) { hashFile = h }(hashFile)
	hashFile = func(path string) (string, error) { hashes++; return "", nil }
	if _, err := Resolve(context.Background(), url, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if hashes != 0 {
		t.Errorf("Resolve hashed the file %d times although its size and time match", hashes)
	}
	if reqs, _ := m.requests(); len(reqs) != 1 {
		t.Errorf("%d requests, want 1", len(reqs))
	}
}

// TestFileSHA256: a file's digest is hashed from its bytes, or taken from
// its pull manifest while the file's size and time still match it.
func TestFileSHA256(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("GGUF model bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", sha256.Sum256([]byte("GGUF model bytes")))
	if got, err := FileSHA256(path); err != nil || got != want {
		t.Fatalf("hashed: %q, %v; want %q", got, err, want)
	}
	fi, _ := os.Stat(path)
	fake := strings.Repeat("ab", 32)
	m := manifest{Source: "test", Size: fi.Size(), SHA256: fake, ModTime: fi.ModTime().UnixNano()}
	if err := m.write(path + manifestSuffix); err != nil {
		t.Fatal(err)
	}
	if got, _ := FileSHA256(path); got != fake {
		t.Errorf("with a matching manifest: %q, want the manifest's %q", got, fake)
	}
	// The file changes: the manifest no longer speaks for it.
	if err := os.WriteFile(path, []byte("GGUF another, longer model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := FileSHA256(path); got != fmt.Sprintf("%x", sha256.Sum256([]byte("GGUF another, longer model"))) {
		t.Errorf("after a change: %q", got)
	}
	if _, err := FileSHA256(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
