package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
)

// synthModel is a small valid GGUF file.
func synthModel(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gguf.Synth(&b, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// request is what modelServer saw of one request.
type request struct {
	path, rng, auth string
}

// modelServer serves body at path, honouring "Range: bytes=N-", and counts
// the body bytes it sends.
type modelServer struct {
	body   []byte
	path   string      // other paths get 404; "" serves every path
	header http.Header // added to every response (ETag, X-Linked-Etag)
	status int         // when set, every response is this status, no body

	ignoreRange bool // answer 200 with the whole body to range requests
	// On the first request only: cutAt cuts the connection once the body
	// reaches this offset; hangAt sends up to this offset and then waits
	// until the client goes away.
	cutAt, hangAt int
	// endless serves this prefix followed by bytes without end.
	endless []byte

	mu   sync.Mutex
	reqs []request
	sent int
}

func (m *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.reqs = append(m.reqs, request{r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
	first := len(m.reqs) == 1
	m.mu.Unlock()
	if m.path != "" && r.URL.Path != m.path {
		http.NotFound(w, r)
		return
	}
	for k, v := range m.header {
		w.Header()[k] = v
	}
	if m.status != 0 {
		w.WriteHeader(m.status)
		return
	}
	if m.endless != nil {
		w.WriteHeader(http.StatusOK)
		w.Write(m.endless)
		junk := bytes.Repeat([]byte("x"), 1<<16)
		for r.Context().Err() == nil {
			if _, err := w.Write(junk); err != nil {
				return
			}
		}
		return
	}
	start, code := 0, http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" && !m.ignoreRange {
		if _, err := fmt.Sscanf(rng, "bytes=%d-", &start); err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if start >= len(m.body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(m.body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		code = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(m.body)-1, len(m.body)))
	}
	end := len(m.body)
	if first && m.cutAt > start {
		end = m.cutAt
	}
	if first && m.hangAt > start {
		end = m.hangAt
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(m.body)-start))
	w.WriteHeader(code)
	n, _ := w.Write(m.body[start:end])
	m.mu.Lock()
	m.sent += n
	m.mu.Unlock()
	if end == len(m.body) {
		return
	}
	w.(http.Flusher).Flush()
	if first && m.hangAt > 0 {
		<-r.Context().Done()
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func (m *modelServer) requests() ([]request, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]request(nil), m.reqs...), m.sent
}

func serve(t *testing.T, m http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv.URL
}

// isolate clears the environment the package reads.
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"HF_TOKEN", "HF_ENDPOINT", "NERSTREAM_MODEL_DIR", "NERSTREAM_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
}

// cachePath is where the cache folder dir keeps the model of ref.
func cachePath(t *testing.T, dir, ref string) string {
	t.Helper()
	r, err := ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.CachePath(dir)
}

func etag(digest string) http.Header {
	return http.Header{"Etag": {`"` + digest + `"`}}
}

func TestPullPlainURL(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	tests := []struct {
		name         string
		header       http.Header
		opts         Options
		wantVerified bool
		wantFrom     string
		wantLog      string
	}{
		{"no digest", nil, Options{}, false, "", "not verified: the server gave no SHA-256"},
		{"ETag digest", etag(sha(model)), Options{}, true, "ETag", "SHA-256 verified"},
		{"upper-case ETag digest", etag(strings.ToUpper(sha(model))), Options{}, true, "ETag", "SHA-256 verified"},
		{"X-Linked-Etag wins", http.Header{"X-Linked-Etag": {`"` + sha(model) + `"`}, "Etag": {`"` + strings.Repeat("0", 64) + `"`}}, Options{}, true, "X-Linked-Etag", "verified"},
		{"option digest", nil, Options{SHA256: strings.ToUpper(sha(model))}, true, "option", "SHA-256 verified"},
		{"option wins over server", etag(strings.Repeat("0", 64)), Options{SHA256: sha(model)}, true, "option", "SHA-256 verified"},
		{"weak ETag ignored", http.Header{"Etag": {`W/"` + sha(model) + `"`}}, Options{}, false, "", "not verified"},
		{"md5 ETag ignored", etag("0123456789abcdef0123456789abcdef"), Options{}, false, "", "not verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelServer{body: model, path: "/files/tiny.gguf", header: tt.header}
			url := serve(t, m) + "/files/tiny.gguf"
			var log bytes.Buffer
			tt.opts.Dir = filepath.Join(t.TempDir(), "cache") // created by Pull
			tt.opts.Progress = &log
			res, err := Pull(context.Background(), url, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := cachePath(t, tt.opts.Dir, url)
			if res.Path != want || res.Size != int64(len(model)) || res.SHA256 != sha(model) || res.Cached {
				t.Errorf("result %+v, want path %s, size %d", res, want, len(model))
			}
			if res.Verified != tt.wantVerified || res.DigestFrom != tt.wantFrom {
				t.Errorf("verified %v from %q, want %v from %q", res.Verified, res.DigestFrom, tt.wantVerified, tt.wantFrom)
			}
			if got, _ := os.ReadFile(want); !bytes.Equal(got, model) {
				t.Errorf("the cached file differs from the served one")
			}
			if _, err := os.Stat(want + ".part"); !os.IsNotExist(err) {
				t.Errorf("the partial file is still there: %v", err)
			}
			if s := log.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, tt.wantLog) || !strings.HasPrefix(s, "pulled tiny.gguf:") {
				t.Errorf("progress %q: want one line mentioning %q", s, tt.wantLog)
			}
			reqs, _ := m.requests()
			if len(reqs) != 1 || reqs[0].rng != "" || reqs[0].auth != "" {
				t.Errorf("requests %+v, want one without Range or Authorization", reqs)
			}
		})
	}
}

func TestPullFailures(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	notGGUF := append([]byte("<html>not a model</html>"), make([]byte, 1000)...)
	tests := []struct {
		name    string
		server  *modelServer
		opts    Options
		token   string
		want    error
		mention []string
	}{
		{"404", &modelServer{body: model, path: "/elsewhere.gguf"}, Options{}, "", ErrNotFound, []string{"not found: http://"}},
		{"401 without token", &modelServer{status: http.StatusUnauthorized}, Options{}, "", ErrAccessDenied, []string{"HTTP 401", "HF_TOKEN"}},
		{"403 plain URL", &modelServer{status: http.StatusForbidden}, Options{}, "tok", ErrAccessDenied, []string{"HTTP 403", "HF_TOKEN is sent with hf:// references only"}},
		{"500", &modelServer{status: http.StatusInternalServerError}, Options{}, "", nil, []string{"HTTP 500 Internal Server Error"}},
		{"checksum from option", &modelServer{body: model}, Options{SHA256: strings.Repeat("ab", 32)}, "", ErrChecksum,
			[]string{"SHA-256 mismatch: got " + sha(model) + ", want " + strings.Repeat("ab", 32), "deleted"}},
		{"checksum from ETag", &modelServer{body: model, header: etag(strings.Repeat("cd", 32))}, Options{}, "", ErrChecksum,
			[]string{"SHA-256 mismatch: got " + sha(model) + ", want " + strings.Repeat("cd", 32), "ETag"}},
		{"not GGUF", &modelServer{body: notGGUF}, Options{}, "", ErrNotGGUF, []string{"not a GGUF file", `"<htm`}},
		{"not GGUF endless", &modelServer{endless: []byte("GGUx")}, Options{}, "", ErrNotGGUF, []string{"not a GGUF file"}},
		{"too short", &modelServer{body: []byte("GG")}, Options{}, "", ErrNotGGUF, []string{"2 bytes"}},
		{"empty", &modelServer{body: []byte{}}, Options{}, "", ErrNotGGUF, []string{"0 bytes"}},
		{"require SHA-256", &modelServer{body: model}, Options{RequireSHA256: true}, "", ErrNoDigest, []string{"not verified: the server gave no SHA-256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HF_TOKEN", tt.token)
			url := serve(t, tt.server) + "/m.gguf"
			dir := t.TempDir()
			tt.opts.Dir = dir
			var log bytes.Buffer
			tt.opts.Progress = &log
			_, err := Pull(context.Background(), url, tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			for _, s := range tt.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("the cache holds %v after a failure", entries)
			}
			if log.Len() != 0 {
				t.Errorf("progress after a failure without a bar: %q", log.String())
			}
			reqs, _ := tt.server.requests()
			if len(reqs) != 1 {
				t.Errorf("%d requests, want 1 (no retry)", len(reqs))
			}
		})
	}
}

func TestPullResumesAfterCut(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	cut := len(model) / 3
	tests := []struct {
		name     string
		attempts int // 1: the first Pull fails, a second one resumes
	}{
		{"within one pull", 0},
		{"in the next pull", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelServer{body: model, cutAt: cut, header: etag(sha(model))}
			url := serve(t, m) + "/m.gguf"
			dir := t.TempDir()
			opts := Options{Dir: dir, Attempts: tt.attempts}
			res, err := Pull(context.Background(), url, opts)
			if tt.attempts == 1 {
				if err == nil || !strings.Contains(err.Error(), "broke off at") {
					t.Fatalf("first pull: %v, want a break", err)
				}
				if _, err := os.Stat(cachePath(t, dir, url)); !os.IsNotExist(err) {
					t.Fatalf("a file at the final path after a break: %v", err)
				}
				fi, serr := os.Stat(cachePath(t, dir, url) + ".part")
				if serr != nil || fi.Size() != int64(cut) {
					t.Fatalf("partial file: %v, %v; want %d bytes", fi, serr, cut)
				}
				res, err = Pull(context.Background(), url, opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Verified {
				t.Errorf("not verified: %+v", res)
			}
			if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, model) {
				t.Fatal("the resumed file differs from the served one")
			}
			reqs, sent := m.requests()
			if len(reqs) != 2 || reqs[0].rng != "" || reqs[1].rng != fmt.Sprintf("bytes=%d-", cut) {
				t.Errorf("requests %+v, want a plain one and one with Range: bytes=%d-", reqs, cut)
			}
			if sent != len(model) {
				t.Errorf("the server sent %d bytes, want %d: the download started over", sent, len(model))
			}
		})
	}
}

func TestPullPartialFile(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	n := len(model) / 2
	tests := []struct {
		name        string
		part        []byte
		ignoreRange bool
		wantRange   string
		wantSent    int
		wantReqs    int
	}{
		{"resumed", model[:n], false, fmt.Sprintf("bytes=%d-", n), len(model) - n, 1},
		{"server ignores the range", model[:n], true, fmt.Sprintf("bytes=%d-", n), len(model), 1},
		{"partial file already complete (416)", model, false, fmt.Sprintf("bytes=%d-", len(model)), 0, 1},
		{"partial file too long (416)", append(append([]byte{}, model...), "junk"...), false, fmt.Sprintf("bytes=%d-", len(model)+4), len(model), 2},
		{"partial file not GGUF", append([]byte("JUNK"), model[4:n]...), false, "", len(model), 1},
		{"partial file shorter than the magic", model[:3], false, "", len(model), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelServer{body: model, ignoreRange: tt.ignoreRange, header: etag(sha(model))}
			url := serve(t, m) + "/m.gguf"
			dir := t.TempDir()
			part := cachePath(t, dir, url) + ".part"
			if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(part, tt.part, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := Pull(context.Background(), url, Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, model) || !res.Verified {
				t.Fatalf("the file differs from the served one (verified %v)", res.Verified)
			}
			reqs, sent := m.requests()
			if len(reqs) != tt.wantReqs || reqs[0].rng != tt.wantRange {
				t.Errorf("requests %+v, want %d, the first with Range %q", reqs, tt.wantReqs, tt.wantRange)
			}
			if sent != tt.wantSent {
				t.Errorf("the server sent %d bytes, want %d", sent, tt.wantSent)
			}
		})
	}
}

func TestPullStallResumes(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	m := &modelServer{body: model, hangAt: 1000}
	url := serve(t, m) + "/m.gguf"
	// The server hangs until the client gives up, so any stall timeout
	// shows the resume; this one also leaves the healthy transfer ample
	// time between reads on a busy machine.
	res, err := Pull(context.Background(), url, Options{Dir: t.TempDir(), StallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, model) {
		t.Fatal("the file differs from the served one")
	}
	reqs, sent := m.requests()
	if len(reqs) != 2 || reqs[1].rng != "bytes=1000-" || sent != len(model) {
		t.Errorf("requests %+v, %d bytes sent; want a resume from 1000", reqs, sent)
	}
}

func TestPullCancelKeepsPartial(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	m := &modelServer{body: model, hangAt: 1000}
	url := serve(t, m) + "/m.gguf"
	dir := t.TempDir()
	part := cachePath(t, dir, url) + ".part"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Pull(ctx, url, Options{Dir: dir})
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(part); err == nil && fi.Size() == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first 1000 bytes never reached the partial file")
		}
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("error %v, want a cancellation that says how to resume", err)
	}
	if fi, err := os.Stat(part); err != nil || fi.Size() != 1000 {
		t.Fatalf("partial file after cancelling: %v, %v", fi, err)
	}
	if _, err := os.Stat(cachePath(t, dir, url)); !os.IsNotExist(err) {
		t.Fatalf("a file at the final path after cancelling: %v", err)
	}
	// The next pull takes up where the first stopped.
	if _, err := Pull(context.Background(), url, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	reqs, sent := m.requests()
	if len(reqs) != 2 || reqs[1].rng != "bytes=1000-" || sent != len(model) {
		t.Errorf("requests %+v, %d bytes sent; want a resume from 1000", reqs, sent)
	}
}

func TestPullHF(t *testing.T) {
	model := synthModel(t)
	tests := []struct {
		name, ref, token, wantPath, wantAuth string
		wantCache                            []string // under the cache folder
	}{
		{"no token", "hf://owner/repo/UniNER.Q4.gguf", "", "/owner/repo/resolve/main/UniNER.Q4.gguf", "",
			[]string{"hf", "owner", "repo", "main", "UniNER.Q4.gguf"}},
		{"token and revision", "hf://owner/repo-GGUF/sub/UniNER.Q4.gguf@v1.0", "hf_secret", "/owner/repo-GGUF/resolve/v1.0/sub/UniNER.Q4.gguf", "Bearer hf_secret",
			[]string{"hf", "owner", "repo-GGUF", "v1.0", "sub%2FUniNER.Q4.gguf"}},
		{"pull request revision", "hf://owner/repo/UniNER.Q4.gguf@refs/pr/1", "", "/owner/repo/resolve/refs/pr/1/UniNER.Q4.gguf", "",
			[]string{"hf", "owner", "repo", "refs%2Fpr%2F1", "UniNER.Q4.gguf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			m := &modelServer{body: model, path: tt.wantPath, header: http.Header{"X-Linked-Etag": {`"` + sha(model) + `"`}}}
			t.Setenv("HF_ENDPOINT", serve(t, m)+"/")
			t.Setenv("HF_TOKEN", tt.token)
			dir := t.TempDir()
			res, err := Pull(context.Background(), tt.ref, Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != filepath.Join(append([]string{dir}, tt.wantCache...)...) || !res.Verified || res.DigestFrom != "X-Linked-Etag" {
				t.Errorf("result %+v", res)
			}
			reqs, _ := m.requests()
			if len(reqs) != 1 || reqs[0].path != tt.wantPath || reqs[0].auth != tt.wantAuth {
				t.Errorf("requests %+v, want path %s, Authorization %q", reqs, tt.wantPath, tt.wantAuth)
			}
		})
	}
}

func TestPullHFErrors(t *testing.T) {
	tests := []struct {
		name, token string
		status      int
		want        error
		mention     []string
	}{
		{"not found", "", http.StatusNotFound, ErrNotFound, []string{"not found: http://", "/o/r/resolve/main/m.gguf"}},
		{"401 without token", "", http.StatusUnauthorized, ErrAccessDenied, []string{"HTTP 401", "set HF_TOKEN"}},
		{"403 with token", "hf_s3cret", http.StatusForbidden, ErrAccessDenied, []string{"HTTP 403", "(HF_TOKEN) does not give access"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv("HF_ENDPOINT", serve(t, &modelServer{status: tt.status}))
			t.Setenv("HF_TOKEN", tt.token)
			_, err := Pull(context.Background(), "hf://o/r/m.gguf", Options{Dir: t.TempDir()})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			for _, s := range tt.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error leaks the token: %q", err)
			}
		})
	}
}

// TestPullHFRedirect follows Hugging Face's LFS redirect: the digest is in
// the redirect's X-Linked-Etag, the file comes from another host with an
// ETag that is not a SHA-256, and the token is not sent there.
func TestPullHFRedirect(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	cdn := &modelServer{body: model, header: etag("0123456789abcdef0123456789abcdef")}
	cdnURL := strings.Replace(serve(t, cdn), "127.0.0.1", "localhost", 1)
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Linked-Etag", `"`+sha(model)+`"`)
		w.Header().Set("ETag", `"`+strings.Repeat("f", 64)+`"`) // the X-Linked-Etag wins
		http.Redirect(w, r, cdnURL+"/blob?sig=abc", http.StatusFound)
	})
	srv := httptest.NewServer(front)
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "hf_secret")
	res, err := Pull(context.Background(), "hf://o/r/m.gguf", Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.DigestFrom != "X-Linked-Etag" {
		t.Errorf("result %+v, want verified from the redirect's X-Linked-Etag", res)
	}
	reqs, _ := cdn.requests()
	if len(reqs) != 1 || reqs[0].auth != "" {
		t.Errorf("CDN requests %+v: want one, without the token", reqs)
	}
}

func TestPullRefusesRedirectToPlainHTTP(t *testing.T) {
	isolate(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/m.gguf", http.StatusFound)
	}))
	defer srv.Close()
	dir := t.TempDir()
	_, err := Pull(context.Background(), srv.URL+"/m.gguf", Options{Dir: dir, Client: srv.Client()})
	if err == nil || !strings.Contains(err.Error(), "loopback hosts only") {
		t.Fatalf("error %v, want a refused redirect", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the cache holds %v after a failure", entries)
	}
}

func TestPullBadOptions(t *testing.T) {
	isolate(t)
	tests := []struct {
		name string
		ref  string
		opts Options
		want error
	}{
		{"short digest", "http://127.0.0.1:1/m.gguf", Options{SHA256: "abc"}, ErrBadDigest},
		{"digest not hex", "http://127.0.0.1:1/m.gguf", Options{SHA256: strings.Repeat("g", 64)}, ErrBadDigest},
		{"plain http endpoint", "hf://o/r/m.gguf", Options{Endpoint: "http://example.com"}, ErrBadEndpoint},
		{"endpoint without scheme", "hf://o/r/m.gguf", Options{Endpoint: "huggingface.co"}, ErrBadEndpoint},
		{"bad ref", "hf://o/m.gguf", Options{}, ErrBadRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = t.TempDir()
			if _, err := Pull(context.Background(), tt.ref, tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPullNetworkError(t *testing.T) {
	isolate(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/m.gguf"
	srv.Close()
	dir := t.TempDir()
	_, err := Pull(context.Background(), url, Options{Dir: dir})
	if err == nil || !strings.HasPrefix(err.Error(), "fetching "+url+": ") || strings.Count(err.Error(), url) != 1 {
		t.Fatalf("error %v, want fetching URL: …", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the cache holds %v after a failure", entries)
	}
}

func TestPullCached(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	tests := []struct {
		name       string
		etag       bool // the first pull was verified against the server's digest
		opts       Options
		wantCached bool
		wantFrom   string
		wantLog    string
	}{
		{"kept, verified at download", true, Options{}, true, "ETag", "already in the cache, SHA-256 verified"},
		{"kept, not verified", false, Options{}, true, "", "already in the cache, as downloaded (not verified"},
		{"kept, digest matches", false, Options{SHA256: sha(model)}, true, "option", "already in the cache, SHA-256 verified"},
		{"digest differs: pulled again", false, Options{SHA256: strings.Repeat("ab", 32)}, false, "", "has SHA-256 " + sha(model) + ", not " + strings.Repeat("ab", 32) + ": downloading it again"},
		{"forced", true, Options{Force: true}, false, "ETag", "pulled m.gguf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelServer{body: model}
			if tt.etag {
				m.header = etag(sha(model))
			}
			url := serve(t, m) + "/m.gguf"
			dir := t.TempDir()
			if _, err := Pull(context.Background(), url, Options{Dir: dir}); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			tt.opts.Dir, tt.opts.Progress = dir, &log
			res, err := Pull(context.Background(), url, tt.opts)
			if tt.wantFrom == "" && tt.opts.SHA256 != "" { // the served model does not match
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("error %v, want %v after downloading again", err, ErrChecksum)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if res.Cached != tt.wantCached || res.DigestFrom != tt.wantFrom || res.SHA256 != sha(model) || res.Size != int64(len(model)) {
				t.Errorf("result %+v, want cached %v, digest from %q", res, tt.wantCached, tt.wantFrom)
			}
			if !strings.Contains(log.String(), tt.wantLog) {
				t.Errorf("progress %q does not mention %q", log.String(), tt.wantLog)
			}
			if reqs, _ := m.requests(); (len(reqs) == 1) != tt.wantCached {
				t.Errorf("%d requests, want %s", len(reqs), map[bool]string{true: "1", false: "2"}[tt.wantCached])
			}
		})
	}
}

// TestPullOldLayout: a file of the model's name at the top of the cache, as
// earlier versions kept models, is not used (it may come from anywhere),
// is left alone, and is mentioned.
func TestPullOldLayout(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	old := append([]byte("GGUF"), "an older model of unknown source"...)
	dir := t.TempDir()
	flat := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(flat, old, 0o644); err != nil {
		t.Fatal(err)
	}
	url := serve(t, &modelServer{body: model}) + "/m.gguf"
	var log bytes.Buffer
	got, err := Resolve(context.Background(), url, Options{Dir: dir, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, model) {
		t.Error("Resolve returned the flat-layout file, not the model of the reference")
	}
	if b, _ := os.ReadFile(flat); !bytes.Equal(b, old) {
		t.Error("the flat-layout file was changed")
	}
	if !strings.Contains(log.String(), "note: "+flat+" is in the cache's old flat layout") {
		t.Errorf("progress %q does not mention the old file", log.String())
	}
}

func TestPullBar(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	url := serve(t, &modelServer{body: model}) + "/a-rather-long-model-file-name-for-the-bar.gguf"
	var log bytes.Buffer
	if _, err := Pull(context.Background(), url, Options{Dir: t.TempDir(), Progress: &log, Bar: true}); err != nil {
		t.Fatal(err)
	}
	s := log.String()
	for _, want := range []string{"\r", "100% [" + strings.Repeat("=", barWidth) + "]", "…", "\x1b[K\n", "not verified"} {
		if !strings.Contains(s, want) {
			t.Errorf("progress %q does not contain %q", s, want)
		}
	}
}

func TestResolve(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	m := &modelServer{body: model, path: "/m.gguf"}
	base := serve(t, m)
	dir := t.TempDir()
	t.Setenv("NERSTREAM_MODEL_DIR", dir) // the default Dir

	for _, local := range []string{"/models/m.gguf", "m.gguf", "synth:tiny", ""} {
		got, err := Resolve(context.Background(), local, Options{})
		if err != nil || got != local {
			t.Errorf("Resolve(%q) = %q, %v; want it unchanged", local, got, err)
		}
	}
	ref := base + "/m.gguf"
	tests := []struct {
		name     string
		wantLog  string
		wantReqs int
	}{
		{"first use pulls", "pulling " + ref + " into " + dir + "\n", 1},
		{"then the cache answers", "", 1},
	}
	for _, tt := range tests {
		var log bytes.Buffer
		got, err := Resolve(context.Background(), ref, Options{Progress: &log})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != cachePath(t, dir, ref) {
			t.Errorf("%s: path %s", tt.name, got)
		}
		if !strings.HasPrefix(log.String(), tt.wantLog) || tt.wantLog == "" && log.Len() != 0 {
			t.Errorf("%s: log %q, want %q first", tt.name, log.String(), tt.wantLog)
		}
		if reqs, _ := m.requests(); len(reqs) != tt.wantReqs {
			t.Errorf("%s: %d requests, want %d", tt.name, len(reqs), tt.wantReqs)
		}
	}
	if _, err := Resolve(context.Background(), "hf://bad", Options{}); !errors.Is(err, ErrBadRef) {
		t.Errorf("bad reference: %v", err)
	}
	if _, err := Resolve(context.Background(), base+"/missing.gguf", Options{Progress: io.Discard}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing model: %v", err)
	}
}

// recorder serves model at /blob (recording the Authorization header of
// each request there) and redirects every other path to redirect.
type recorder struct {
	model    []byte
	redirect string // set once the servers exist
	mu       sync.Mutex
	auths    []string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/blob" {
		rc.mu.Lock()
		to := rc.redirect
		rc.mu.Unlock()
		http.Redirect(w, r, to, http.StatusFound)
		return
	}
	rc.mu.Lock()
	rc.auths = append(rc.auths, r.Header.Get("Authorization"))
	rc.mu.Unlock()
	w.Header().Set("Content-Length", strconv.Itoa(len(rc.model)))
	w.Write(rc.model)
}

func (rc *recorder) seen() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.auths...)
}

// TestPullTokenStaysWithItsOrigin is the regression test of issue 16's
// finding "HF_TOKEN follows a redirect to another port of the same host".
// Reproduction, before the fix: HF_ENDPOINT=http://127.0.0.1:P1, whose
// /resolve/ answer redirects to http://127.0.0.1:P2/blob (another server,
// another port); the request to P2 carried "Authorization: Bearer
// $HF_TOKEN", because net/http forwards the header when the host names
// match, whatever the port or the scheme. Now the header goes only to
// redirects at the first request's scheme, host and port, and never again
// once the chain has left it.
func TestPullTokenStaysWithItsOrigin(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	const token = "hf_s3cret"
	tests := []struct {
		name string
		// hop gives the front's redirect and the other server's, from the
		// front's, the other's and the TLS server's base URLs.
		hop       func(front, other, tlsURL string) (string, string)
		wantFront []string // what /blob saw on each server
		wantOther []string
		wantTLS   []string
	}{
		{"same origin keeps the token",
			func(front, other, tlsURL string) (string, string) { return front + "/blob", "" },
			[]string{"Bearer " + token}, nil, nil},
		{"another port of the same host",
			func(front, other, tlsURL string) (string, string) { return other + "/blob", "" },
			nil, []string{""}, nil},
		{"another port, then back to the first origin",
			func(front, other, tlsURL string) (string, string) { return other + "/away", front + "/blob" },
			[]string{""}, nil, nil},
		{"another scheme on the same host",
			func(front, other, tlsURL string) (string, string) { return tlsURL + "/blob", "" },
			nil, nil, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front, other, secure := &recorder{model: model}, &recorder{model: model}, &recorder{model: model}
			frontSrv := httptest.NewServer(front)
			defer frontSrv.Close()
			otherSrv := httptest.NewServer(other)
			defer otherSrv.Close()
			tlsSrv := httptest.NewTLSServer(secure)
			defer tlsSrv.Close()
			if !strings.HasPrefix(otherSrv.URL, "http://127.0.0.1:") || !strings.HasPrefix(tlsSrv.URL, "https://127.0.0.1:") {
				t.Fatalf("servers at %s, %s: want the same host as %s", otherSrv.URL, tlsSrv.URL, frontSrv.URL)
			}
			front.redirect, other.redirect = tt.hop(frontSrv.URL, otherSrv.URL, tlsSrv.URL)
			opts := Options{Dir: t.TempDir(), Endpoint: frontSrv.URL, Token: token, Client: tlsSrv.Client()}
			if _, err := Pull(context.Background(), "hf://o/r/m.gguf", opts); err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				name      string
				got, want []string
			}{{"the first server", front.seen(), tt.wantFront}, {"the other port", other.seen(), tt.wantOther}, {"the TLS server", secure.seen(), tt.wantTLS}} {
				if strings.Join(s.got, "|") != strings.Join(s.want, "|") || len(s.got) != len(s.want) {
					t.Errorf("%s got Authorization %q, want %q", s.name, s.got, s.want)
				}
			}
		})
	}
}

// TestPullMaxBytes is the regression test of issue 16's finding "model
// pull has no size limit". Reproduction, before the fix: a server that
// announces a Content-Length of 1 TiB, or streams without end and without
// a Content-Length, had its body written to the cache until the disk was
// full. Now a length over Options.MaxBytes is refused before the body is
// read, a body that grows past it is cut off there, and the partial file
// is deleted.
func TestPullMaxBytes(t *testing.T) {
	isolate(t)
	model := synthModel(t)
	// announces a huge body, sends its start and then nothing: reading
	// the body would stall, so ErrTooBig can only come from the header.
	announces := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(1<<40, 10))
		w.WriteHeader(http.StatusOK)
		w.Write(model[:1024])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	tests := []struct {
		name    string
		handler http.Handler
		part    []byte // a partial download to resume
		max     int64
		want    error
		mention string
	}{
		{"Content-Length over the limit", announces, nil, 1 << 20, ErrTooBig, "is 1.0 TiB"},
		{"no Content-Length, endless", &modelServer{endless: []byte(gguf.Magic)}, nil, 1 << 20, ErrTooBig, "grew past it"},
		{"Content-Length one byte over", &modelServer{body: model}, nil, int64(len(model)) - 1, ErrTooBig, "over the limit of"},
		{"resumed, total over the limit", &modelServer{body: model}, model[:1000], int64(len(model)) - 1, ErrTooBig, "over the limit of"},
		{"exactly the limit", &modelServer{body: model}, nil, int64(len(model)), nil, ""},
		{"resumed, exactly the limit", &modelServer{body: model}, model[:1000], int64(len(model)), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, tt.handler) + "/m.gguf"
			dir := t.TempDir()
			if tt.part != nil {
				part := cachePath(t, dir, url) + ".part"
				os.MkdirAll(filepath.Dir(part), 0o755)
				if err := os.WriteFile(part, tt.part, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := Pull(ctx, url, Options{Dir: dir, MaxBytes: tt.max, StallTimeout: 20 * time.Second})
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, model) {
					t.Error("the file differs from the served one")
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %v, want %v mentioning %q", err, tt.want, tt.mention)
			}
			filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if path != dir {
					t.Errorf("the cache holds %s after a refusal", path)
				}
				return nil
			})
		})
	}
}

// TestPullRedactsAddress is a regression test of issue 16's finding that
// presigned addresses were shown whole. Reproduction, before the fix:
// `nerstream model pull 'https://bucket/m.gguf?X-Amz-Signature=…'` (or run
// with it as model.path) against a server that fails printed the signature
// in the error, and Resolve's "pulling …" line, which run writes to its
// log stream, repeated it. Now every line shows the address with its query
// values REDACTED.
func TestPullRedactsAddress(t *testing.T) {
	isolate(t)
	const query = "?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET"
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	redirectsToClosed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, closedURL+"/blob"+query, http.StatusFound)
	})
	tests := []struct {
		name    string
		handler http.Handler
		max     int64
		want    error
	}{
		{"404", &modelServer{status: http.StatusNotFound}, 0, ErrNotFound},
		{"403", &modelServer{status: http.StatusForbidden}, 0, ErrAccessDenied},
		{"500", &modelServer{status: http.StatusInternalServerError}, 0, nil},
		{"not GGUF", &modelServer{body: []byte("GG")}, 0, ErrNotGGUF},
		{"checksum", &modelServer{body: synthModel(t), header: etag(strings.Repeat("ab", 32))}, 0, ErrChecksum},
		{"too big", &modelServer{body: synthModel(t)}, 1000, ErrTooBig},
		{"redirect to a closed port", redirectsToClosed, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := serve(t, tt.handler) + "/m.gguf" + query
			var log bytes.Buffer
			_, err := Resolve(context.Background(), ref, Options{Dir: t.TempDir(), Progress: &log, MaxBytes: tt.max})
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			for _, s := range []string{err.Error(), log.String()} {
				if strings.Contains(s, "SECRET") {
					t.Errorf("shows the signature: %q", s)
				}
			}
			if !strings.Contains(log.String()+err.Error(), "X-Amz-Signature=REDACTED") {
				t.Errorf("progress %q and error %q do not show the address", log.String(), err)
			}
		})
	}
	// A closed port at the first request.
	_, err := Pull(context.Background(), closedURL+"/m.gguf"+query, Options{Dir: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %v", err)
	}
}
