package main

import (
	"fmt"
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
	proxy *httputil.ReverseProxy
}

func newFaultyProxy(t *testing.T, target, kind string, fault func(n int64) bool) (*faultyProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{kind: kind, fault: fault, proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.fault(p.n.Add(1)) {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.hit.Add(1)
	switch p.kind {
	case "slow": // past the client's timeout, then answered anyway
		time.Sleep(1500 * time.Millisecond)
		p.proxy.ServeHTTP(w, r)
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
					p, u = newFaultyProxy(t, base, kind, func(n int64) bool { return n%2 == 1 })
					endpoints = []string{u + "/v1", base + "/v1"}
				} else {
					var u string
					p, u = newFaultyProxy(t, base, kind, func(n int64) bool { return n <= 2 })
					endpoints = []string{u + "/v1"}
				}
				args := []string{"annotate", "--engine", "openai", "--dialect", "llama-server", "--request-timeout", "500ms"}
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
