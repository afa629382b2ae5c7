package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/hub"
)

// pullServer serves a synthetic GGUF at /m.gguf (with an ETag holding its
// SHA-256 when etag is set) and a non-GGUF body at /page.gguf, and records
// the path and Authorization header of each request.
type pullServer struct {
	model []byte
	etag  bool

	mu   sync.Mutex
	seen []string // "PATH AUTHORIZATION"
}

func (p *pullServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.URL.Path+" "+r.Header.Get("Authorization"))
	p.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/m.gguf"):
		if p.etag {
			w.Header().Set("ETag", `"`+pullDigest(p.model)+`"`)
		}
		http.ServeContent(w, r, "m.gguf", time.Time{}, bytes.NewReader(p.model))
	case r.URL.Path == "/page.gguf":
		w.Write([]byte("<!doctype html><p>sign in</p>"))
	default:
		http.NotFound(w, r)
	}
}

func pullDigest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newPullServer(t *testing.T, etag bool) (*pullServer, string) {
	t.Helper()
	var b bytes.Buffer
	if err := gguf.Synth(&b, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16}); err != nil {
		t.Fatal(err)
	}
	p := &pullServer{model: b.Bytes(), etag: etag}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// cachedAt is where the model cache dir keeps the model of ref.
func cachedAt(t *testing.T, dir, ref string) string {
	t.Helper()
	r, err := hub.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.CachePath(dir)
}

func pullEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"HF_TOKEN", "HF_ENDPOINT", "NERSTREAM_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("NERSTREAM_MODEL_DIR", t.TempDir())
}

func TestModelPullCommand(t *testing.T) {
	pullEnv(t)
	srv, base := newPullServer(t, false)
	digest := pullDigest(srv.model)
	tests := []struct {
		name       string
		args       []string // after "model pull"; BASE is the server's address, DIR a fresh folder
		wantStderr string
	}{
		{"plain URL, no digest", []string{"BASE/m.gguf", "--dir", "DIR"}, "not verified: the server gave no SHA-256"},
		{"--sha256", []string{"--sha256", digest, "BASE/m.gguf", "--dir", "DIR"}, "SHA-256 verified"},
		{"upper-case --sha256 and --require-sha256", []string{"BASE/m.gguf", "--dir=DIR", "--sha256", strings.ToUpper(digest), "--require-sha256"}, "SHA-256 verified"},
		{"--force", []string{"BASE/m.gguf", "--dir", "DIR", "--force"}, "pulled m.gguf"},
		{"--max-bytes in bytes", []string{"BASE/m.gguf", "--dir", "DIR", "--max-bytes", "SIZE"}, "pulled m.gguf"},
		{"--max-bytes with a unit", []string{"BASE/m.gguf", "--dir", "DIR", "--max-bytes", "1MiB"}, "pulled m.gguf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"model", "pull"}
			for _, a := range tt.args {
				args = append(args, strings.NewReplacer("BASE", base, "DIR", dir, "SIZE", strconv.Itoa(len(srv.model))).Replace(a))
			}
			code, stdout, stderr := runCLI(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			want := cachedAt(t, dir, base+"/m.gguf")
			if stdout != want+"\n" {
				t.Errorf("stdout %q, want the path %s", stdout, want)
			}
			if got, _ := os.ReadFile(want); !bytes.Equal(got, srv.model) {
				t.Errorf("the pulled file differs from the served one")
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q: want one line mentioning %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestModelPullDefaultDirAndCache(t *testing.T) {
	pullEnv(t)
	_, base := newPullServer(t, true)
	want := cachedAt(t, os.Getenv("NERSTREAM_MODEL_DIR"), base+"/m.gguf")
	for i, wantStderr := range []string{"SHA-256 verified", "already in the cache"} {
		code, stdout, stderr := runCLI(t, "", "model", "pull", base+"/m.gguf")
		if code != 0 || stdout != want+"\n" {
			t.Fatalf("pull %d: exit %d, stdout %q, stderr %q; want %s", i+1, code, stdout, stderr, want)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, wantStderr) {
			t.Errorf("pull %d: stderr %q: want one line mentioning %q", i+1, stderr, wantStderr)
		}
	}
}

func TestModelPullHF(t *testing.T) {
	pullEnv(t)
	srv, base := newPullServer(t, true)
	t.Setenv("HF_ENDPOINT", base)
	t.Setenv("HF_TOKEN", "hf_cli_token")
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, "", "model", "pull", "hf://owner/repo/m.gguf@rev1", "--dir", dir)
	if code != 0 || stdout != filepath.Join(dir, "hf", "owner", "repo", "rev1", "m.gguf")+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if want := "/owner/repo/resolve/rev1/m.gguf Bearer hf_cli_token"; len(srv.seen) != 1 || srv.seen[0] != want {
		t.Errorf("requests %q, want %q", srv.seen, want)
	}
}

func TestModelPullErrors(t *testing.T) {
	pullEnv(t)
	_, base := newPullServer(t, false)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name     string
		args     []string // after "model pull"; BASE is the server's address
		code     int
		contains string
	}{
		{"404", []string{"BASE/missing.gguf"}, 1, "not found: " + base + "/missing.gguf"},
		{"hf 404", []string{"hf://o/r/missing.gguf"}, 1, "not found: " + base + "/o/r/resolve/main/missing.gguf"},
		{"connection refused", []string{closedURL + "/m.gguf"}, 1, "fetching " + closedURL + "/m.gguf"},
		{"checksum", []string{"BASE/m.gguf", "--sha256", strings.Repeat("0", 64)}, 1, "SHA-256 mismatch: got "},
		{"not GGUF", []string{"BASE/page.gguf"}, 1, "not a GGUF file"},
		{"--require-sha256 without digest", []string{"BASE/m.gguf", "--require-sha256"}, 1, "not verified: the server gave no SHA-256"},
		{"no REF", nil, 2, "want one model reference"},
		{"two REFs", []string{"BASE/m.gguf", "BASE/m.gguf"}, 2, "want one model reference"},
		{"scheme", []string{"ftp://host/m.gguf"}, 2, "bad model reference"},
		{"hf without repo", []string{"hf://owner/m.gguf"}, 2, "want hf://OWNER/REPO/FILE.gguf[@REVISION]"},
		{"not .gguf", []string{"hf://owner/repo/model.bin"}, 2, "does not end in .gguf"},
		{"plain http", []string{"http://example.com/m.gguf"}, 2, "loopback"},
		{"bad --sha256", []string{"BASE/m.gguf", "--sha256", "xyz"}, 2, "bad SHA-256"},
		{"unknown flag", []string{"BASE/m.gguf", "--nope"}, 2, "not defined: -nope"},
		// Issue 16: a presigned address is shown redacted.
		{"presigned 404", []string{"BASE/missing.gguf?X-Amz-Signature=SIGSECRET"}, 1, "not found: " + base + "/missing.gguf?X-Amz-Signature=REDACTED"},
		{"presigned, bad", []string{"http://example.com/m.gguf?sig=SIGSECRET"}, 2, "sig=REDACTED"},
		// Issue 16: the size limit.
		{"--max-bytes below the model", []string{"BASE/m.gguf", "--max-bytes", "1KiB"}, 1, "model too big: " + base + "/m.gguf is 443.4 KiB"},
		{"--max-bytes not a size", []string{"BASE/m.gguf", "--max-bytes", "lots"}, 2, "invalid value \"lots\" for flag -max-bytes"},
		{"--max-bytes unknown unit", []string{"BASE/m.gguf", "--max-bytes", "3 parsecs"}, 2, "unknown unit"},
		{"--max-bytes zero", []string{"BASE/m.gguf", "--max-bytes", "0"}, 2, "above 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HF_ENDPOINT", base)
			args := []string{"model", "pull"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "BASE", base))
			}
			code, stdout, stderr := runCLI(t, "", args...)
			checkOneLineError(t, code, tt.code, stderr, tt.contains)
			if strings.Contains(stderr, "SECRET") {
				t.Errorf("stderr shows a secret: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q after a failure", stdout)
			}
			if entries, _ := os.ReadDir(os.Getenv("NERSTREAM_MODEL_DIR")); len(entries) != 0 {
				t.Errorf("the cache holds %v after a failure", entries)
			}
		})
	}
}

func TestModelPullHelp(t *testing.T) {
	code, stdout, _ := runCLI(t, "", "model", "pull", "--help")
	if code != 0 || !strings.Contains(stdout, "pull REF") || !strings.Contains(stdout, "[--max-bytes SIZE]") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if !strings.HasPrefix(hub.DefaultModelRef, "hf://") {
		t.Errorf("DefaultModelRef %q", hub.DefaultModelRef)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		str  string
	}{
		{"34359738368", 32 << 30, "32GiB"},
		{"32GiB", 32 << 30, "32GiB"},
		{"32gib", 32 << 30, "32GiB"},
		{"40 GB", 40e9, "39062500KiB"},
		{"1536KiB", 1536 << 10, "1536KiB"},
		{"7b", 7, "7"},
		{"1TiB", 1 << 40, "1TiB"},
	}
	for _, tt := range tests {
		var b byteSize
		if err := b.Set(tt.in); err != nil || int64(b) != tt.want || b.String() != tt.str {
			t.Errorf("Set(%q): %d (%s), %v; want %d (%s)", tt.in, b, b.String(), err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"", "0", "-1", "GiB", "1.5GiB", "9999999TiB", "12 parsecs"} {
		var b byteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) = %d, want an error", bad, b)
		}
	}
}
