package stream

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/pipeline"
	"github.com/nerstream/nerstream/record"
)

func TestRecordEncoderLimits(t *testing.T) {
	e := encoder{topic: "out", deadLetters: "dlq", model: "m"}
	cases := []struct {
		name      string
		value     []byte
		wantValue bool
	}{
		{"small value kept", []byte("not json"), true},
		{"value near the limit kept", bytes.Repeat([]byte("x"), maxRecordBytes-200), true},
		{"value over the writer's limit omitted", bytes.Repeat([]byte("x"), 2<<20), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := &pipeline.Input{Topic: "docs", Partition: 2, Offset: 7, Key: []byte("k"), Value: c.value,
				Headers: []record.Header{{Key: "trace", Value: []byte("1")}}}
			out := e.DeadLetter(in, "value_too_large")
			hs := map[string]string{}
			for _, h := range out.Headers {
				hs[h.Key] = string(h.Value)
			}
			if out.Topic != "dlq" || hs["nerstream-error"] != "value_too_large" || hs["nerstream-source-offset"] != "7" {
				t.Fatalf("dead letter %+v", hs)
			}
			if c.wantValue != bytes.Equal(out.Value, c.value) {
				t.Fatalf("value kept = %v, want %v", bytes.Equal(out.Value, c.value), c.wantValue)
			}
			if size, _ := strconv.Atoi(hs[HeaderValueOmitted]); !c.wantValue && (size <= len(c.value) || hs["trace"] != "" || out.Key != nil) {
				t.Fatalf("no %s header: %v", HeaderValueOmitted, hs)
			}
		})
	}
	// A huge key alone also makes a dead letter too large to write.
	out := e.DeadLetter(&pipeline.Input{Topic: "docs", Key: bytes.Repeat([]byte("k"), 2<<20), Value: []byte("{}")}, "invalid_json")
	if len(out.Key) != 0 || len(out.Value) != 0 {
		t.Fatalf("dead letter with a 2 MiB key kept %d key bytes and %d value bytes", len(out.Key), len(out.Value))
	}
	// An annotation over the limit is an error, which the pipeline turns
	// into a dead letter (encode_failed) rather than a write that never
	// succeeds.
	big := &model.Annotation{ID: "d", Types: []string{"person"}}
	in := &pipeline.Input{Topic: "docs", Doc: record.Document{Metadata: []byte(`{"blob":"` + strings.Repeat("x", 2<<20) + `"}`)}}
	if _, err := e.Annotation(in, big); err == nil {
		t.Fatal("an annotation over the record limit was encoded")
	}
}
