package server

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// pageHTML is the page at GET /: one file, its style and its script
// inline, nothing fetched from elsewhere, so that it works offline and
// behind any proxy. It calls POST /v1/annotate with "explain": true.
//
//go:embed page.html
var pageHTML []byte

// page serves pageHTML under a Content-Security-Policy that admits its one
// style and its one script by their SHA-256 hashes, and nothing else: no
// other script, no inline event handler, no style attribute, no image, no
// frame, no form submission; fetch only to this origin. So even a
// rendering mistake that let markup from a text or from the model into the
// DOM would not run it. The page itself renders all such text with
// textContent, never as HTML.
type page struct {
	body []byte
	csp  string
}

// errPage is a page whose inline style or script cannot be hashed.
var errPage = errors.New("the page must hold exactly one <style> and one <script> element, without attributes")

// newPage hashes the page's inline style and script for its CSP.
func newPage() (*page, error) {
	style, err := inline(pageHTML, "style")
	if err != nil {
		return nil, err
	}
	script, err := inline(pageHTML, "script")
	if err != nil {
		return nil, err
	}
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hashSource(script),
		"style-src " + hashSource(style),
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return &page{body: pageHTML, csp: csp}, nil
}

// inline returns the content of the one element <tag>…</tag> of html.
func inline(html []byte, tag string) ([]byte, error) {
	open, end := []byte("<"+tag+">"), []byte("</"+tag+">")
	if bytes.Count(html, open) != 1 || bytes.Count(html, end) != 1 || bytes.Count(html, []byte("<"+tag)) != 1 {
		return nil, fmt.Errorf("page: %w", errPage)
	}
	_, rest, _ := bytes.Cut(html, open)
	content, _, ok := bytes.Cut(rest, end)
	if !ok {
		return nil, fmt.Errorf("page: %w", errPage)
	}
	return content[:len(content):len(content)], nil
}

// hashSource is the CSP source expression that admits exactly content.
func hashSource(content []byte) string {
	sum := sha256.Sum256(content)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// ServeHTTP answers GET and HEAD / with the page. It needs no bearer
// token: the page holds nothing secret, and a browser cannot send one with
// a navigation. The page's requests to the API carry the token its user
// types in.
func (p *page) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(p.body)
}
