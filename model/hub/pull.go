package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nerstream/nerstream/internal/redact"
	"github.com/nerstream/nerstream/model/gguf"
)

// Options say how [Pull] and [Resolve] fetch a model. The zero value is
// the default everywhere.
type Options struct {
	// Dir is the cache folder, created when missing. Default: [CacheDir].
	Dir string
	// SHA256 is the expected SHA-256 of the file, 64 hex digits in either
	// case. It wins over the server's digest. Default "": the server's.
	SHA256 string
	// RequireSHA256 refuses a download with no digest to check against
	// (neither SHA256 nor the server's), before any of it is stored.
	// Default false: the file is kept and reported "not verified".
	RequireSHA256 bool
	// Force makes Pull download the model even when the cache holds it
	// (the cached file is replaced only once the new one is complete).
	// Default false: the cached model is returned once Pull has hashed it
	// in full and found the digest its manifest recorded (and SHA256, when
	// that is given); a mismatch, or no manifest, downloads it again.
	// Resolve ignores Force.
	Force bool
	// MaxBytes is the largest model a download may hold. A response whose
	// Content-Length (or Content-Range total) is larger is refused before
	// its body is read; a body that grows past it (a server that lies about
	// its length, or gives none) is cut off there. Either way the partial
	// download is deleted and the error wraps [ErrTooBig]. Default 0:
	// [DefaultMaxBytes].
	MaxBytes int64
	// Endpoint is the Hugging Face endpoint of hf:// references: https, or
	// http for a loopback host. Default: $HF_ENDPOINT, else
	// [DefaultEndpoint].
	Endpoint string
	// Token is the Hugging Face access token, sent as "Authorization:
	// Bearer TOKEN" with hf:// references only. Default: $HF_TOKEN.
	Token string
	// Client makes the requests; its CheckRedirect is kept but wrapped (to
	// read the digest headers of redirects, to refuse redirects to plain
	// http, and to keep Token from any other origin). Default: a client
	// with http.DefaultTransport and no overall time limit (see
	// StallTimeout).
	Client *http.Client
	// Attempts is how many times one Pull tries a download that breaks off
	// after some data arrived, resuming each time. Failures before any
	// data arrives are not retried. Default 5.
	Attempts int
	// StallTimeout gives up on a response when no data arrives for this
	// long; it counts as a break (see Attempts). Default 1 minute.
	StallTimeout time.Duration
	// Progress receives what a person watching wants to see: Resolve's
	// "pulling REF into DIR" line, the bar, the closing line and the
	// "not verified" notice. Default nil: nothing.
	Progress io.Writer
	// Bar draws a progress bar on Progress, redrawn in place with carriage
	// returns, for a terminal (see [IsTerminal]). Default false: Progress
	// gets one line at the end, on success, and nothing else from Pull.
	Bar bool
}

// Result describes a pulled model.
type Result struct {
	// Path is the model's file in the cache.
	Path string
	// Size is its size in bytes.
	Size int64
	// SHA256 is its SHA-256 in lower-case hex: computed while it was
	// downloaded, or the one its manifest records for a cached model.
	SHA256 string
	// Verified is true when SHA256 matched an expected digest (for a
	// cached model: when it did at download, or matches the SHA256
	// option).
	Verified bool
	// DigestFrom says where the expected digest came from: "option" (the
	// SHA256 option), "X-Linked-Etag" or "ETag"; "" when there was none.
	DigestFrom string
	// Cached is true when the file was already in the cache and nothing
	// was downloaded.
	Cached bool
}

// DefaultMaxBytes is the default [Options.MaxBytes], 32 GiB. The largest
// file of a 7B model is its F32 conversion, 7 billion weights at four
// bytes, about 25 GiB (UniNER-7B at Q4_K_M is 3.8 GiB, at Q8_0 6.7 GiB, at
// F16 12.6 GiB); 32 GiB holds it with room to spare, and stops a server
// that sends without end long before it fills a disk of models.
const DefaultMaxBytes int64 = 32 << 30

const (
	defaultAttempts     = 5
	defaultStallTimeout = time.Minute
	copyBuffer          = 1 << 20
	userAgent           = "nerstream-model-pull"
	digestFromOption    = "option"
)

// Pull downloads the model of a reference (see [ParseRef]) into the cache
// and returns where it is. See the package documentation for resuming,
// verification and the cache layout. A model already in the cache is
// hashed in full and checked against its manifest (unless
// [Options.Force]). A cancelled ctx leaves the partial download for the
// next Pull to resume.
func Pull(ctx context.Context, ref string, opts Options) (Result, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return Result{}, err
	}
	p, err := newPuller(r, opts)
	if err != nil {
		return Result{}, err
	}
	return p.pull(ctx, true)
}

// Resolve turns a model path or reference into a local file. A local path
// (anything [IsRef] says is not a reference) is returned unchanged, without
// looking at it. For a reference, the cached model is returned when the
// cache holds it and it passes the load-time check (its size and
// modification time are those its manifest recorded, else it is hashed
// again: see the package doc); otherwise Resolve writes "pulling REF into
// DIR" to opts.Progress, the reference redacted, and pulls it first, as
// [Pull] does.
func Resolve(ctx context.Context, pathOrRef string, opts Options) (string, error) {
	if !IsRef(pathOrRef) {
		return pathOrRef, nil
	}
	r, err := ParseRef(pathOrRef)
	if err != nil {
		return "", err
	}
	opts.Force = false
	p, err := newPuller(r, opts)
	if err != nil {
		return "", err
	}
	if res, ok, err := p.cached(false); err != nil || ok {
		return res.Path, err
	}
	fmt.Fprintf(p.opts.Progress, "pulling %s into %s\n", r.Redacted(), p.opts.Dir)
	res, err := p.download(ctx)
	if err != nil {
		return "", err
	}
	return res.Path, nil
}

// puller is one Pull: the reference and the options with their defaults.
type puller struct {
	ref        Ref
	opts       Options
	src        string // the download address
	shown      string // src fit to show (see internal/redact)
	dest, part string
	manifest   string
	bar        *bar
}

func newPuller(r Ref, opts Options) (*puller, error) {
	if opts.Dir == "" {
		d, err := CacheDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	if opts.SHA256 != "" {
		if !isHex64(opts.SHA256) {
			return nil, fmt.Errorf("%w %q: want 64 hex digits", ErrBadDigest, opts.SHA256)
		}
		opts.SHA256 = strings.ToLower(opts.SHA256)
	}
	if r.HF {
		if opts.Endpoint == "" {
			opts.Endpoint = os.Getenv("HF_ENDPOINT")
		}
		if opts.Endpoint == "" {
			opts.Endpoint = DefaultEndpoint
		}
		u, err := url.Parse(opts.Endpoint)
		if err == nil {
			err = checkURL(u)
		}
		if err != nil {
			return nil, fmt.Errorf("%w (HF_ENDPOINT) %q: %v", ErrBadEndpoint, redact.String(opts.Endpoint), redact.Error(unwrapURLError(err)))
		}
		if opts.Token == "" {
			opts.Token = os.Getenv("HF_TOKEN")
		}
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = defaultAttempts
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = defaultStallTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	dest := r.CachePath(opts.Dir)
	src := r.DownloadURL(opts.Endpoint)
	return &puller{ref: r, opts: opts, src: src, shown: redact.String(src), dest: dest, part: dest + ".part", manifest: dest + manifestSuffix}, nil
}

// pull returns the cached model when there is one (hashed in full when
// full), else downloads it.
func (p *puller) pull(ctx context.Context, full bool) (Result, error) {
	if !p.opts.Force {
		if res, ok, err := p.cached(full); err != nil || ok {
			return res, err
		}
	}
	return p.download(ctx)
}

// download downloads the model into the cache, resuming within
// Options.Attempts.
func (p *puller) download(ctx context.Context) (Result, error) {
	if err := os.MkdirAll(filepath.Dir(p.dest), 0o755); err != nil {
		return Result{}, fmt.Errorf("creating the model cache: %w", err)
	}
	p.noteOldLayout()
	start := time.Now()
	defer p.dropEmptyPart()
	for attempt := 1; ; attempt++ {
		res, retry, err := p.attempt(ctx)
		if err == nil {
			p.bar.end()
			p.report(res, time.Since(start))
			return res, nil
		}
		if !retry || attempt >= p.opts.Attempts || ctx.Err() != nil {
			p.bar.end()
			return Result{}, err
		}
	}
}

// cached returns the model in the cache, if it is there, is what its
// manifest says it is (see manifest.check; full hashes it whatever its
// size and time), and (when a digest is given) has that digest. A model
// that fails these is reported on Progress and downloaded again.
func (p *puller) cached(full bool) (Result, bool, error) {
	fi, err := os.Stat(p.dest)
	if err != nil {
		return Result{}, false, nil
	}
	if !fi.Mode().IsRegular() {
		return Result{}, false, fmt.Errorf("%s is in the way: not a regular file", p.dest)
	}
	name := p.ref.FileName()
	again := func(format string, args ...any) (Result, bool, error) {
		fmt.Fprintf(p.opts.Progress, "the cached %s %s: downloading it again\n", name, fmt.Sprintf(format, args...))
		return Result{}, false, nil
	}
	m, err := readManifest(p.manifest)
	switch {
	case err != nil:
		return again("has no readable manifest (%v)", err)
	case m.Source != p.ref.Source():
		return again("was pulled from %s, not %s", redact.String(m.Source), p.ref.Source())
	case p.opts.SHA256 != "" && m.SHA256 != p.opts.SHA256:
		return again("has SHA-256 %s, not %s", m.SHA256, p.opts.SHA256)
	}
	if err := m.check(p.dest, p.manifest, fi, full); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return again("is corrupted (%v)", err)
		}
		return Result{}, false, err
	}
	res := Result{Path: p.dest, Size: m.Size, SHA256: m.SHA256, Verified: m.Verified, DigestFrom: m.DigestFrom, Cached: true}
	if p.opts.SHA256 != "" {
		res.Verified, res.DigestFrom = true, digestFromOption
	}
	switch {
	case !full:
		// Resolve: the file is about to be loaded; say nothing.
	case res.Verified:
		fmt.Fprintf(p.opts.Progress, "%s is already in the cache, SHA-256 verified\n", name)
	default:
		fmt.Fprintf(p.opts.Progress, "%s is already in the cache, as downloaded (not verified: the server gave no SHA-256)\n", name)
	}
	return res, true, nil
}

// noteOldLayout says, before a download, that the cache holds a model of
// the same name in the flat layout of earlier versions, which is not used.
func (p *puller) noteOldLayout() {
	old := filepath.Join(p.opts.Dir, p.ref.FileName())
	if fi, err := os.Stat(old); err == nil && fi.Mode().IsRegular() && old != p.dest {
		fmt.Fprintf(p.opts.Progress, "note: %s is in the cache's old flat layout, which did not record where a model came from; it is not used (delete it, or give its path as the model)\n", old)
	}
}

func (p *puller) report(res Result, took time.Duration) {
	verdict := "SHA-256 verified"
	if !res.Verified {
		verdict = "not verified: the server gave no SHA-256"
	}
	fmt.Fprintf(p.opts.Progress, "pulled %s: %s in %s; %s\n", p.ref.FileName(), humanBytes(float64(res.Size)), took.Round(100*time.Millisecond), verdict)
}

// dropEmptyPart removes a partial download that holds nothing, and then
// the folders of the cache that a failed first download left empty.
func (p *puller) dropEmptyPart() {
	if fi, err := os.Stat(p.part); err == nil && fi.Size() == 0 {
		os.Remove(p.part)
	}
	base := filepath.Clean(p.opts.Dir)
	for dir := filepath.Dir(p.dest); dir != base && dir != "." && len(dir) > len(base); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone)
			return
		}
	}
}

// attempt makes one request, resuming the partial download when there is
// one. retry says whether another attempt may do better (the download
// broke off after data arrived, or must start over).
func (p *puller) attempt(ctx context.Context) (res Result, retry bool, err error) {
	f, err := os.OpenFile(p.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return res, false, fmt.Errorf("opening the partial download: %w", err)
	}
	defer f.Close()
	d := &download{f: f, h: sha256.New(), max: p.opts.MaxBytes}
	if err := d.resume(); err != nil {
		return res, false, fmt.Errorf("reading the partial download %s: %w", p.part, err)
	}
	offset := d.n

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.opts.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodGet, p.src, nil)
	if err != nil {
		return res, false, fmt.Errorf("fetching %s: %w", p.shown, redact.Error(err))
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity")
	if p.ref.HF && p.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	var chain []http.Header
	resp, err := p.client(&chain).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return res, false, p.interrupted(ctx, offset, -1)
		}
		if c := context.Cause(actx); errors.Is(c, errStalled) {
			err = c
		}
		// The *url.Error's own text repeats the address (the last
		// redirect's, query and all): drop it, and hide any address
		// that the error inside it names.
		return res, false, fmt.Errorf("fetching %s: %w", p.shown, redact.Error(unwrapURLError(err)))
	}
	defer resp.Body.Close()
	headers := append(chain, resp.Header)

	total := int64(-1)
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		if offset > 0 { // the server ignored the range: start over
			if err := d.reset(); err != nil {
				return res, false, fmt.Errorf("restarting the partial download: %w", err)
			}
			offset = 0
		}
		total = resp.ContentLength
	case code == http.StatusPartialContent && offset > 0:
		first, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != offset {
			if err := d.reset(); err != nil {
				return res, false, fmt.Errorf("restarting the partial download: %w", err)
			}
			return res, true, fmt.Errorf("fetching %s: asked for bytes from %d, got Content-Range %q", p.shown, offset, resp.Header.Get("Content-Range"))
		}
		total = size
	case code == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		if _, size, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && size == offset && size <= p.opts.MaxBytes {
			// The partial download is the whole file.
			want, from := p.digest(headers)
			if want == "" && p.opts.RequireSHA256 {
				return res, false, p.noDigest()
			}
			return p.finish(d, want, from)
		}
		if err := d.reset(); err != nil {
			return res, false, fmt.Errorf("restarting the partial download: %w", err)
		}
		return res, true, fmt.Errorf("fetching %s: the server refused to resume at byte %d (HTTP 416)", p.shown, offset)
	case code == http.StatusNotFound:
		return res, false, fmt.Errorf("%w: %s", ErrNotFound, p.shown)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return res, false, p.accessDenied(code)
	default:
		return res, false, fmt.Errorf("HTTP %s: %s", resp.Status, p.shown)
	}
	if total > p.opts.MaxBytes {
		// Refused before the body is read.
		d.discard(p.part)
		return res, false, p.tooBig(fmt.Sprintf("is %s (%d bytes)", humanBytes(float64(total)), total))
	}

	want, from := p.digest(headers)
	if want == "" && p.opts.RequireSHA256 {
		return res, false, p.noDigest()
	}
	if p.opts.Bar {
		if p.bar == nil {
			p.bar = newBar(p.opts.Progress, p.ref.FileName())
		}
		p.bar.restart(offset, total)
		d.bar = p.bar
	}
	d.onWrite = func() { stall.Reset(p.opts.StallTimeout) }
	_, err = io.CopyBuffer(d, resp.Body, make([]byte, copyBuffer))
	switch {
	case err == nil && total >= 0 && d.n != total:
		err = io.ErrUnexpectedEOF
	case err == nil:
	case d.notGGUF != nil:
		d.discard(p.part)
		return res, false, d.notGGUF
	case d.tooBig:
		d.discard(p.part)
		return res, false, p.tooBig("grew past it while it was read")
	case d.writeErr != nil:
		return res, false, fmt.Errorf("writing %s: %w", p.part, d.writeErr)
	case ctx.Err() != nil:
		return res, false, p.interrupted(ctx, d.n, total)
	}
	if err != nil {
		if c := context.Cause(actx); errors.Is(c, errStalled) {
			err = c
		}
		return res, d.n > offset, fmt.Errorf("the download of %s broke off at %s: %w", p.shown, fraction(d.n, total), redact.Error(unwrapURLError(err)))
	}
	return p.finish(d, want, from)
}

// errStalled cancels a response that sent nothing for StallTimeout.
const errStalled Error = "no data arrived for too long"

// errTooBig stops the copy of a body that grows past Options.MaxBytes.
const errTooBig Error = "over the size limit"

// finish checks a complete download, records its manifest and moves it
// into place. The manifest is written first: a crash between the two
// leaves a complete .part file, which the next pull finds whole (HTTP 416)
// and finishes again, never a model without its manifest.
func (p *puller) finish(d *download, want, from string) (Result, bool, error) {
	if d.n < int64(len(gguf.Magic)) {
		d.discard(p.part)
		return Result{}, false, fmt.Errorf("%w: %s has %d bytes", ErrNotGGUF, p.shown, d.n)
	}
	got := hex.EncodeToString(d.h.Sum(nil))
	if want != "" && got != want {
		d.discard(p.part)
		return Result{}, false, fmt.Errorf("%w: got %s, want %s (%s); the download was deleted", ErrChecksum, got, want, describeFrom(from))
	}
	if err := d.f.Sync(); err != nil {
		return Result{}, false, fmt.Errorf("writing %s: %w", p.part, err)
	}
	if err := d.f.Close(); err != nil {
		return Result{}, false, fmt.Errorf("writing %s: %w", p.part, err)
	}
	fi, err := os.Stat(p.part)
	if err != nil {
		return Result{}, false, fmt.Errorf("writing %s: %w", p.part, err)
	}
	m := manifest{Source: p.ref.Source(), Size: d.n, SHA256: got, Verified: want != "", DigestFrom: from,
		ModTime: fi.ModTime().UnixNano(), Pulled: time.Now().UTC().Format(time.RFC3339)}
	if err := m.write(p.manifest); err != nil {
		return Result{}, false, err
	}
	if err := os.Rename(p.part, p.dest); err != nil {
		return Result{}, false, fmt.Errorf("moving the download into place: %w", err)
	}
	syncDir(filepath.Dir(p.dest))
	return Result{Path: p.dest, Size: d.n, SHA256: got, Verified: want != "", DigestFrom: from}, false, nil
}

func describeFrom(from string) string {
	if from == digestFromOption {
		return "the expected digest given"
	}
	return "the server's " + from + " header"
}

// digest is the expected SHA-256 and where it comes from: the option, else
// the first X-Linked-Etag, else the first ETag, of the redirects and the
// response, that holds 64 hex digits. Weak ETags do not count.
func (p *puller) digest(headers []http.Header) (string, string) {
	if p.opts.SHA256 != "" {
		return p.opts.SHA256, digestFromOption
	}
	for _, name := range []string{"X-Linked-Etag", "ETag"} {
		for _, h := range headers {
			v := strings.TrimSpace(h.Get(name))
			if strings.HasPrefix(v, "W/") {
				continue
			}
			if v = strings.Trim(v, `"`); isHex64(v) {
				return strings.ToLower(v), name
			}
		}
	}
	return "", ""
}

func (p *puller) noDigest() error {
	return fmt.Errorf("%w: the server gave no SHA-256 for %s and none was given; nothing was kept", ErrNoDigest, p.shown)
}

func (p *puller) tooBig(what string) error {
	return fmt.Errorf("%w: %s %s, over the limit of %s (%d bytes; nerstream model pull --max-bytes, model.pull_max_bytes); nothing was kept",
		ErrTooBig, p.shown, what, humanBytes(float64(p.opts.MaxBytes)), p.opts.MaxBytes)
}

func (p *puller) interrupted(ctx context.Context, n, total int64) error {
	return fmt.Errorf("pulling %s: interrupted at %s; pull again to resume from %s: %w", p.shown, fraction(n, total), p.part, ctx.Err())
}

func (p *puller) accessDenied(code int) error {
	var hint string
	switch {
	case !p.ref.HF:
		hint = "HF_TOKEN is sent with hf:// references only"
	case p.opts.Token == "":
		hint = "the repository may be gated, private or missing; set HF_TOKEN to a Hugging Face access token that can read it"
	default:
		hint = "the token (HF_TOKEN) does not give access; for a gated repository, accept its terms on the Hugging Face website first"
	}
	return fmt.Errorf("%w (HTTP %d): %s: %s", ErrAccessDenied, code, p.shown, hint)
}

// client is opts.Client, with a CheckRedirect that records the headers of
// each redirect in chain, refuses redirects to plain http, and drops the
// Authorization header (the HF_TOKEN) from a redirect once the chain has
// left the origin of the first request: any change of scheme, host or
// port. net/http alone compares host names only, so it would send the
// token to another port of the same host, or to a subdomain.
func (p *puller) client(chain *[]http.Header) *http.Client {
	c := *p.opts.Client
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Response != nil {
			*chain = append(*chain, req.Response.Header)
		}
		if err := checkURL(req.URL); err != nil {
			return fmt.Errorf("redirected to %s://%s: %w", req.URL.Scheme, req.URL.Host, err)
		}
		if len(via) > 0 && leftOrigin(via[0].URL, via[1:], req.URL) {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// leftOrigin reports whether a redirect chain that started at first went
// through (hops) or to (to) another origin: another scheme, host or port.
func leftOrigin(first *url.URL, hops []*http.Request, to *url.URL) bool {
	for _, h := range hops {
		if !sameOrigin(first, h.URL) {
			return true
		}
	}
	return !sameOrigin(first, to)
}

// sameOrigin compares scheme, host and port, the port defaulted from the
// scheme.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// download is the partial file being written, its running hash and its
// size.
type download struct {
	f        *os.File
	h        hash.Hash
	n        int64
	head     []byte // the first bytes received, when starting from 0
	bar      *bar
	onWrite  func()
	notGGUF  error
	writeErr error
	max      int64 // Options.MaxBytes
	tooBig   bool  // a write would have passed max
}

// resume hashes what the partial file holds and leaves the offset at its
// end; a partial file too short to show the magic, or one that does not
// start with it, is emptied.
func (d *download) resume() error {
	fi, err := d.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < int64(len(gguf.Magic)) {
		return d.reset()
	}
	head := make([]byte, len(gguf.Magic))
	if _, err := d.f.ReadAt(head, 0); err != nil {
		return err
	}
	if string(head) != gguf.Magic {
		return d.reset()
	}
	n, err := io.Copy(d.h, d.f)
	if err != nil {
		return err
	}
	d.n = n
	return nil
}

// reset empties the partial file.
func (d *download) reset() error {
	d.n, d.head = 0, nil
	d.h.Reset()
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	_, err := d.f.Seek(0, io.SeekStart)
	return err
}

// discard deletes the partial file.
func (d *download) discard(part string) {
	d.f.Close()
	os.Remove(part)
}

// Write checks the magic while the first bytes arrive and the size limit
// all along, then appends to the file and the hash.
func (d *download) Write(b []byte) (int, error) {
	if int64(len(b)) > d.max-d.n {
		d.tooBig = true
		return 0, errTooBig
	}
	if d.n < int64(len(gguf.Magic)) {
		if len(d.head) < 16 {
			d.head = append(d.head, b[:min(len(b), 16-len(d.head))]...)
		}
		k := min(len(d.head), len(gguf.Magic))
		if string(d.head[:k]) != gguf.Magic[:k] {
			d.notGGUF = fmt.Errorf("%w: it starts with %q, not %q; the download was deleted", ErrNotGGUF, d.head, gguf.Magic)
			return 0, d.notGGUF
		}
	}
	n, err := d.f.Write(b)
	d.h.Write(b[:n])
	d.n += int64(n)
	if d.onWrite != nil {
		d.onWrite()
	}
	if d.bar != nil {
		d.bar.add(d.n)
	}
	if err != nil {
		d.writeErr = err
	}
	return n, err
}

// parseContentRange parses "bytes FIRST-LAST/SIZE" and "bytes */SIZE";
// first is -1 for the latter, size -1 for "*".
func parseContentRange(v string) (first, size int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		var err error
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil || size < 0 {
			return 0, 0, false
		}
	}
	if rng == "*" {
		return -1, size, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || (size >= 0 && last >= size) {
		return 0, 0, false
	}
	return first, size, true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// hashFile returns the SHA-256 of a file in lower-case hex; a variable, so
// that a test can count the hashes.
var hashFile = func(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir makes a rename in dir durable, where the system allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// unwrapURLError drops the "Get URL:" that *url.Error adds, since the
// messages name the address already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// fraction is "N bytes of TOTAL" for messages.
func fraction(n, total int64) string {
	if total < 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d of %d bytes", n, total)
}

// IsTerminal reports whether w is a terminal (a character device that is
// not on a TERM=dumb), where a progress bar can redraw itself.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&fs.ModeCharDevice != 0
}
