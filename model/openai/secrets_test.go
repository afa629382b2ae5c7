package openai

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/telemetry"
)

// TestEndpointCredentialsNotShown is a regression test of issue 16's
// finding that endpoint credentials were shown. Reproduction, before the
// fix: with model.openai.endpoints: [http://TOKEN@gpu-1:8000/v1] (a token
// as the user name, as some gateways take it), every error of a failed
// request and the engine's stats named the endpoint as
// http://TOKEN@gpu-1:8000/v1: url.URL.Redacted hides a password only. Now
// the whole user information is REDACTED in errors and stats, and the
// client spans (through telemetry.HTTPTransport, as run wires them) carry
// url.full without it.
func TestEndpointCredentialsNotShown(t *testing.T) {
	tests := []struct {
		name, userinfo, wantName string
	}{
		{"user and password", "user:PASSSECRET@", "http://REDACTED:REDACTED@"},
		{"token as the user name", "TOKSECRET@", "http://REDACTED@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.intercept = func(w http.ResponseWriter, r *http.Request, n int) bool { failures[0].do(w, r); return true }
			exp := tracetest.NewInMemoryExporter()
			tel, err := telemetry.Setup(context.Background(), telemetry.Options{SpanExporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			base := strings.Replace(f.base(), "http://", "http://"+tt.userinfo, 1)
			e, _ := newTestEngine(t, Options{Endpoints: []string{base}, Dialect: DialectVLLM, Retries: -1,
				HTTPClient: &http.Client{Transport: tel.HTTPTransport(NewTransport(2))}})
			shown := map[string]string{}
			if _, err := e.TokenCount(context.Background(), "Ada Lovelace"); err != nil {
				shown["TokenCount error"] = err.Error()
			}
			if _, err := e.Generate(context.Background(), []model.PromptGroup{group("x", "person")}, model.GenerateOptions{}); err != nil {
				shown["Generate error"] = err.Error()
			}
			shown["stats"] = e.Stats().Endpoints[0].URL
			if len(shown) != 3 {
				t.Fatalf("the failing server failed nothing: %v", shown)
			}
			for what, s := range shown {
				if strings.Contains(s, "SECRET") || !strings.Contains(s, tt.wantName) {
					t.Errorf("%s %q: want the endpoint as %s…, no secret", what, s, tt.wantName)
				}
			}
			spans := exp.GetSpans()
			if len(spans) == 0 {
				t.Fatal("no client span")
			}
			for _, s := range spans {
				for _, a := range s.Attributes {
					if strings.Contains(a.Value.Emit(), "SECRET") {
						t.Errorf("span %s: %s = %q", s.Name, a.Key, a.Value.Emit())
					}
				}
			}
		})
	}
}
