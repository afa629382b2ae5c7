package server

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
)

// cspHash is the CSP source for the content of the one <tag> element of
// html, found here independently of page.go's parsing.
func cspHash(t *testing.T, html, tag string) string {
	t.Helper()
	i := strings.Index(html, "<"+tag+">")
	j := strings.Index(html, "</"+tag+">")
	if i < 0 || j < i {
		t.Fatalf("no <%s> in the page", tag)
	}
	sum := sha256.Sum256([]byte(html[i+len(tag)+2 : j]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// TestPage: GET / is the page, under a CSP that admits its own inline
// style and script by hash and nothing else; it needs no token although
// the API does. Every other path and method is refused.
func TestPage(t *testing.T) {
	api := newAPI(t, Options{Token: []byte("s3cret"), Types: []string{"person"}}, &recordingEngine{})
	srv, _ := serveAPI(t, api, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := do(http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, `<textarea id="text"`) {
		t.Fatalf("GET /: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'", "script-src " + cspHash(t, body, "script"), "style-src " + cspHash(t, body, "style"),
		"connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q admits %q", csp, bad)
		}
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// Nothing from elsewhere: no URL with a scheme, no protocol-relative
	// one, in a src, href or fetch.
	for _, bad := range []string{"http://", "https://", `src="//`, `href="//`, " src=", " href="} {
		if strings.Contains(body, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}

	// The API still wants the token.
	if resp, _ := do(http.MethodGet, "/v1/models"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/models without a token: %d", resp.StatusCode)
	}

	// Hostile requests: other paths, methods, and a query that must not
	// be reflected.
	cases := []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodGet, "/?q=%3Cscript%3Ealert(1)%3C/script%3E", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/page.html", http.StatusNotFound},
		{http.MethodGet, "/favicon.ico", http.StatusNotFound},
		{http.MethodGet, "/%00", http.StatusNotFound},
		{http.MethodGet, "/v1/", http.StatusNotFound}, // the API's own 404
		{http.MethodGet, "/v1/annotate/", http.StatusNotFound},
	}
	for _, c := range cases {
		resp, got := do(c.method, c.path)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if strings.Contains(got, "<script>alert") {
			t.Errorf("%s %s reflects the query", c.method, c.path)
		}
		if c.status == http.StatusMethodNotAllowed && !strings.Contains(resp.Header.Get("Allow"), http.MethodGet) {
			t.Errorf("%s %s: Allow %q", c.method, c.path, resp.Header.Get("Allow"))
		}
	}
}

// TestPageMalformed: a page whose style or script cannot be hashed is
// refused, as New would refuse it.
func TestPageMalformed(t *testing.T) {
	for _, html := range []string{
		"<html><style>a{}</style></html>",
		"<script>1</script><script>2</script><style></style>",
		`<script src="x.js"></script><script>1</script><style></style>`,
		"<script>1<style></style>",
	} {
		if _, err := inline([]byte(html), "script"); err == nil {
			if _, err := inline([]byte(html), "style"); err == nil {
				t.Errorf("%q: both hashed", html)
			}
		}
	}
}
