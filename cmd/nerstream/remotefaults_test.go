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
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultyProxy is a test double of a GPU worker that misbehaves: it passes
// requests on to a real `nerstream serve`, except those for which fault
// says to fail, which it fails in the way kind names.
type faultyProxy struct {
	kind string
	// fault says whether the n-th request fails, n counting from 1 the
	// requests, or for "slow" the documents' completions only (not health
	// probes), each of which costs the test a whole timeout.
	fault func(n int64) bool
	n     atomic.Int64
	docs  atomic.Int64
	hit   atomic.Int64 // requests failed
	// abandoned counts the "slow" requests that the client gave up on
	// while the proxy held them; returned counts the requests whose body
	// is that of one abandoned here before: sent again to this worker.
	abandoned, returned atomic.Int64
	mu                  sync.Mutex
	abandonedBodies     map[string]bool
	// slowestOK is the longest a request passed on took, for the log.
	slowestOK atomic.Int64
	proxy     *httputil.ReverseProxy
	srv       *httptest.Server
}

// slowTimeout is the request timeout of the "slow" cases. The slow worker
// answers past it, however long it is, as it holds a request until its
// client gives up; it only has to pass the healthy requests of a loaded
// 2-core machine, which queue in the one nerstream serve behind the other
// sub-tests' requests (5s did not, under a whole `go test ./...`). Each
// slow request costs the test this long, so the slow worker holds only a
// few.
const slowTimeout = 20 * time.Second

// slowHold bounds how long the "slow" fault holds a request that its
// client does not give up on; then the request is answered, late, and the
// test fails on the count of abandoned requests rather than hanging.
const slowHold = 3 * slowTimeout

func newFaultyProxy(t *testing.T, target, kind string, fault func(n int64) bool) (*faultyProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{kind: kind, fault: fault, proxy: httputil.NewSingleHostReverseProxy(u), abandonedBodies: map[string]bool{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p, p.srv.URL
}

// close stops the proxy and waits for the requests it still holds, so that
// its counts are final.
func (p *faultyProxy) close() { p.srv.Close() }

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read first: for the server to notice a client that
	// hangs up (see "slow"), and to recognize a request sent again.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// A document's completion, not a health probe ("Hi."), which goes to
	// the worker it is about.
	doc := strings.HasSuffix(r.URL.Path, "/completions") && bytes.Contains(body, []byte("Ada Lovelace"))
	p.mu.Lock()
	if p.abandonedBodies[string(body)] {
		p.returned.Add(1)
	}
	p.mu.Unlock()
	faulty := p.fault(p.n.Add(1))
	if p.kind == "slow" {
		faulty = doc && p.fault(p.docs.Add(1))
	}
	if !faulty {
		start := time.Now()
		p.proxy.ServeHTTP(w, r)
		d := int64(time.Since(start))
		for old := p.slowestOK.Load(); d > old && !p.slowestOK.CompareAndSwap(old, d); old = p.slowestOK.Load() {
		}
		return
	}
	p.hit.Add(1)
	switch p.kind {
	case "slow": // no answer until the client gives up, past its timeout
		select {
		case <-r.Context().Done():
			p.abandoned.Add(1)
			p.mu.Lock()
			p.abandonedBodies[string(body)] = true
			p.mu.Unlock()
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
// The slow worker is slow on documents' completions only (a health probe
// must answer for the pool to keep the worker), and in the pool on the
// first two odd ones only, since each costs the test a whole timeout; that
// the pool routes around it is proven directly: no request it held until
// the client gave up is sent to it again.
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

	for _, kind := range []string{"slow", "500", "429", "malformed", "cut"} {
		for _, shape := range []string{"pool", "alone"} {
			t.Run(kind+"/"+shape, func(t *testing.T) {
				t.Parallel()
				var p *faultyProxy
				var endpoints []string
				if shape == "pool" {
					var u string
					p, u = newFaultyProxy(t, base, kind, func(n int64) bool { return n%2 == 1 && (kind != "slow" || n <= 3) })
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
				if kind == "slow" && shape == "pool" && p.returned.Load() != 0 {
					t.Fatalf("%d requests that the client gave up on were sent to the slow worker again, not to the healthy one", p.returned.Load())
				}
				t.Logf("%d requests through the faulty worker, %d failed, %d sent again; the slowest passed on took %s",
					p.n.Load(), p.hit.Load(), p.returned.Load(), time.Duration(p.slowestOK.Load()))
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
