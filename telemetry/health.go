package telemetry

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nerstream/nerstream/internal/redact"
)

// Names of the readiness checks the rest of nerstream reports to [Health].
const (
	// CheckModel is ready once the model is loaded and answering.
	CheckModel = "model"
	// CheckConsumerGroup is ready while the consumer is in a group
	// generation with partitions to read.
	CheckConsumerGroup = "consumer_group"
	// CheckProducer is ready while the last writes to Kafka succeeded.
	CheckProducer = "producer"
	// CheckCommit is ready while the offsets commit: it fails while any
	// partition's last commit failed (its records stay uncommitted, to be
	// delivered again, and past batch.max_in_flight no more are written).
	CheckCommit = "commit"
)

// startingReason is the reason of a check that has not been set yet.
const startingReason = "starting"

// Health is the readiness of the process: a set of named checks, each ready
// or failing with a reason. The process is ready when every check is.
//
// Set is meant for hot paths (it may be called on every Kafka write): when
// the state does not change it takes no write lock and does not allocate.
// A Health is safe for concurrent use. The zero Health has no checks and is
// ready; a nil *Health is always ready and ignores Set.
type Health struct {
	mu     sync.RWMutex
	checks map[string]*checkState
}

// checkState holds one check's state: a nil reason is ready.
type checkState struct {
	reason atomic.Pointer[string]
}

// NewHealth returns a Health with the named checks, each not ready with the
// reason "starting".
func NewHealth(checks ...string) *Health {
	h := &Health{checks: make(map[string]*checkState, len(checks))}
	for _, name := range checks {
		st := new(checkState)
		reason := startingReason
		st.reason.Store(&reason)
		h.checks[name] = st
	}
	return h
}

// Set records the state of check: ready when err is nil, else failing with
// err's text as the reason. A check not given to [NewHealth] is added.
// /readyz answers anyone who asks, so an address in the reason is shown
// with its user information and query values hidden (internal/redact):
// "model: pulling https://bucket/m.gguf?X-Amz-Signature=REDACTED".
func (h *Health) Set(check string, err error) {
	if h == nil {
		return
	}
	h.mu.RLock()
	st := h.checks[check]
	h.mu.RUnlock()
	if st == nil {
		st = h.add(check)
	}

	cur := st.reason.Load()
	if err == nil {
		if cur != nil {
			st.reason.Store(nil)
		}
		return
	}
	reason := redact.Text(err.Error())
	if cur != nil && *cur == reason {
		return
	}
	// A fresh pointer, so that reason itself stays on the stack and the
	// unchanged case above does not allocate.
	p := new(string)
	*p = reason
	st.reason.Store(p)
}

// each calls f with every check and whether it is ready.
func (h *Health) each(f func(check string, ready bool)) {
	if h == nil {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for name, st := range h.checks {
		f(name, st.reason.Load() == nil)
	}
}

// add returns check's state, adding it (ready) if it is missing.
func (h *Health) add(check string) *checkState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.checks[check]; st != nil {
		return st
	}
	if h.checks == nil {
		h.checks = make(map[string]*checkState)
	}
	st := new(checkState)
	h.checks[check] = st
	return st
}

// Ready reports whether every check is ready and, when not, one reason per
// failing check, "check: reason", sorted by check name.
func (h *Health) Ready() (ready bool, reasons []string) {
	if h == nil {
		return true, nil
	}
	type failing struct{ name, reason string }
	var fails []failing
	h.mu.RLock()
	for name, st := range h.checks {
		if r := st.reason.Load(); r != nil {
			fails = append(fails, failing{name, *r})
		}
	}
	h.mu.RUnlock()
	slices.SortFunc(fails, func(a, b failing) int { return strings.Compare(a.name, b.name) })
	for _, f := range fails {
		reason := f.reason
		if reason == "" {
			reason = "not ready"
		}
		// One line per check in the /readyz body.
		reason = strings.ReplaceAll(reason, "\n", " ")
		reasons = append(reasons, f.name+": "+reason)
	}
	return len(reasons) == 0, reasons
}

// Handler serves readiness, for /readyz: 200 with "ready\n" when every
// check is ready, else 503 with one "check: reason" line per failing check.
// It answers GET and HEAD only (405 otherwise).
func (h *Health) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ready, reasons := h.Ready()
		code, body := http.StatusOK, "ready\n"
		if !ready {
			code, body = http.StatusServiceUnavailable, strings.Join(reasons, "\n")+"\n"
		}
		w.WriteHeader(code)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, body)
		}
	})
}
