package openai

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/internal/redact"
)

// maxBody bounds an answer's body: a group's answers are a few KiB.
const maxBody = 16 << 20

// StatusError is a server's answer with an HTTP status other than 2xx. A
// 400 or 413 is the Completion.Err of every prompt of the group it
// answered; 401, 403 and other 4xx fail the whole call.
type StatusError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// URL is the request's URL fit to show: its user information hidden
	// (internal/redact).
	URL string
	// Message is the server's error message, shortened.
	Message string
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "openai: %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	b.WriteString(openaiapi.StatusHint(e.StatusCode))
	return b.String()
}

// permanent says whether retrying cannot help.
func (e *StatusError) permanent() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 &&
		e.StatusCode != http.StatusRequestTimeout && e.StatusCode != http.StatusTooManyRequests
}

// refusesGroup says whether the error is about the one request (its
// prompts), not about the whole pool.
func (e *StatusError) refusesGroup() bool {
	return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge
}

// call POSTs payload to the URL that path gives for an endpoint, with
// retries, and hands a 2xx body to decode; a decode error is a malformed
// answer, retried. It returns nil, ctx's error, a permanent *StatusError,
// or the last error once the retries are spent: wrapping
// [ErrRequestFailed] when each failure was the request's own (see
// blame).
//
// A failure that may be the request's (a 5xx other than 503, a malformed
// or cut answer, a timeout) or a refusal of the request (400, 413) sends
// the endpoint a health probe. When the probe passes, the endpoint is
// healthy: the failure counts against the request, not the endpoint's
// circuit breaker. When a refused request's probe is refused too, the
// server refuses every request, and the call fails as a whole.
func (e *Engine) call(ctx context.Context, path func(*endpoint) string, payload []byte, decode func([]byte) error) error {
	var avoid *endpoint
	requestFault := false // the last failure was the request's own
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			e.mu.Lock()
			e.stats.retries++
			e.mu.Unlock()
		}
		l, err := e.acquire(ctx, avoid)
		requestFault = false
		if err == nil {
			avoid = l.ep
			var r result
			var retryAfter time.Duration
			r, retryAfter, err = e.send(ctx, l.ep, path(l.ep), payload, decode)
			if r == resultBusy && retryAfter == 0 {
				retryAfter = e.opts.BackoffInitial
			}
			if err != nil && ctx.Err() == nil {
				r, err, requestFault = e.blame(ctx, l.ep, r, err)
			}
			e.release(l, r, retryAfter, err)
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *StatusError
		if errors.As(err, &se) && se.permanent() {
			return se
		}
		if attempt >= e.opts.Retries {
			if requestFault {
				return fmt.Errorf("%w: giving up after %d attempts: %w", ErrRequestFailed, attempt+1, err)
			}
			return fmt.Errorf("openai: giving up after %d attempts: %w", attempt+1, err)
		}
		// Back off; and when every endpoint that is not ejected asked
		// for time (Retry-After), give it that time.
		wait := max(e.backoff.Delay(attempt), e.readyIn())
		if err := e.opts.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// blame decides whose fault a failed attempt on ep is, by probing ep
// (see call): it returns the result for the circuit breaker, the error to
// go on with, and whether the request is at fault.
func (e *Engine) blame(ctx context.Context, ep *endpoint, r result, err error) (result, error, bool) {
	se, isStatus := errors.AsType[*StatusError](err)
	switch {
	case isStatus && se.refusesGroup():
		if !e.healthy(ctx, ep) {
			// Not wrapped: this is no refusal of the request's own.
			return resultFailure, fmt.Errorf("openai: %s refuses every request, a probe too: %s", ep.name, se), false
		}
		return resultOK, se, true
	case r != resultFailure:
		return r, err, false
	case isStatus && se.StatusCode == http.StatusServiceUnavailable:
		return r, err, false // the server says it is unavailable
	case !e.healthy(ctx, ep):
		return r, err, false
	}
	e.mu.Lock()
	e.stats.requestFaults++
	e.mu.Unlock()
	return resultOK, err, true
}

// send makes one attempt.
func (e *Engine) send(ctx context.Context, ep *endpoint, target string, payload []byte, decode func([]byte) error) (result, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	name := redact.String(target)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return resultFailure, 0, fmt.Errorf("openai: %s: %w", name, redact.Error(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	failed := func(what string, err error) (result, time.Duration, error) {
		switch {
		case ctx.Err() != nil:
			return resultNeutral, 0, ctx.Err()
		case actx.Err() != nil:
			return resultFailure, 0, fmt.Errorf("openai: %s: no answer within the timeout of %s", name, e.opts.Timeout)
		}
		return resultFailure, 0, fmt.Errorf("openai: %s: %s: %s", name, what, redact.Text(e.redact(err.Error())))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return failed("sending", unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return failed("reading the answer", err)
	}
	if len(body) > maxBody {
		return resultFailure, 0, fmt.Errorf("openai: %s: answer over %d bytes", name, maxBody)
	}
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		if err := decode(body); err != nil {
			return resultFailure, 0, fmt.Errorf("openai: %s: malformed answer: %w", name, err)
		}
		return resultOK, 0, nil
	}
	se := &StatusError{StatusCode: code, URL: name, Message: openaiapi.ErrorMessage(e.redact(string(body)))}
	switch {
	case code == http.StatusTooManyRequests:
		return resultBusy, openaiapi.RetryAfter(resp.Header.Get("Retry-After"), e.opts.now()), se
	case code == http.StatusServiceUnavailable:
		return resultFailure, openaiapi.RetryAfter(resp.Header.Get("Retry-After"), e.opts.now()), se
	case se.permanent():
		return resultOK, 0, se // the server is up; the request is at fault
	}
	return resultFailure, 0, se
}

// unwrapURLError drops the "Post URL:" that net/http puts before an error:
// send names the endpoint itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// redact hides the API key, should a server or an error repeat it
// (addresses are internal/redact's).
func (e *Engine) redact(s string) string {
	if e.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, e.apiKey, "[redacted]")
}
