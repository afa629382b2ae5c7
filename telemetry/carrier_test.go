package telemetry

import (
	"context"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go/protocol"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func headers(kv ...string) []protocol.Header {
	var hs []protocol.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, protocol.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestHeaderCarrier(t *testing.T) {
	tests := []struct {
		name     string
		in       []protocol.Header
		setKey   string
		setValue string
		want     []protocol.Header
		get      string // Get(setKey) before the Set
	}{
		{"empty", nil, "traceparent", "v", headers("traceparent", "v"), ""},
		{"other keys kept in order", headers("a", "1", "b", "2"), "traceparent", "v", headers("a", "1", "b", "2", "traceparent", "v"), ""},
		{"replaces", headers("traceparent", "old", "a", "1"), "traceparent", "new", headers("a", "1", "traceparent", "new"), "old"},
		{"replaces every copy, any case", headers("Traceparent", "x", "a", "1", "traceparent", "y"), "traceparent", "new", headers("a", "1", "traceparent", "new"), "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := slices.Clone(tt.in)
			c := Headers(&hs)
			if got := c.Get(tt.setKey); got != tt.get {
				t.Errorf("Get(%q) = %q, want %q", tt.setKey, got, tt.get)
			}
			c.Set(tt.setKey, tt.setValue)
			if !slices.EqualFunc(hs, tt.want, func(a, b protocol.Header) bool {
				return a.Key == b.Key && string(a.Value) == string(b.Value)
			}) {
				t.Errorf("headers = %q, want %q", hs, tt.want)
			}
		})
	}
}

func TestHeaderCarrierSetDoesNotAlias(t *testing.T) {
	backing := make([]protocol.Header, 1, 4)
	backing[0] = protocol.Header{Key: "a", Value: []byte("1")}
	other := backing[:2] // another record sharing the array
	other[1] = protocol.Header{Key: "b", Value: []byte("2")}
	hs := backing[:1]
	Headers(&hs).Set("traceparent", "v")
	if string(other[1].Key) != "b" {
		t.Fatalf("Set wrote into a shared backing array: %q", other)
	}
}

func TestHeaderCarrierKeys(t *testing.T) {
	hs := headers("a", "1", "b", "2", "a", "3")
	if got := Headers(&hs).Keys(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Keys = %q", got)
	}
}

// TestHeaderCarrierRoundTrip injects a span context and baggage into record
// headers twice (a record passed on) and extracts them again.
func TestHeaderCarrierRoundTrip(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid1, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sid2, _ := trace.SpanIDFromHex("00f067aa0ba902b8")
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(context.Background(), bag)

	hs := headers("content-type", "json")
	for _, sid := range []trace.SpanID{sid1, sid2} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
		prop.Inject(trace.ContextWithSpanContext(ctx, sc), Headers(&hs))
	}
	n := 0
	for _, h := range hs {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d traceparent headers after two injections: %q", n, hs)
	}
	got := prop.Extract(context.Background(), Headers(&hs))
	sc := trace.SpanContextFromContext(got)
	if sc.TraceID() != tid || sc.SpanID() != sid2 || !sc.IsRemote() || !sc.IsSampled() {
		t.Fatalf("extracted %v", sc)
	}
	if v := baggage.FromContext(got).Member("tenant").Value(); v != "acme" {
		t.Fatalf("baggage tenant = %q", v)
	}
}

// The carrier fits kafka-go's header type and the propagator's interface.
var _ propagation.TextMapCarrier = Headers(new([]protocol.Header))
