package telemetry

import (
	"context"
	"errors"
	"maps"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gaugePoints collects the int64 gauge name from reader as label value of
// key → value.
func gaugePoints(t *testing.T, reader sdkmetric.Reader, name, key string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				t.Fatalf("%s is %T, want an int64 gauge", name, m.Data)
			}
			for _, p := range g.DataPoints {
				v, _ := p.Attributes.Value(attribute.Key(key))
				got[v.AsString()] = p.Value
			}
		}
	}
	return got
}

func TestObserveHealth(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(h *Health)
		want map[string]int64
	}{
		{"starting", func(*Health) {}, map[string]int64{CheckModel: 0, CheckProducer: 0}},
		{"model ready", func(h *Health) { h.Set(CheckModel, nil) }, map[string]int64{CheckModel: 1, CheckProducer: 0}},
		{"all ready", func(h *Health) { h.Set(CheckModel, nil); h.Set(CheckProducer, nil) }, map[string]int64{CheckModel: 1, CheckProducer: 1}},
		{"model fails again", func(h *Health) {
			h.Set(CheckModel, nil)
			h.Set(CheckProducer, nil)
			h.Set(CheckModel, errors.New("inference failing"))
		}, map[string]int64{CheckModel: 0, CheckProducer: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
			h := NewHealth(CheckModel, CheckProducer)
			if err := ObserveHealth(meter, h); err != nil {
				t.Fatal(err)
			}
			tc.set(h)
			if got := gaugePoints(t, reader, "nerstream.ready", "check"); !maps.Equal(got, tc.want) {
				t.Errorf("nerstream.ready = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestObserveWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devices []string
		want    map[string]int64
	}{
		{"none (a remote model)", nil, map[string]int64{}},
		{"the engine's choice", []string{""}, map[string]int64{"default": 1}},
		{"two GPUs", []string{"CUDA0", "CUDA1"}, map[string]int64{"CUDA0": 1, "CUDA1": 1}},
		{"two workers on one device", []string{"Vulkan0", "Vulkan0", "CPU"}, map[string]int64{"Vulkan0": 2, "CPU": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
			if err := ObserveWorkers(meter, tc.devices); err != nil {
				t.Fatal(err)
			}
			if got := gaugePoints(t, reader, "nerstream.engine.workers", "device"); !maps.Equal(got, tc.want) {
				t.Errorf("nerstream.engine.workers = %v, want %v", got, tc.want)
			}
		})
	}
}
