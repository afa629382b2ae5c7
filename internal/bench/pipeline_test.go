package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"google.golang.org/protobuf/proto"
)

// TestOTLPReceiver checks the receiver's span count against requests
// marshalled by the OTLP protobuf package, plain and gzipped.
func TestOTLPReceiver(t *testing.T) {
	span := func(name string, parent bool) *tracepb.Span {
		s := &tracepb.Span{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Name: name,
			Kind: tracepb.Span_SPAN_KIND_CONSUMER, StartTimeUnixNano: 1, EndTimeUnixNano: 2}
		if parent {
			s.ParentSpanId = bytes.Repeat([]byte{3}, 8)
		}
		return s
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{
			{Spans: []*tracepb.Span{span("process bench-docs", true), span("send bench-entities", true), span("infer", false)}},
			{Spans: []*tracepb.Span{span("process bench-docs", false)}},
		}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{span("send bench-entities", true), span("", false)}}}},
	}}
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	n, names, parented, err := countOTLPSpans(body)
	if err != nil || n != 6 || names["process"] != 2 || names["send"] != 2 || names["infer"] != 1 || names[""] != 1 ||
		parented["process"] != 1 || parented["send"] != 2 || parented["infer"] != 0 {
		t.Errorf("countOTLPSpans: %d spans, %v, with a parent %v, %v", n, names, parented, err)
	}
	if _, _, _, err := countOTLPSpans(body[:len(body)-3]); err == nil {
		t.Error("countOTLPSpans accepted a truncated request")
	}

	srv := httptest.NewServer(&otlpReceiver{})
	defer srv.Close()
	post := func(path string, body []byte, gz bool) {
		t.Helper()
		if gz {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(body)
			zw.Close()
			body = b.Bytes()
		}
		hreq, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		if gz {
			hreq.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || len(data) != 0 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("POST %s: %s, %q, %q", path, resp.Status, resp.Header.Get("Content-Type"), data)
		}
	}
	post("/v1/traces", body, false)
	post("/v1/traces", body, true)
	post("/v1/metrics", []byte{}, false)
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st otlpStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 3 || st.TraceRequests != 2 || st.MetricRequests != 1 || st.Spans != 12 || st.SpansByName["process"] != 4 || st.BadRequests != 0 || st.Bytes <= int64(len(body)) {
		t.Errorf("stats %+v", st)
	}
}

func TestBenchTraceparent(t *testing.T) {
	a, b := string(benchTraceparent(0)), string(benchTraceparent(1))
	if len(a) != 55 || !strings.HasPrefix(a, "00-") || !strings.HasSuffix(a, "-01") || a == b || a[3:35] == b[3:35] {
		t.Errorf("traceparents %q, %q", a, b)
	}
}

func TestBenchDoc(t *testing.T) {
	for _, size := range []int{60, 200, 1000} {
		v := benchDoc(12345, size)
		var d struct{ ID, Text string }
		if err := json.Unmarshal(v, &d); err != nil || d.ID != "doc-12345" || d.Text == "" {
			t.Fatalf("size %d: %s (%v)", size, v, err)
		}
		if len(v) < size*3/4 || len(v) > size+16 {
			t.Errorf("size %d: %d bytes: %s", size, len(v), v)
		}
	}
}
