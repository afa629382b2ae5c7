package openai

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// endpoint is one server of the pool. Its fields are guarded by Engine.mu.
type endpoint struct {
	base string // the base URL, without a trailing slash
	root string // base without a trailing /v1: where /tokenize is
	name string // base with any password hidden, for errors and stats

	inFlight  int
	fails     int // consecutive failures
	ejected   bool
	openUntil time.Time // when ejected: the end of the cooldown
	probing   bool      // a probe request is in flight
	busyUntil time.Time // after a 429 or 503: no requests before this
	checkedAt time.Time // the last health probe (see healthy)
	checkOK   bool      // its result

	requests, failures, ejections int64
}

// counters are the engine's totals. Guarded by Engine.mu.
type counters struct {
	requests, retries, failures, ejections int64
	probes, requestFaults                  int64
}

// Stats are counters of an engine's work since [New].
type Stats struct {
	// Requests counts HTTP requests sent, retries included.
	Requests int64
	// Retries counts requests sent again after a failure.
	Retries int64
	// Failures counts requests that failed in a way that is retried
	// (connection, 5xx, 429, timeout, malformed body).
	Failures int64
	// Ejections counts endpoints ejected by the circuit breaker, failed
	// probes included.
	Ejections int64
	// HealthProbes counts the probes sent after a failed request to tell
	// the request's fault from the endpoint's; RequestFaults counts the
	// failures that a passing probe blamed on the request.
	HealthProbes, RequestFaults int64
	// Endpoints are the endpoints, in the order of Options.Endpoints.
	Endpoints []EndpointStats
}

// EndpointStats are one endpoint's counters and state.
type EndpointStats struct {
	// URL is the base URL, any password hidden.
	URL string
	// InFlight is the number of requests in flight now.
	InFlight int
	// Requests, Failures and Ejections count as in [Stats].
	Requests, Failures, Ejections int64
	// State is "healthy", "busy" (it answered 429 or 503, and gets no
	// requests until its Retry-After, or the initial back-off, is over),
	// "ejected" (cooling down or waiting for a probe) or "probing" (a
	// probe request is in flight).
	State string
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{
		Requests:      e.stats.requests,
		Retries:       e.stats.retries,
		Failures:      e.stats.failures,
		Ejections:     e.stats.ejections,
		HealthProbes:  e.stats.probes,
		RequestFaults: e.stats.requestFaults,
		Endpoints:     make([]EndpointStats, len(e.eps)),
	}
	for i, ep := range e.eps {
		state := "healthy"
		switch {
		case ep.probing:
			state = "probing"
		case ep.ejected:
			state = "ejected"
		case e.opts.now().Before(ep.busyUntil):
			state = "busy"
		}
		s.Endpoints[i] = EndpointStats{URL: ep.name, InFlight: ep.inFlight, Requests: ep.requests,
			Failures: ep.failures, Ejections: ep.ejections, State: state}
	}
	return s
}

// errNoEndpoint is an attempt that found no endpoint to send to, and none
// that will free up before the clock moves on. acquire's error wraps it
// and says the last failure that counted against an endpoint (a refused
// connection, a 503): why they are all ejected.
var errNoEndpoint = errors.New("openai: no endpoint to send to: every one is ejected after failures, or asked to be left alone for a while (429, 503)")

// lease is a place on an endpoint, held for one request.
type lease struct {
	ep    *endpoint
	probe bool
}

// acquire takes a place on an endpoint, preferring one other than avoid.
// It waits while every usable endpoint is full, and fails with
// errNoEndpoint when every endpoint is ejected and none can be probed.
func (e *Engine) acquire(ctx context.Context, avoid *endpoint) (lease, error) {
	for {
		e.mu.Lock()
		l, ok, waitable := e.pickLocked(avoid)
		if ok {
			l.ep.inFlight++
			l.ep.requests++
			e.stats.requests++
			if l.probe {
				l.ep.probing = true
			}
			e.mu.Unlock()
			return l, nil
		}
		ch, last := e.released, e.lastFailure
		e.mu.Unlock()
		if !waitable {
			if last != nil {
				return lease{}, fmt.Errorf("%w; the last failure: %s", errNoEndpoint, strings.TrimPrefix(last.Error(), "openai: "))
			}
			return lease{}, errNoEndpoint
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return lease{}, ctx.Err()
		}
	}
}

// pickLocked chooses an endpoint: first one whose cooldown is over (as a
// probe), then a healthy one with room, by the routing policy; avoid only
// when nothing else is free. waitable says whether a place may free up
// without the clock moving: some endpoint is full, or being probed.
func (e *Engine) pickLocked(avoid *endpoint) (l lease, ok, waitable bool) {
	now := e.opts.now()
	n := len(e.eps)
	start := e.rr % n
	e.rr++
	var best, fallback *endpoint
	var fallbackProbe bool
	for i := range n {
		ep := e.eps[(start+i)%n]
		switch {
		case ep.ejected && ep.probing:
			waitable = true
			continue
		case ep.ejected && now.Before(ep.openUntil):
			continue
		case now.Before(ep.busyUntil):
			continue
		case ep.ejected: // cooldown over: probe it
			if ep == avoid {
				fallback, fallbackProbe = ep, true
				continue
			}
			return lease{ep: ep, probe: true}, true, true
		case ep.inFlight >= e.opts.MaxInFlightPerEndpoint:
			waitable = true
			continue
		}
		if ep == avoid {
			if fallback == nil {
				fallback = ep
			}
			continue
		}
		if best == nil {
			best = ep
			if e.opts.Routing == RoutingRoundRobin {
				// In turn: the first free one after start.
				break
			}
		} else if ep.inFlight < best.inFlight {
			best = ep
		}
	}
	if best != nil {
		return lease{ep: best}, true, true
	}
	if fallback != nil {
		return lease{ep: fallback, probe: fallbackProbe}, true, true
	}
	return lease{}, false, waitable
}

// readyIn is how long until an endpoint that is not ejected may take a
// request: 0 if one may now (or none is left), else the end of the
// earliest busy period (429, 503 with Retry-After).
func (e *Engine) readyIn() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.now()
	var soonest time.Duration
	for _, ep := range e.eps {
		if ep.ejected {
			continue
		}
		d := ep.busyUntil.Sub(now)
		if d <= 0 {
			return 0
		}
		if soonest == 0 || d < soonest {
			soonest = d
		}
	}
	return soonest
}

// result is what became of a request, for the circuit breaker.
type result int

const (
	resultOK      result = iota // the server answered (2xx, or a 4xx about the request)
	resultFailure               // a failure that counts toward ejection
	resultBusy                  // 429: retried, but no mark against the server
	resultNeutral               // cancelled by the caller: says nothing about the server
)

// release gives a place back and feeds the circuit breaker; err is the
// request's failure, nil when it succeeded. A positive wait (a 429's or
// 503's Retry-After, or for a 429 without one, the initial back-off)
// keeps requests off the endpoint that long.
func (e *Engine) release(l lease, r result, wait time.Duration, err error) {
	e.mu.Lock()
	if err != nil && (r == resultFailure || r == resultBusy) {
		e.lastFailure = err
	}
	ep := l.ep
	ep.inFlight--
	if wait > 0 {
		ep.busyUntil = e.opts.now().Add(min(wait, e.opts.MaxRetryAfter))
	}
	switch r {
	case resultOK:
		ep.fails = 0
		if l.probe {
			ep.ejected = false // the probe re-admits it
		}
	case resultFailure:
		ep.fails++
		ep.failures++
		e.stats.failures++
		switch {
		case l.probe:
			e.ejectLocked(ep)
		case !ep.ejected && ep.fails >= e.opts.FailureThreshold:
			e.ejectLocked(ep)
		}
	case resultBusy:
		ep.failures++
		e.stats.failures++
	}
	if l.probe {
		ep.probing = false
	}
	close(e.released)
	e.released = make(chan struct{})
	e.mu.Unlock()
}

func (e *Engine) ejectLocked(ep *endpoint) {
	ep.ejected = true
	ep.openUntil = e.opts.now().Add(e.opts.Cooldown)
	ep.ejections++
	e.stats.ejections++
}
