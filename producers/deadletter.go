package producers

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nerstream/nerstream/record"
)

// Header names that DeadLetter adds to a dead letter (DESIGN.md, "Records").
const (
	// HeaderError holds a short reason why the record was not annotated.
	HeaderError = "nerstream-error"
	// HeaderSourceTopic holds the input record's topic.
	HeaderSourceTopic = "nerstream-source-topic"
	// HeaderSourcePartition holds the input record's partition, in decimal.
	HeaderSourcePartition = "nerstream-source-partition"
	// HeaderSourceOffset holds the input record's offset, in decimal.
	HeaderSourceOffset = "nerstream-source-offset"
)

// DeadLetter returns the dead letter for an input record that could not be
// annotated: a Message to topic with the record's own key, value and
// headers, then the headers HeaderError (reason), HeaderSourceTopic,
// HeaderSourcePartition and HeaderSourceOffset (from src).
//
// Headers of the input that already carry one of those four names (a record
// re-fed from a dead-letter topic) are dropped, so each name appears once
// and describes the latest failure. Other headers keep their order. Key,
// value and the header values are not copied.
func DeadLetter(topic string, src record.Source, key, value []byte, headers []record.Header, reason string) Message {
	out := make([]record.Header, 0, len(headers)+4)
	for _, h := range headers {
		switch h.Key {
		case HeaderError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset:
			continue
		}
		out = append(out, h)
	}
	out = append(out,
		record.Header{Key: HeaderError, Value: []byte(reason)},
		record.Header{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		record.Header{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		record.Header{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	)
	return Message{Topic: topic, Key: key, Value: value, Headers: out}
}

// AnnotationMessage returns the annotation record for a: a Message to topic
// keyed by a.ID whose value is a as JSON (DESIGN.md, "Records"; empty lists
// are [] and empty metadata {}, as [record.Annotation.MarshalJSON] writes
// them). It fails only when a.Metadata is not valid JSON.
func AnnotationMessage(topic string, a record.Annotation) (Message, error) {
	value, err := json.Marshal(a)
	if err != nil {
		return Message{}, fmt.Errorf("producers: annotation %q: %w", a.ID, err)
	}
	return Message{Topic: topic, Key: []byte(a.ID), Value: value}, nil
}
