package pipeline

import (
	"context"
	"time"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
)

// Input is one record of a claimed partition, decoded.
type Input struct {
	Topic     string
	Partition int
	Offset    int64
	// Key, Value and Headers are the record as it arrived; a dead letter
	// carries them unchanged.
	Key, Value []byte
	Headers    []record.Header
	// Doc is the decoded document. Its ID, when empty, becomes
	// "topic/partition/offset".
	Doc record.Document
	// Reject, when set, is why the record could not be decoded: it becomes a
	// dead letter with this reason and never reaches the model.
	Reject string
	// Time is the record's timestamp, where its end-to-end latency
	// starts; zero means the moment it was fetched.
	Time time.Time
	// HighWaterMark is the partition's end offset at the fetch, for the
	// consumer lag; 0 when unknown.
	HighWaterMark int64
	// TraceContext holds the trace context (span and baggage) that the
	// record's producer sent in its headers, for the record's span to
	// continue; nil when it sent none. It is never cancelled.
	TraceContext context.Context
}

// Output is one record to write.
type Output struct {
	Topic      string
	Key, Value []byte
	Headers    []record.Header
	// TraceContext is the context of the record's send span, with the
	// input's baggage: the sink injects it into the record's headers. It
	// is never cancelled, and nil when tracing is off.
	TraceContext context.Context
}

// Claim is one input partition, owned by this member for one consumer-group
// generation. The pipeline calls Next from one goroutine and Commit from
// another.
type Claim interface {
	// Next blocks until the next record, or returns the context's error.
	Next(ctx context.Context) (Input, error)
	// Commit commits offset, the next offset to read, through the
	// generation that owns the partition. After the generation is over it
	// fails, and the new owner's offset is left alone.
	Commit(offset int64) error
}

// Sink writes outputs. Write returns nil only when every output is
// acknowledged; on an error the pipeline writes the same outputs again.
type Sink interface {
	Write(ctx context.Context, outs []Output) error
}

// Encoder turns results into output records; it owns the record schemas.
type Encoder interface {
	// Annotation encodes the annotation of in.
	Annotation(in *Input, ann *model.Annotation) (Output, error)
	// DeadLetter encodes in as a dead letter with a short reason.
	DeadLetter(in *Input, reason string) Output
}

// Recognizer annotates documents; [*model.Recognizer] is one. A failure of
// one document sets that annotation's Err; the error return fails them all.
type Recognizer interface {
	Recognize(ctx context.Context, docs []record.Document) ([]model.Annotation, error)
}
