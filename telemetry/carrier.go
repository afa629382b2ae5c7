package telemetry

import "strings"

// Header is any Kafka record header type of the usual shape: kafka-go's
// kafka.Header, and the Header types of nerstream's own packages. The
// carrier is generic over it so that telemetry, and the pipeline that uses
// it, import no Kafka client.
type Header interface {
	~struct {
		Key   string
		Value []byte
	}
}

// header is the shape every Header converts to and from.
type header = struct {
	Key   string
	Value []byte
}

// HeaderCarrier is a [propagation.TextMapCarrier] over the headers of a
// Kafka record, so that W3C traceparent, tracestate and baggage travel with
// the record:
//
//	prop.Inject(ctx, telemetry.Headers(&msg.Headers))
//	ctx = prop.Extract(ctx, telemetry.Headers(&msg.Headers))
//
// Header keys are matched without regard to case, as HTTP-minded producers
// write "Traceparent". Get reads the last header of a key, as Kafka
// clients do when a key repeats. Set removes every header of its key
// before it appends the new one, so that a record passed on (a dead letter
// keeps its input's headers) never carries two traceparent headers.
//
// [propagation.TextMapCarrier]: https://pkg.go.dev/go.opentelemetry.io/otel/propagation#TextMapCarrier
type HeaderCarrier[H Header] struct{ headers *[]H }

// Headers returns *headers seen as a carrier; Set changes *headers.
func Headers[H Header](headers *[]H) HeaderCarrier[H] {
	return HeaderCarrier[H]{headers}
}

// Get returns the value of the last header named key, or "".
func (c HeaderCarrier[H]) Get(key string) string {
	hs := *c.headers
	for i := len(hs) - 1; i >= 0; i-- {
		if h := header(hs[i]); strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces every header named key with one holding value. It never
// writes into the backing array of the headers, which a caller may share
// with another record's.
func (c HeaderCarrier[H]) Set(key, value string) {
	hs := make([]H, 0, len(*c.headers)+1)
	for _, h := range *c.headers {
		if !strings.EqualFold(header(h).Key, key) {
			hs = append(hs, h)
		}
	}
	*c.headers = append(hs, H(header{Key: key, Value: []byte(value)}))
}

// Keys returns the header keys, each once, in the order they first appear.
func (c HeaderCarrier[H]) Keys() []string {
	keys := make([]string, 0, len(*c.headers))
outer:
	for _, h := range *c.headers {
		k := header(h).Key
		for _, seen := range keys {
			if seen == k {
				continue outer
			}
		}
		keys = append(keys, k)
	}
	return keys
}
