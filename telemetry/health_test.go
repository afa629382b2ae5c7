package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

func TestHealthReady(t *testing.T) {
	errDown := errors.New("broker down")
	type set struct {
		check string
		err   error
	}
	tests := []struct {
		name        string
		checks      []string
		sets        []set
		wantReady   bool
		wantReasons []string
	}{
		{
			name:      "no checks",
			wantReady: true,
		},
		{
			name:        "every check starts not ready",
			checks:      []string{CheckProducer, CheckModel, CheckConsumerGroup},
			wantReasons: []string{"consumer_group: starting", "model: starting", "producer: starting"},
		},
		{
			name:        "some ready",
			checks:      []string{CheckModel, CheckConsumerGroup, CheckProducer},
			sets:        []set{{CheckModel, nil}, {CheckProducer, nil}},
			wantReasons: []string{"consumer_group: starting"},
		},
		{
			name:      "all ready",
			checks:    []string{CheckModel, CheckConsumerGroup, CheckProducer},
			sets:      []set{{CheckModel, nil}, {CheckProducer, nil}, {CheckConsumerGroup, nil}},
			wantReady: true,
		},
		{
			name:        "ready then failing",
			checks:      []string{CheckProducer},
			sets:        []set{{CheckProducer, nil}, {CheckProducer, errDown}},
			wantReasons: []string{"producer: broker down"},
		},
		{
			name:      "failing then ready",
			checks:    []string{CheckProducer},
			sets:      []set{{CheckProducer, errDown}, {CheckProducer, nil}},
			wantReady: true,
		},
		{
			name:        "reason changes",
			checks:      []string{CheckProducer},
			sets:        []set{{CheckProducer, errDown}, {CheckProducer, errors.New("timeout")}},
			wantReasons: []string{"producer: timeout"},
		},
		{
			name:        "wrapped error",
			checks:      []string{CheckModel},
			sets:        []set{{CheckModel, fmt.Errorf("loading model: %w", errDown)}},
			wantReasons: []string{"model: loading model: broker down"},
		},
		{
			name:        "unknown check is added",
			checks:      []string{CheckModel},
			sets:        []set{{CheckModel, nil}, {"disk", errors.New("full")}},
			wantReasons: []string{"disk: full"},
		},
		{
			name:      "unknown check added ready",
			sets:      []set{{"disk", nil}},
			wantReady: true,
		},
		{
			name:        "empty reason and newlines",
			sets:        []set{{"a", errors.New("")}, {"b", errors.New("line1\nline2")}},
			wantReasons: []string{"a: not ready", "b: line1 line2"},
		},
		{
			name:        "sorted by check name, not by line",
			sets:        []set{{"a.b", errDown}, {"a", errDown}},
			wantReasons: []string{"a: broker down", "a.b: broker down"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHealth(tc.checks...)
			for _, s := range tc.sets {
				h.Set(s.check, s.err)
			}
			ready, reasons := h.Ready()
			if ready != tc.wantReady || !slices.Equal(reasons, tc.wantReasons) {
				t.Errorf("Ready() = %v, %q; want %v, %q", ready, reasons, tc.wantReady, tc.wantReasons)
			}
		})
	}
}

func TestHealthZeroValue(t *testing.T) {
	var h Health
	if ready, _ := h.Ready(); !ready {
		t.Error("zero Health is not ready")
	}
	h.Set(CheckModel, errors.New("loading"))
	if ready, reasons := h.Ready(); ready || !slices.Equal(reasons, []string{"model: loading"}) {
		t.Errorf("Ready() = %v, %q after a failing Set", ready, reasons)
	}
}

func TestHealthNil(t *testing.T) {
	var h *Health
	h.Set(CheckModel, errors.New("ignored")) // must not panic
	if ready, reasons := h.Ready(); !ready || reasons != nil {
		t.Errorf("nil Ready() = %v, %q; want true, nil", ready, reasons)
	}
	code, body := serve(t, h.Handler(), http.MethodGet)
	if code != http.StatusOK || body != "ready\n" {
		t.Errorf("nil handler: %d %q; want 200 %q", code, body, "ready\n")
	}
}

func serve(t *testing.T, h http.Handler, method string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/readyz", nil))
	return rec.Code, rec.Body.String()
}

func TestHealthHandler(t *testing.T) {
	h := NewHealth(CheckModel, CheckProducer)
	handler := h.Handler()
	steps := []struct {
		name     string
		set      func()
		method   string
		wantCode int
		wantBody string
	}{
		{
			name:     "starting",
			method:   http.MethodGet,
			wantCode: http.StatusServiceUnavailable,
			wantBody: "model: starting\nproducer: starting\n",
		},
		{
			name:     "ready",
			set:      func() { h.Set(CheckModel, nil); h.Set(CheckProducer, nil) },
			method:   http.MethodGet,
			wantCode: http.StatusOK,
			wantBody: "ready\n",
		},
		{
			name:     "HEAD",
			method:   http.MethodHead,
			wantCode: http.StatusOK,
		},
		{
			name:     "POST",
			method:   http.MethodPost,
			wantCode: http.StatusMethodNotAllowed,
			wantBody: "method not allowed\n",
		},
		{
			name:     "producer fails",
			set:      func() { h.Set(CheckProducer, errors.New("kafka: not leader")) },
			method:   http.MethodGet,
			wantCode: http.StatusServiceUnavailable,
			wantBody: "producer: kafka: not leader\n",
		},
	}
	for _, s := range steps {
		if s.set != nil {
			s.set()
		}
		code, body := serve(t, handler, s.method)
		if code != s.wantCode || body != s.wantBody {
			t.Errorf("%s: %s → %d %q; want %d %q", s.name, s.method, code, body, s.wantCode, s.wantBody)
		}
	}
}

// TestHealthRedactsAddresses is a regression test of issue 16's finding
// that /readyz, which answers anyone, showed secrets. Reproduction, before
// the fix: run with model.path set to a presigned address
// (https://bucket/m.gguf?X-Amz-Signature=…) reported "model: pulling
// https://bucket/m.gguf?X-Amz-Signature=…" on /readyz while it downloaded,
// and an error naming an endpoint with a password showed the password. Now
// Set shows every address of a reason redacted.
func TestHealthRedactsAddresses(t *testing.T) {
	tests := []struct {
		name, reason, want string
	}{
		{"presigned model reference", "pulling https://bucket.example/m.gguf?X-Amz-Credential=AKID&X-Amz-Signature=SIGSECRET",
			"model: pulling https://bucket.example/m.gguf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED\n"},
		{"endpoint with a password", `openai: Post "https://user:PASSSECRET@gpu-1/v1/completions": connection refused`,
			`model: openai: Post "https://REDACTED:REDACTED@gpu-1/v1/completions": connection refused` + "\n"},
		{"nothing to hide", "loading /models/m.gguf", "model: loading /models/m.gguf\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth(CheckModel)
			h.Set(CheckModel, errors.New(tt.reason))
			code, body := serve(t, h.Handler(), http.MethodGet)
			if code != http.StatusServiceUnavailable || body != tt.want {
				t.Errorf("/readyz %d %q, want 503 %q", code, body, tt.want)
			}
		})
	}
}

// TestHealthSetNoChangeAllocs checks that the hot path (a Set that changes
// nothing) does not allocate.
func TestHealthSetNoChangeAllocs(t *testing.T) {
	errDown := errors.New("broker down")
	h := NewHealth(CheckProducer)
	for _, tc := range []struct {
		name string
		err  error
	}{{"ready", nil}, {"same error", errDown}} {
		h.Set(CheckProducer, tc.err)
		if n := testing.AllocsPerRun(100, func() { h.Set(CheckProducer, tc.err) }); n != 0 {
			t.Errorf("%s: Set allocates %v times per call, want 0", tc.name, n)
		}
	}
}

func TestHealthConcurrent(t *testing.T) {
	h := NewHealth(CheckModel)
	errDown := errors.New("down")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			check := fmt.Sprintf("check%d", i%3)
			for j := range 1000 {
				if j%2 == 0 {
					h.Set(check, errDown)
				} else {
					h.Set(check, nil)
				}
				h.Ready()
			}
		})
	}
	wg.Wait()
	for i := range 3 {
		h.Set(fmt.Sprintf("check%d", i), nil)
	}
	h.Set(CheckModel, nil)
	if ready, reasons := h.Ready(); !ready {
		t.Errorf("not ready after every check was set ready: %q", reasons)
	}
}

func BenchmarkHealthSetNoChange(b *testing.B) {
	h := NewHealth(CheckModel, CheckConsumerGroup, CheckProducer)
	h.Set(CheckProducer, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Set(CheckProducer, nil)
		}
	})
}
