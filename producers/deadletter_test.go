package producers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/record"
)

func h(k, v string) record.Header { return record.Header{Key: k, Value: []byte(v)} }

func TestDeadLetter(t *testing.T) {
	src := record.Source{Topic: "docs", Partition: 3, Offset: 1042}
	added := []record.Header{
		h(HeaderError, "invalid JSON"),
		h(HeaderSourceTopic, "docs"),
		h(HeaderSourcePartition, "3"),
		h(HeaderSourceOffset, "1042"),
	}
	tests := []struct {
		name    string
		src     record.Source
		headers []record.Header
		want    []record.Header
	}{
		{name: "no headers", src: src, want: added},
		{
			name:    "original headers kept in order",
			src:     src,
			headers: []record.Header{h("traceparent", "00-a-b-01"), h("x", "1"), h("x", "2")},
			want:    append([]record.Header{h("traceparent", "00-a-b-01"), h("x", "1"), h("x", "2")}, added...),
		},
		{
			name: "re-fed dead letter: nerstream headers replaced",
			src:  src,
			headers: []record.Header{
				h(HeaderError, "old reason"), h("x", "1"), h(HeaderSourceTopic, "dlq"),
				h(HeaderSourcePartition, "0"), h(HeaderSourceOffset, "5"), h(HeaderError, "older"),
				h("nerstream-other", "kept"),
			},
			want: append([]record.Header{h("x", "1"), h("nerstream-other", "kept")}, added...),
		},
		{
			name: "large offset in decimal",
			src:  record.Source{Topic: "t", Partition: 0, Offset: 1<<62 + 1},
			want: []record.Header{h(HeaderError, "invalid JSON"), h(HeaderSourceTopic, "t"),
				h(HeaderSourcePartition, "0"), h(HeaderSourceOffset, "4611686018427387905")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]record.Header(nil), tt.headers...)
			m := DeadLetter("dlq", tt.src, []byte("key"), []byte("value"), tt.headers, "invalid JSON")
			if m.Topic != "dlq" || string(m.Key) != "key" || string(m.Value) != "value" {
				t.Errorf("message = %q %q %q", m.Topic, m.Key, m.Value)
			}
			if !reflect.DeepEqual(m.Headers, tt.want) {
				t.Errorf("headers\n got %q\nwant %q", m.Headers, tt.want)
			}
			if !reflect.DeepEqual(tt.headers, orig) {
				t.Error("the input headers were modified")
			}
		})
	}
}

func TestAnnotationMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      record.Annotation
		want    string // JSON value
		wantErr bool
	}{
		{
			name: "design example",
			in: record.Annotation{ID: "doc-1", Source: &record.Source{Topic: "docs", Partition: 3, Offset: 1042},
				Model: "UniNER-7B-type.Q4_K_M.gguf", EntityTypes: []string{"person", "organization"},
				Entities: []record.Entity{{Text: "Ada Lovelace", Type: "person", Start: 0, End: 12}}},
			want: `{"id": "doc-1",
 "source": {"topic": "docs", "partition": 3, "offset": 1042},
 "model": "UniNER-7B-type.Q4_K_M.gguf",
 "entity_types": ["person", "organization"],
 "entities": [{"text": "Ada Lovelace", "type": "person", "start": 0, "end": 12}],
 "metadata": {}}`,
		},
		{
			name: "nil lists and metadata",
			in:   record.Annotation{ID: "d", Model: "m"},
			want: `{"id":"d","model":"m","entity_types":[],"entities":[],"metadata":{}}`,
		},
		{
			name: "null metadata",
			in:   record.Annotation{ID: "d", Model: "m", Metadata: json.RawMessage(" null ")},
			want: `{"id":"d","model":"m","entity_types":[],"entities":[],"metadata":{}}`,
		},
		{
			name: "metadata and unaligned kept",
			in: record.Annotation{ID: "d", Model: "m", Metadata: json.RawMessage(`{"lang":"en"}`),
				Unaligned: []record.Mention{{Type: "person", Text: "Bob"}}},
			want: `{"id":"d","model":"m","entity_types":[],"entities":[],"unaligned":[{"type":"person","text":"Bob"}],"metadata":{"lang":"en"}}`,
		},
		{name: "invalid metadata", in: record.Annotation{ID: "d", Metadata: json.RawMessage(`{`)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := AnnotationMessage("out", tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), `"d"`) {
					t.Fatalf("err = %v, want an error naming the id", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != "out" || string(m.Key) != tt.in.ID || m.Headers != nil {
				t.Errorf("message = %q key %q headers %v", m.Topic, m.Key, m.Headers)
			}
			var got, want any
			if err := json.Unmarshal(m.Value, &got); err != nil {
				t.Fatalf("value %s: %v", m.Value, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("value\n got %s\nwant %s", m.Value, tt.want)
			}
		})
	}
}
