package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ObserveHealth exports h on meter as the gauge nerstream.ready
// (nerstream_ready{check} in Prometheus): 1 while the check is ready, 0
// while it fails, one series per check of h. Alerts read it: readiness
// false for minutes, and a model outage (check="model"). The check names
// are the program's own ([CheckModel], ...), never input.
func ObserveHealth(meter metric.Meter, h *Health) error {
	g, err := meter.Int64ObservableGauge("nerstream.ready",
		metric.WithDescription("1 while the readiness check is ready, 0 while it fails (the /readyz checks)."))
	if err != nil {
		return fmt.Errorf("telemetry: nerstream.ready: %w", err)
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		h.each(func(check string, ready bool) {
			var v int64
			if ready {
				v = 1
			}
			o.ObserveInt64(g, v, metric.WithAttributes(attribute.String("check", check)))
		})
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("telemetry: nerstream.ready: %w", err)
	}
	return nil
}

// ObserveWorkers exports the engine's workers on meter as the gauge
// nerstream.engine.workers (nerstream_engine_workers{device}): 1 for each
// device that has a worker (one per GPU, or "cpu"). devices is read once:
// a member's workers are fixed from start to stop.
func ObserveWorkers(meter metric.Meter, devices []string) error {
	g, err := meter.Int64ObservableGauge("nerstream.engine.workers",
		metric.WithDescription("Engine workers by device: one per GPU (or the CPU) that runs the model in process."), metric.WithUnit("{worker}"))
	if err != nil {
		return fmt.Errorf("telemetry: nerstream.engine.workers: %w", err)
	}
	counts := map[string]int64{}
	for _, d := range devices {
		if d == "" {
			d = "default" // the engine's own choice
		}
		counts[d]++
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for d, n := range counts {
			o.ObserveInt64(g, n, metric.WithAttributes(attribute.String("device", d)))
		}
		return nil
	}, g)
	if err != nil {
		return fmt.Errorf("telemetry: nerstream.engine.workers: %w", err)
	}
	return nil
}
