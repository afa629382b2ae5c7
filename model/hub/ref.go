package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/nerstream/nerstream/internal/redact"
)

// DefaultModelRef is the default model: UniNER-7B-type quantised to
// Q4_K_M (about 4 GB), CC BY-NC 4.0. Its file name is [DefaultModelFile].
// Unverified: the repository could not be reached from where this was
// written.
const DefaultModelRef = "hf://mradermacher/UniNER-7B-type-GGUF/" + DefaultModelFile

// DefaultModelFile is the file name of [DefaultModelRef] in the cache.
const DefaultModelFile = "UniNER-7B-type.Q4_K_M.gguf"

// DefaultEndpoint is the Hugging Face endpoint used when HF_ENDPOINT is not
// set.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is the revision of an hf:// reference without @REVISION.
const DefaultRevision = "main"

// Ref is a parsed model reference: hf://OWNER/REPO/FILE.gguf[@REVISION] or
// an https:// (loopback http://) address.
type Ref struct {
	// Raw is the reference as given.
	Raw string
	// HF is true for an hf:// reference, whose parts are Owner, Repo, File
	// (a path inside the repository) and Revision (DefaultRevision when
	// the reference names none).
	HF                          bool
	Owner, Repo, File, Revision string
	// URL is the address of a plain https:// or http:// reference.
	URL string
}

// IsRef reports whether s is meant as a model reference rather than a
// local path: it starts with hf://, https:// or http:// (in any case).
func IsRef(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "hf://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

// ParseRef parses a model reference. Its errors wrap [ErrBadRef].
func ParseRef(s string) (Ref, error) {
	bad := func(format string, args ...any) (Ref, error) {
		return Ref{}, fmt.Errorf("%w %q: %s", ErrBadRef, redact.String(s), fmt.Sprintf(format, args...))
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return bad("control characters")
	}
	l := strings.ToLower(s)
	switch {
	case strings.HasPrefix(l, "hf://"):
		return parseHF(s, s[len("hf://"):], bad)
	case strings.HasPrefix(l, "https://"), strings.HasPrefix(l, "http://"):
		u, err := url.Parse(s)
		if err != nil {
			return bad("%v", unwrapURLError(err))
		}
		if err := checkURL(u); err != nil {
			return bad("%v", err)
		}
		if u.User != nil {
			return bad("credentials in the address; for Hugging Face use an hf:// reference and HF_TOKEN")
		}
		name := path.Base(u.Path)
		if err := checkFileName(name); err != nil {
			return bad("%v", err)
		}
		return Ref{Raw: s, URL: u.String()}, nil
	}
	return bad("want hf://OWNER/REPO/FILE.gguf[@REVISION] or https://HOST/PATH/FILE.gguf")
}

func parseHF(raw, rest string, bad func(string, ...any) (Ref, error)) (Ref, error) {
	const want = "want hf://OWNER/REPO/FILE.gguf[@REVISION]"
	r := Ref{Raw: raw, HF: true, Revision: DefaultRevision}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		r.Revision, rest = rest[i+1:], rest[:i]
		if r.Revision == "" || r.Revision == "." || strings.ContainsAny(r.Revision, " \\") || strings.Contains(r.Revision, "..") {
			return bad("bad revision %q; %s", r.Revision, want)
		}
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return bad(want)
	}
	r.Owner, r.Repo, r.File = parts[0], parts[1], parts[2]
	for _, p := range []struct{ what, v string }{{"owner", r.Owner}, {"repository", r.Repo}} {
		if !repoName(p.v) {
			return bad("bad %s %q (letters, digits, '.', '_' and '-'); %s", p.what, p.v, want)
		}
	}
	for seg := range strings.SplitSeq(r.File, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, `\`) {
			return bad("bad file path %q; %s", r.File, want)
		}
	}
	if err := checkFileName(path.Base(r.File)); err != nil {
		return bad("%v; %s", err, want)
	}
	return r, nil
}

// repoName reports whether s is a plausible Hugging Face user,
// organisation or repository name.
func repoName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkFileName checks the name a model gets in the cache.
func checkFileName(name string) error {
	if len(name) <= len(".gguf") || !strings.EqualFold(path.Ext(name), ".gguf") {
		return fmt.Errorf("the file name %q does not end in .gguf", name)
	}
	if strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\:`) {
		return fmt.Errorf("unusable file name %q", name)
	}
	return nil
}

// checkURL allows https, and http for loopback hosts only.
func checkURL(u *url.URL) error {
	if u.Host == "" {
		return fmt.Errorf("no host in %q", redact.URL(u))
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("plain http is allowed for loopback hosts only (%s is not one): use https", u.Hostname())
	}
	return fmt.Errorf("scheme %q: want https", u.Scheme)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FileName is the name the model has in the cache: the last element of the
// file path or of the address's path.
func (r Ref) FileName() string {
	if r.HF {
		return path.Base(r.File)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// DownloadURL is the address the model is fetched from. For an hf://
// reference it is {endpoint}/OWNER/REPO/resolve/REVISION/FILE, with the
// endpoint's trailing slashes dropped, the revision escaped as one path
// segment (so refs/pr/1 becomes refs%2Fpr%2F1) and each element of FILE
// escaped; for a plain address it is the address, and endpoint is unused.
func (r Ref) DownloadURL(endpoint string) string {
	if !r.HF {
		return r.URL
	}
	segs := strings.Split(r.File, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(endpoint, "/") + "/" + r.Owner + "/" + r.Repo + "/resolve/" +
		url.PathEscape(r.Revision) + "/" + strings.Join(segs, "/")
}

// String is the reference in its canonical form. For a plain address it
// is the address, query included: use [Ref.Redacted] to show it.
func (r Ref) String() string {
	if !r.HF {
		return r.URL
	}
	s := "hf://" + r.Owner + "/" + r.Repo + "/" + r.File
	if r.Revision != DefaultRevision {
		s += "@" + r.Revision
	}
	return s
}

// Redacted is the reference fit to show in logs, errors and readiness: a
// plain address without the values of its query (a presigned address's
// signature) or its fragment (see internal/redact). An hf:// reference
// holds no secret and is shown as [Ref.String].
func (r Ref) Redacted() string {
	if !r.HF {
		return redact.String(r.URL)
	}
	return r.String()
}

// Source is what the cache keys a model by, the same for every reference
// to the same file: hf://OWNER/REPO/FILE@REVISION (the revision always
// written), or the address without its query and fragment, its scheme and
// host in lower case. Two references with the same Source are one model;
// a presigned address keeps its Source when it is signed again.
func (r Ref) Source() string {
	if r.HF {
		return "hf://" + r.Owner + "/" + r.Repo + "/" + r.File + "@" + r.Revision
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// CachePath is where the model of r lies in the cache folder dir (see the
// package doc, "The cache"):
//
//	hf://OWNER/REPO/FILE@REV   dir/hf/OWNER/REPO/REV/FILE
//	https://HOST/…/NAME.gguf   dir/url/HOST/KEY/NAME.gguf
//
// where REV and FILE are escaped as one path element each (refs/pr/1 is
// refs%2Fpr%2F1, sub/m.gguf is sub%2Fm.gguf), and KEY is the first 32 hex
// digits of the SHA-256 of [Ref.Source].
func (r Ref) CachePath(dir string) string {
	if r.HF {
		return filepath.Join(dir, "hf", r.Owner, r.Repo, url.PathEscape(r.Revision), url.PathEscape(r.File))
	}
	src := r.Source()
	key := sha256.Sum256([]byte(src))
	host := ""
	if u, err := url.Parse(src); err == nil {
		host = strings.NewReplacer(":", "_", "[", "", "]", "").Replace(u.Host)
	}
	return filepath.Join(dir, "url", url.PathEscape(host), hex.EncodeToString(key[:16]), r.FileName())
}
