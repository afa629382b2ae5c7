package openai

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nerstream/nerstream/model"
)

// ErrRequestFailed is in the Completion.Err of each prompt of a request
// that failed on servers that answer other requests (a health probe
// passed after each failure): the request's document is at fault (a poison
// document), not the pool, and the caller retries or dead-letters that
// document alone. Such failures never count against an endpoint's circuit
// breaker.
var ErrRequestFailed = errors.New("openai: the request failed on servers that answer other requests")

// ErrServerRefuses is [Engine.Probe]'s error when every endpoint answers
// the probe with a refusal (a 4xx: a wrong model name, an API key, a
// request shape the server does not take): no request can succeed until
// the configuration changes.
var ErrServerRefuses = errors.New("openai: every server refuses a plain completion request")

// probeTTL is how long an endpoint's probe result stands: failures within
// it reuse the result rather than probe again.
const probeTTL = time.Second

// probePrompt is the health probe's prompt: UniNER's, about the shortest
// of passages, so that a server whose context takes any document takes
// it.
var probePrompt = func() string {
	tmpl, _ := model.NewTemplate(model.PromptOptions{})
	return tmpl.Prompt("Hi.", "person").String()
}()

// probeOnce sends the probe to ep, one new token in the shape of every
// other request: nil when it answers with one completion.
func (e *Engine) probeOnce(ctx context.Context, ep *endpoint) error {
	prompts := []string{probePrompt}
	payload, err := e.completionPayload(prompts, 1)
	if err != nil {
		return err
	}
	_, _, err = e.send(ctx, ep, ep.base+"/completions", payload, func(body []byte) error {
		_, _, err := decodeCompletions(body, prompts)
		return err
	})
	return err
}

// healthy says whether ep answers the probe, from a result younger than
// probeTTL when there is one. It tells a request's own failure (ep is
// healthy) from the endpoint's.
func (e *Engine) healthy(ctx context.Context, ep *endpoint) bool {
	e.mu.Lock()
	now := e.opts.now()
	if !ep.checkedAt.IsZero() && now.Sub(ep.checkedAt) < probeTTL {
		ok := ep.checkOK
		e.mu.Unlock()
		return ok
	}
	e.mu.Unlock()
	err := e.probeOnce(ctx, ep)
	e.mu.Lock()
	ep.checkedAt, ep.checkOK = e.opts.now(), err == nil
	e.stats.probes++
	e.mu.Unlock()
	return err == nil
}

// Probe sends one tiny completion to each endpoint, at once, without
// retries: nil when one answers. When none does, the error wraps
// [ErrServerRefuses] if every endpoint refused the request (a 4xx), which
// no retry can mend; else the servers may be starting, and the error says
// why the first failed. run and annotate call it at start.
func (e *Engine) Probe(ctx context.Context) error {
	errs := make([]error, len(e.eps))
	done := make(chan struct{})
	for i, ep := range e.eps {
		go func() {
			errs[i] = e.probeOnce(ctx, ep)
			done <- struct{}{}
		}()
	}
	for range e.eps {
		<-done
	}
	refused := 0
	for _, err := range errs {
		if err == nil {
			return nil
		}
		if se, ok := errors.AsType[*StatusError](err); ok && se.StatusCode >= 400 && se.StatusCode < 500 &&
			se.StatusCode != 408 && se.StatusCode != 429 {
			refused++
		}
	}
	if refused == len(errs) {
		return fmt.Errorf("%w: %w", ErrServerRefuses, errs[0])
	}
	return fmt.Errorf("openai: no server answers a probe yet: %w", errs[0])
}
