package hub

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in       string
		want     Ref // Raw is filled in from in
		fileName string
	}{
		{"hf://owner/repo/model.Q4_K_M.gguf", Ref{HF: true, Owner: "owner", Repo: "repo", File: "model.Q4_K_M.gguf", Revision: "main"}, "model.Q4_K_M.gguf"},
		{"HF://Owner.x/repo-GGUF/sub/dir/m.GGUF@v1.0", Ref{HF: true, Owner: "Owner.x", Repo: "repo-GGUF", File: "sub/dir/m.GGUF", Revision: "v1.0"}, "m.GGUF"},
		{"hf://o/r/m.gguf@refs/pr/1", Ref{HF: true, Owner: "o", Repo: "r", File: "m.gguf", Revision: "refs/pr/1"}, "m.gguf"},
		{DefaultModelRef, Ref{HF: true, Owner: "mradermacher", Repo: "UniNER-7B-type-GGUF", File: DefaultModelFile, Revision: "main"}, DefaultModelFile},
		{"https://example.com/models/m.gguf?download=1", Ref{URL: "https://example.com/models/m.gguf?download=1"}, "m.gguf"},
		{"https://example.com/a%20b.gguf", Ref{URL: "https://example.com/a%20b.gguf"}, "a b.gguf"},
		{"http://127.0.0.1:8080/m.gguf", Ref{URL: "http://127.0.0.1:8080/m.gguf"}, "m.gguf"},
		{"http://localhost/m.gguf", Ref{URL: "http://localhost/m.gguf"}, "m.gguf"},
		{"http://[::1]:9/m.gguf", Ref{URL: "http://[::1]:9/m.gguf"}, "m.gguf"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Raw = tt.in
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if n := got.FileName(); n != tt.fileName {
				t.Errorf("file name %q, want %q", n, tt.fileName)
			}
			if !IsRef(tt.in) {
				t.Errorf("IsRef is false")
			}
		})
	}
}

func TestParseRefErrors(t *testing.T) {
	tests := []struct{ in, mention string }{
		{"", "want hf://"},
		{"model.gguf", "want hf://"},
		{"ftp://host/m.gguf", "want hf://"},
		{"hf://", "want hf://"},
		{"hf://owner/m.gguf", "want hf://"},
		{"hf://owner/repo/", "bad file path"},
		{"hf://owner/repo/m.bin", "does not end in .gguf"},
		{"hf://owner/repo/.gguf", "does not end in .gguf"},
		{"hf://owner/repo/m.gguf@", "bad revision"},
		{"hf://owner/repo/../m.gguf", "bad file path"},
		{"hf://own er/repo/m.gguf", "bad owner"},
		{"hf://owner/re:po/m.gguf", "bad repository"},
		{"hf://owner/repo/m.gguf\n", "control characters"},
		{"http://example.com/m.gguf", "loopback"},
		{"http://10.0.0.1/m.gguf", "loopback"},
		{"https:///m.gguf", "no host"},
		{"https://example.com/", "does not end in .gguf"},
		{"https://example.com/model", "does not end in .gguf"},
		{"https://user:secret@example.com/m.gguf", "credentials"},
		{"hf://owner/repo/m.gguf@.", "bad revision"},
		// A refused presigned address: its signature is not repeated.
		{"https://bucket.example/m.bin?X-Amz-Signature=secret", "does not end in .gguf"},
		{"http://10.0.0.1/m.gguf?sig=secret", "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseRef(tt.in)
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("error %v, want ErrBadRef", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks: %q", err)
			}
		})
	}
}

func TestIsRef(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"hf://o/r/m.gguf", true},
		{"https://h/m.gguf", true},
		{"HTTP://localhost/m.gguf", true},
		{"/models/m.gguf", false},
		{"m.gguf", false},
		{"synth:tiny", false},
		{"hf:/o/r/m.gguf", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsRef(tt.in); got != tt.want {
			t.Errorf("IsRef(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDownloadURL(t *testing.T) {
	tests := []struct{ ref, endpoint, want string }{
		{"hf://o/r/m.gguf", DefaultEndpoint, "https://huggingface.co/o/r/resolve/main/m.gguf"},
		{"hf://o/r/m.gguf@abc123", "https://mirror.example/hf/", "https://mirror.example/hf/o/r/resolve/abc123/m.gguf"},
		{"hf://o/r/m.gguf@refs/pr/1", DefaultEndpoint, "https://huggingface.co/o/r/resolve/refs%2Fpr%2F1/m.gguf"},
		{"hf://o/r/q 4/m#1.gguf", DefaultEndpoint, "https://huggingface.co/o/r/resolve/main/q%204/m%231.gguf"},
		{DefaultModelRef, DefaultEndpoint, "https://huggingface.co/mradermacher/UniNER-7B-type-GGUF/resolve/main/UniNER-7B-type.Q4_K_M.gguf"},
		{"https://example.com/x/m.gguf", "https://ignored.example", "https://example.com/x/m.gguf"},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.DownloadURL(tt.endpoint); got != tt.want {
			t.Errorf("%s at %s: got %s, want %s", tt.ref, tt.endpoint, got, tt.want)
		}
	}
}

func TestRefString(t *testing.T) {
	for _, in := range []string{"hf://o/r/m.gguf", "hf://o/r/a/m.gguf@v2", "https://example.com/m.gguf"} {
		r, err := ParseRef(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != in {
			t.Errorf("String() = %q, want %q", r.String(), in)
		}
	}
}

func TestRefRedactedAndSource(t *testing.T) {
	tests := []struct{ in, redacted, source string }{
		{"hf://o/r/m.gguf", "hf://o/r/m.gguf", "hf://o/r/m.gguf@main"},
		{"hf://o/r/a/m.gguf@refs/pr/1", "hf://o/r/a/m.gguf@refs/pr/1", "hf://o/r/a/m.gguf@refs/pr/1"},
		{"https://example.com/m.gguf", "https://example.com/m.gguf", "https://example.com/m.gguf"},
		{"HTTPS://Bucket.Example:8443/p/m.gguf?X-Amz-Signature=abc&X-Amz-Date=1#f",
			"https://Bucket.Example:8443/p/m.gguf?X-Amz-Signature=REDACTED&X-Amz-Date=REDACTED#REDACTED", "https://bucket.example:8443/p/m.gguf"},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Redacted(); got != tt.redacted {
			t.Errorf("%s: Redacted = %q, want %q", tt.in, got, tt.redacted)
		}
		if got := r.Source(); got != tt.source {
			t.Errorf("%s: Source = %q, want %q", tt.in, got, tt.source)
		}
	}
}

// TestCachePath: every source has a path of its own; a presigned address
// signed again keeps it.
func TestCachePath(t *testing.T) {
	refs := []string{
		"hf://o/r/" + DefaultModelFile,
		"hf://o/r/" + DefaultModelFile + "@v2",
		"hf://o/r/" + DefaultModelFile + "@refs/pr/1",
		"hf://o/r/refs/pr/1/" + DefaultModelFile, // a folder, not a revision
		"hf://o/r2/" + DefaultModelFile,
		"hf://o2/r/" + DefaultModelFile,
		"hf://o/r/sub/" + DefaultModelFile,
		"hf://o/r/sub%2F" + DefaultModelFile, // a file name with a '%' in it
		"https://example.com/" + DefaultModelFile,
		"https://example.com:8443/" + DefaultModelFile,
		"https://example.com/other/" + DefaultModelFile,
		"https://example.net/" + DefaultModelFile,
		"http://127.0.0.1:8080/" + DefaultModelFile,
		"http://127.0.0.1:8081/" + DefaultModelFile,
	}
	seen := map[string]string{}
	for _, in := range refs {
		r, err := ParseRef(in)
		if err != nil {
			t.Fatal(err)
		}
		p := r.CachePath("/cache")
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share %s", in, other, p)
		}
		seen[p] = in
		if !strings.HasPrefix(p, "/cache/") || filepath.Clean(p) != p {
			t.Errorf("%s: path %s is not a clean path under the cache", in, p)
		}
	}
	a, _ := ParseRef("https://b.example/m.gguf?X-Amz-Signature=one")
	b, _ := ParseRef("https://b.example/m.gguf?X-Amz-Signature=two")
	if a.CachePath("/c") != b.CachePath("/c") {
		t.Errorf("a presigned address signed again has another path: %s, %s", a.CachePath("/c"), b.CachePath("/c"))
	}
	if want := filepath.Join("/c", "hf", "mradermacher", "UniNER-7B-type-GGUF", "main", DefaultModelFile); mustRef(t, DefaultModelRef).CachePath("/c") != want {
		t.Errorf("the default model is at %s, want %s", mustRef(t, DefaultModelRef).CachePath("/c"), want)
	}
}

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCacheDir(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name                  string
		modelDir, nsHome, xdg string
		want                  string
	}{
		{"model dir wins", "/m", "/h", "/x", "/m"},
		{"nerstream home", "", "/h", "/x", filepath.Join("/h", "models")},
		{"xdg", "", "", "/x", filepath.Join("/x", "nerstream", "models")},
		{"relative xdg ignored", "", "", "rel", filepath.Join(home, ".cache", "nerstream", "models")},
		{"home cache", "", "", "", filepath.Join(home, ".cache", "nerstream", "models")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("NERSTREAM_MODEL_DIR", tt.modelDir)
			t.Setenv("NERSTREAM_HOME", tt.nsHome)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			got, err := CacheDir()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in          string
		first, size int64
		ok          bool
	}{
		{"bytes 100-999/1000", 100, 1000, true},
		{"bytes 0-0/1", 0, 1, true},
		{"bytes 100-999/*", 100, -1, true},
		{"bytes */1000", -1, 1000, true},
		{"bytes 100-1000/1000", 0, 0, false},
		{"bytes 5-4/10", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"bytes 1-2", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		first, size, ok := parseContentRange(tt.in)
		if ok != tt.ok || ok && (first != tt.first || size != tt.size) {
			t.Errorf("%q: got %d %d %v, want %d %d %v", tt.in, first, size, ok, tt.first, tt.size, tt.ok)
		}
	}
}
