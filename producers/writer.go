package producers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.opentelemetry.io/otel/propagation"

	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// Message is one record to write. Topic is required: one Writer serves the
// annotation topic and the dead-letter topic alike. Key chooses the
// partition (see Writer); a nil Key spreads records at random.
//
// Write does not copy Key, Value or the headers' values; do not modify them
// until Write has returned.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []record.Header
	// TraceContext, when set, is injected into the record's headers by
	// the Writer's Options.Propagator (traceparent, tracestate, baggage),
	// replacing any such header already in Headers. Only its values are
	// read: its cancellation is ignored.
	TraceContext context.Context
}

// Compression codec names accepted by Options.Compression.
const (
	CompressionNone   = "none"
	CompressionSnappy = "snappy"
	CompressionGzip   = "gzip"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"
)

var compressionCodecs = map[string]kafka.Compression{
	CompressionNone:   0,
	CompressionSnappy: kafka.Snappy,
	CompressionGzip:   kafka.Gzip,
	CompressionLZ4:    kafka.Lz4,
	CompressionZstd:   kafka.Zstd,
}

// Defaults that NewWriter applies to zero-valued Options fields.
const (
	DefaultClientID     = "nerstream"
	DefaultCompression  = CompressionSnappy
	DefaultBatchTimeout = 2 * time.Millisecond
	DefaultBatchSize    = 1000
	DefaultBatchBytes   = 1 << 20
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxAttempts  = 3
)

// Options configures a Writer. The zero value of every field but Brokers
// means "use the default"; negative numbers are errors.
type Options struct {
	// Brokers are the bootstrap "host:port" addresses of the cluster. At
	// least one is required; the rest of the cluster is discovered from
	// their metadata.
	Brokers []string

	// ClientID names this client to the brokers, for their logs, metrics
	// and quotas. Default "nerstream".
	ClientID string

	// Compression is the codec for produced record batches: "snappy"
	// (the default: cheap on CPU and a good ratio on JSON), "none", "gzip",
	// "lz4" or "zstd". Any other name is an error from NewWriter. Brokers
	// and consumers of every mainstream client read all five.
	Compression string

	// BatchTimeout is how long a partially filled batch of one partition
	// waits for more records before it is sent. Default 2ms. Write is
	// synchronous, so this is latency added to every Write whose records
	// do not fill a batch; kafka-go's own default of 1s would add a second
	// to each of them. Larger values trade latency for fewer, bigger
	// requests when many goroutines share the Writer.
	BatchTimeout time.Duration

	// BatchSize is the most records sent to one partition in one produce
	// request. Default 1000. A Write larger than this is split into
	// several requests per partition, sent in order.
	BatchSize int

	// BatchBytes is the most bytes (keys, values and headers) in one
	// partition's request. Default 1 MiB, the broker's default
	// message.max.bytes. A single record larger than this fails the whole
	// Write with a kafka.MessageTooLargeError: retrying cannot help, so
	// callers should dead-letter or drop such a record.
	BatchBytes int64

	// CreateTopics lets a Write to a topic the cluster does not know ask
	// the brokers to create it (when the brokers allow automatic topic
	// creation). Default false: a missing topic fails the Write with
	// kafka.UnknownTopicOrPartition, so a typo in a topic name is an error
	// rather than a new topic with broker-default partitions and
	// replication.
	CreateTopics bool

	// WriteTimeout bounds one produce request, including waiting for the
	// acknowledgement of all in-sync replicas, and one metadata request.
	// Default 10s. A Write can
	// take up to about MaxAttempts times this (plus back-off); bound it
	// further with the Write's context.
	WriteTimeout time.Duration

	// MaxAttempts is how many times kafka-go tries to produce one batch
	// before Write reports a failure, retrying only errors that Kafka marks
	// retriable (leader changes, not enough replicas, timeouts, dropped
	// connections), with back-off from 100ms to 1s. Default 3: callers
	// retry whole Writes themselves, and kafka-go's default of 10 would
	// hide a broken cluster behind long stalls.
	MaxAttempts int

	// TLS, when set, encrypts the connections to the brokers. Default:
	// none (plain text).
	TLS *tls.Config

	// SASL, when set, authenticates the connections (kafka-go's plain or
	// scram mechanisms). Default: none.
	SASL sasl.Mechanism

	// Propagator injects each Message's TraceContext into its headers,
	// so that the consumers of the output continue the trace. Default:
	// none, and headers are written as given.
	Propagator propagation.TextMapPropagator
}

// withDefaults returns o with defaults filled in, or an error naming the
// first invalid field.
func (o Options) withDefaults() (Options, error) {
	var brokers []string
	for _, b := range o.Brokers {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return o, errors.New("producers: Options.Brokers: at least one broker address is required")
	}
	o.Brokers = brokers
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	o.Compression = strings.ToLower(strings.TrimSpace(o.Compression))
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	if _, ok := compressionCodecs[o.Compression]; !ok {
		return o, fmt.Errorf("producers: Options.Compression: unknown codec %q (allowed: none, snappy, gzip, lz4, zstd)", o.Compression)
	}
	switch {
	case o.BatchTimeout < 0:
		return o, fmt.Errorf("producers: Options.BatchTimeout: %v is negative", o.BatchTimeout)
	case o.BatchSize < 0:
		return o, fmt.Errorf("producers: Options.BatchSize: %d is negative", o.BatchSize)
	case o.BatchBytes < 0:
		return o, fmt.Errorf("producers: Options.BatchBytes: %d is negative", o.BatchBytes)
	case o.WriteTimeout < 0:
		return o, fmt.Errorf("producers: Options.WriteTimeout: %v is negative", o.WriteTimeout)
	case o.MaxAttempts < 0:
		return o, fmt.Errorf("producers: Options.MaxAttempts: %d is negative", o.MaxAttempts)
	}
	if o.BatchTimeout == 0 {
		o.BatchTimeout = DefaultBatchTimeout
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	return o, nil
}

// Writer writes Messages to Kafka with acks=all. It is safe for concurrent
// use; Writes from several goroutines share batches per partition.
type Writer struct {
	kw        *kafka.Writer
	transport *kafka.Transport
	prop      propagation.TextMapPropagator
	timeout   time.Duration

	// retries totals kafka-go's retried produce requests; kafka-go's own
	// Stats resets its counters on each call.
	retriesMu sync.Mutex
	retries   int64
}

// NewWriter returns a Writer for opts. It does not contact the brokers:
// the first Write does, so a cluster that is down shows as Write errors.
func NewWriter(opts Options) (*Writer, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	transport := &kafka.Transport{ClientID: o.ClientID, TLS: o.TLS, SASL: o.SASL}
	kw := &kafka.Writer{
		Addr: kafka.TCP(o.Brokers...),
		// Topic stays empty: every Message names its own.
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		Compression:            compressionCodecs[o.Compression],
		BatchTimeout:           o.BatchTimeout,
		BatchSize:              o.BatchSize,
		BatchBytes:             o.BatchBytes,
		AllowAutoTopicCreation: o.CreateTopics,
		WriteTimeout:           o.WriteTimeout,
		ReadTimeout:            o.WriteTimeout,
		MaxAttempts:            o.MaxAttempts,
		Transport:              transport,
	}
	return &Writer{kw: kw, transport: transport, prop: o.Propagator, timeout: o.WriteTimeout}, nil
}

// Write sends msgs and waits for the brokers. It returns nil only when every
// message was acknowledged by all in-sync replicas of its partition.
//
// On error, some messages may have been written and others not, and a
// message whose ctx ran out may still be written later. Callers retry the
// whole slice: that may duplicate records (delivery is at-least-once) but
// never loses one. Records of one partition are sent in the order given,
// and kafka-go keeps that order across Writes while they succeed; after a
// failed Write, do not start a later Write for the same partitions before
// the retry succeeds, or order is lost.
//
// The error wraps what kafka-go reported: errors.Is works with kafka-go's
// Error codes (kafka.UnknownTopicOrPartition, kafka.NotLeaderForPartition,
// ...), with context errors, and errors.As with kafka.WriteErrors (one entry
// per message) and kafka.MessageTooLargeError.
//
// An empty msgs returns nil without contacting the brokers.
func (w *Writer) Write(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	kms := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		if m.Topic == "" {
			return fmt.Errorf("producers: write %d messages: message %d has no topic", len(msgs), i)
		}
		km := kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
		if len(m.Headers) > 0 {
			km.Headers = make([]kafka.Header, len(m.Headers))
			for j, h := range m.Headers {
				km.Headers[j] = kafka.Header{Key: h.Key, Value: h.Value}
			}
		}
		if w.prop != nil && m.TraceContext != nil {
			w.prop.Inject(m.TraceContext, telemetry.Headers(&km.Headers))
		}
		kms[i] = km
	}
	err := w.kw.WriteMessages(ctx, kms...)
	if err == nil {
		return nil
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return newWriteError(len(msgs), werrs)
	}
	return fmt.Errorf("producers: write %d messages: %w", len(msgs), err)
}

// Check asks the brokers for the metadata of topics and reports whether
// they answer and know every topic, for readiness: it shows that writes can
// work before there is anything to write. It is bounded by
// Options.WriteTimeout.
func (w *Writer) Check(ctx context.Context, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	c := &kafka.Client{Addr: w.kw.Addr, Transport: w.transport, Timeout: w.timeout}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("producers: metadata: %w", err)
	}
	if len(md.Brokers) == 0 {
		return errors.New("producers: metadata: no brokers")
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("producers: topic %q: %w", t.Name, t.Error)
		}
	}
	return nil
}

// Retries returns how many produce requests kafka-go sent again after a
// failure (a timeout, a dropped connection, a leader change) since
// NewWriter, over every Write, including Writes that then succeeded. Each
// one may have duplicated records that the brokers had written before the
// failure (delivery is at-least-once).
func (w *Writer) Retries() int64 {
	w.retriesMu.Lock()
	defer w.retriesMu.Unlock()
	w.retries += w.kw.Stats().Retries
	return w.retries
}

// Close flushes batches still being assembled, waits for writes in flight
// and closes the connections. Writes after Close fail.
func (w *Writer) Close() error {
	err := w.kw.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("producers: close writer: %w", err)
	}
	return nil
}

// writeError is a failed Write whose messages failed one by one: it unwraps
// to the kafka.WriteErrors and to each distinct cause, and its message names
// the causes once rather than once per message.
type writeError struct {
	msg    string
	werrs  kafka.WriteErrors
	causes []error
}

func newWriteError(n int, werrs kafka.WriteErrors) *writeError {
	var causes []error
	var texts []string
	seen := map[string]bool{}
	for _, e := range werrs {
		if e == nil {
			continue
		}
		s := e.Error()
		if !seen[s] {
			seen[s] = true
			causes = append(causes, e)
			texts = append(texts, s)
		}
	}
	msg := fmt.Sprintf("producers: write %d messages: %d failed: %s", n, werrs.Count(), strings.Join(texts, "; "))
	return &writeError{msg: msg, werrs: werrs, causes: causes}
}

func (e *writeError) Error() string { return e.msg }

func (e *writeError) Unwrap() []error {
	return append([]error{e.werrs}, e.causes...)
}

// OutputConfig is the output section of the configuration: where
// annotations and dead letters go, and how the writer sends them.
type OutputConfig struct {
	// Topic receives the annotation records. Required by run.
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives bad input with its reason. Required by run.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Compression is "snappy" (default), "none", "gzip", "lz4" or "zstd".
	Compression string `yaml:"compression"`
	// BatchTimeout is how long the writer waits to fill a batch. Default:
	// 2ms (kafka-go's own default of 1s would add a second to every write).
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// CreateTopics lets writes create missing output topics. Default:
	// false, so a typo in a topic name is an error, not a new topic.
	CreateTopics bool `yaml:"create_topics"`
	// Mode is what a document's output record is: "annotation" (default:
	// DESIGN.md's annotation record, keyed by the document id) or "enrich"
	// (the input event itself, byte for byte where untouched, with the
	// entities added at enrich.field, its key and headers kept; needs
	// input.format json).
	Mode string `yaml:"mode"`
	// Enrich says where an enriched event holds its entities.
	Enrich EnrichConfig `yaml:"enrich"`
}

// DefaultOutputConfig returns the output settings that zero values stand
// for.
func DefaultOutputConfig() OutputConfig {
	return OutputConfig{Compression: DefaultCompression, BatchTimeout: DefaultBatchTimeout, Mode: ModeAnnotation, Enrich: DefaultEnrichConfig()}
}

// Validate reports every problem of the settings, at their YAML keys.
func (c OutputConfig) Validate() error {
	var p problems.List
	if _, ok := compressionCodecs[c.Compression]; !ok {
		p.Addf("compression", "%q is not one of snappy, none, gzip, lz4, zstd", c.Compression)
	}
	problems.Positive(&p, "batch_timeout", c.BatchTimeout)
	if c.Mode != ModeAnnotation && c.Mode != ModeEnrich {
		p.Addf("mode", "%s is not one of annotation, enrich", quote(c.Mode))
	}
	p.Add("enrich", c.Enrich.Validate())
	if c.Topic != "" && c.Topic == c.DeadLetterTopic {
		p.Addf("dead_letter_topic", "must differ from topic")
	}
	return p.Err()
}
