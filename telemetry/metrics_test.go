package telemetry

import (
	"strings"
	"testing"
)

func TestBelowMinScore(t *testing.T) {
	clearOTelEnv(t)
	tel := mustSetup(t, Options{Exporter: "none"})
	defer shutdown(t, tel)
	m, err := NewMetrics(tel.Meter())
	if err != nil {
		t.Fatal(err)
	}
	m.BelowMinScore(t.Context(), 3)
	m.BelowMinScore(t.Context(), 0)
	m.BelowMinScore(t.Context(), 2)
	var nilMetrics *Metrics
	nilMetrics.BelowMinScore(t.Context(), 1) // records nothing, no panic
	body := scrape(t, tel.MetricsHandler())
	if want := "nerstream_entities_below_min_score_total 5\n"; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %q:\n%s", want, body)
	}
}
