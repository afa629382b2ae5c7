package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// faultyProxy is a test double of a GPU worker that misbehaves: it passes
// requests on to a real `nerstream serve`, except those for which fault
// says to fail, which it fails in the way kind names.
type faultyProxy struct {
	kind  string
	fault func(n int64) bool // n counts requests from 1
	n     atomic.Int64
	hit   atomic.Int64 // requests failed
	// abandoned counts the "slow" requests that the client gave up on
	// while the proxy held them.
	abandoned atomic.Int64
	proxy     *httputil.ReverseProxy
	srv       *httptest.Server
}

// slowHold bounds how long the "slow" fault holds a request that its
// client does not give up on; then the request is answered, late, and the
// test fails on the count of abandoned requests rather than hanging.
const slowHold = 30 * time.Second

func newFaultyProxy(t *testing.T, target, kind string, fault func(n int64) bool) (*faultyProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{kind: kind, fault: fault, proxy: httputil.NewSingleHostReverseProxy(u)}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p, p.srv.URL
}

// close stops the proxy and waits for the requests it still holds, so that
// its counts are final.
func (p *faultyProxy) close() { p.srv.Close() }

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.fault(p.n.Add(1)) {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.hit.Add(1)
	switch p.kind {
	case "slow": // no answer until the client gives up, past its timeout
		// The server notices a client that hangs up only once the body
		// is read; it is kept for a late answer.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-r.Context().Done():
			p.abandoned.Add(1)
		case <-time.After(slowHold):
			p.proxy.ServeHTTP(w, r)
		}
	case "500":
		http.Error(w, `{"error":{"message":"CUDA error (test double)"}}`, http.StatusInternalServerError)
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"message":"busy (test double)"}}`, http.StatusTooManyRequests)
	case "malformed":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices": [{"text": "[\"Ada`)
	case "cut":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	default:
		panic("unknown fault " + p.kind)
	}
}

// TestAnnotateThroughFaultyWorkers is issue 7's fault test at the level of
// annotate's output: with a worker that is slow, answers 500, 429 with
// Retry-After, a malformed body, or cuts the connection, every document
// comes out once, in order, and as the in-process engine annotates it.
// The faults are of two shapes: a pool where one worker fails every other
// request (the pool routes around it), and one worker alone that fails its
// first two requests and then recovers.
//
// Only the "slow" cases are about the request timeout: there the faulty
// worker holds a request until the client gives up on it, so it is slow
// relative to whatever timeout the test picks, and that timeout only needs
// to pass the healthy requests of a busy machine. Elsewhere the timeout is
// generous, since a request that timed out is not the fault under test.
func TestAnnotateThroughFaultyWorkers(t *testing.T) {
	base := startServe(t)
	path := writeServeModel(t)
	var in strings.Builder
	const docs = 8
	for i := range docs {
		fmt.Fprintf(&in, `{"id":"d%d","text":"Ada Lovelace (%d) worked with Charles Babbage in London."}`+"\n", i, i)
	}
	// One document per batch: each is decoded alone on both sides, so the
	// answers do not depend on what else was in the batch.
	common := []string{"--max-new-tokens", "8", "--batch", "1", "--types", "person,location"}
	code, want, errs := runCLI(t, in.String(), append([]string{"annotate", "--model", path, "--threads", "1"}, common...)...)
	if code != 0 {
		t.Fatalf("annotate in process: %d %s", code, errs)
	}
	wantRecs := records(t, want)
	for _, r := range wantRecs {
		delete(r, "model")
	}

	// slowTimeout is the request timeout of the "slow" cases: the slow
	// worker answers past it, however long it is, and a healthy request of
	// the tiny model is far within it even on a loaded 2-core machine.
	const slowTimeout = 5 * time.Second
	for _, kind := range []string{"slow", "500", "429", "malformed", "cut"} {
		for _, shape := range []string{"pool", "alone"} {
			t.Run(kind+"/"+shape, func(t *testing.T) {
				t.Parallel()
				var p *faultyProxy
				var endpoints []string
				if shape == "pool" {
					var u string
					p, u = newFaultyProxy(t, base, kind, func(n int64) bool { return n%2 == 1 })
					endpoints = []string{u + "/v1", base + "/v1"}
				} else {
					var u string
					p, u = newFaultyProxy(t, base, kind, func(n int64) bool { return n <= 2 })
					endpoints = []string{u + "/v1"}
				}
				timeout := "1m"
				if kind == "slow" {
					timeout = slowTimeout.String()
				}
				args := []string{"annotate", "--engine", "openai", "--dialect", "llama-server", "--request-timeout", timeout}
				for _, e := range endpoints {
					args = append(args, "--endpoint", e)
				}
				code, got, errs := runCLI(t, in.String(), append(args, common...)...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				if p.hit.Load() == 0 {
					t.Fatal("no request met the fault: the test shows nothing")
				}
				p.close()
				if kind == "slow" && p.abandoned.Load() != p.hit.Load() {
					t.Fatalf("the client gave up on %d of the %d slow requests: its timeout of %s did not end the others", p.abandoned.Load(), p.hit.Load(), timeout)
				}
				t.Logf("%d requests through the faulty worker, %d failed", p.n.Load(), p.hit.Load())
				gotRecs := records(t, got)
				if len(gotRecs) != docs {
					t.Fatalf("%d records for %d documents:\n%s", len(gotRecs), docs, got)
				}
				for i, r := range gotRecs {
					delete(r, "model")
					if !reflect.DeepEqual(r, wantRecs[i]) {
						t.Errorf("record %d:\n got %v\nwant %v", i, r, wantRecs[i])
					}
				}
			})
		}
	}
}
