package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/record"
	"github.com/nerstream/nerstream/telemetry"
)

// GroupOptions configure a [Group]. Zero values take the defaults.
type GroupOptions struct {
	// Kafka is the brokers, the group and the connections' security;
	// Brokers and GroupID are required. Its timers are the group's:
	// a member that misses heartbeats for SessionTimeout is expelled, a
	// rebalance is noticed within a HeartbeatInterval, and members must
	// rejoin within RebalanceTimeout, which bounds how long a claim may
	// drain.
	Kafka KafkaConfig
	// Input is the topics (required) and how their records are fetched
	// and decoded.
	Input InputConfig
	// MaxTypes bounds the entity types of one document; a record with
	// more is refused (too_many_entity_types). Default: 0, no bound.
	MaxTypes int
	// QueueCapacity is how many fetched records a partition holds before
	// they are taken. Default: 100.
	QueueCapacity int
	// Logger receives group events. Default: none.
	Logger *slog.Logger
	// Propagator extracts the trace context that producers put in the
	// records' headers (Message.TraceContext). Default: none.
	Propagator propagation.TextMapPropagator
	// Health hears whether the member holds a generation
	// (telemetry.CheckConsumerGroup): ready once it joins, failing while
	// it cannot join or between generations. Default: none.
	Health *telemetry.Health
}

// Group is one member of a consumer group. Membership goes through
// kafka-go's ConsumerGroup and Generation API, not kafka.Reader's group
// mode: a Reader accepts a commit sent after a rebalance, and that commit
// moves the new owner's offset backwards (kafka-go issue #1308). Here every
// commit goes through the generation that handed out the partition, so a
// late one is refused by the coordinator.
type Group struct {
	opts   GroupOptions
	log    *slog.Logger
	dialer *kafka.Dialer
	decode DecodeOptions
}

// NewGroup checks the options and reads the files of the security
// settings.
func NewGroup(opts GroupOptions) (*Group, error) {
	opts.Kafka = defaults.Fill(opts.Kafka, DefaultKafkaConfig())
	opts.Input = defaults.Fill(opts.Input, DefaultInputConfig())
	opts.QueueCapacity = cmp.Or(opts.QueueCapacity, 100)
	var p problems.List
	if len(opts.Kafka.Brokers) == 0 {
		p.Addf("kafka.brokers", "required")
	}
	if len(opts.Input.Topics) == 0 {
		p.Addf("input.topics", "required")
	}
	p.Add("kafka", opts.Kafka.Validate())
	p.Add("input", opts.Input.Validate())
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	tlsCfg, mech, err := opts.Kafka.Security()
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	sel, err := opts.Input.Fields.Selector()
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{opts: opts, log: log, dialer: opts.Kafka.dialer(tlsCfg, mech),
		decode: DecodeOptions{Format: opts.Input.Format, Limits: Limits{MaxBytes: opts.Input.MaxBytes, MaxTypes: opts.MaxTypes}, Fields: sel}}, nil
}

// Handler processes one claimed partition. It must return soon after ctx
// ends: the group cannot move to its next generation, or leave, before
// every handler of the current one has returned.
type Handler func(ctx context.Context, c *Claim) error

// Run joins the group and calls handle for every partition of every
// generation, each in its own goroutine, until ctx ends. Then it waits for
// the handlers to return and leaves the group.
func (g *Group) Run(ctx context.Context, handle Handler) error {
	k := g.opts.Kafka
	start := kafka.FirstOffset
	if k.StartOffset == StartLatest {
		start = kafka.LastOffset
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                k.GroupID,
		Brokers:           k.Brokers,
		Dialer:            g.dialer,
		Topics:            g.opts.Input.Topics,
		StartOffset:       start,
		SessionTimeout:    k.SessionTimeout,
		HeartbeatInterval: k.HeartbeatInterval,
		RebalanceTimeout:  k.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		Logger:            kafka.LoggerFunc(func(f string, a ...any) { g.log.Debug(fmt.Sprintf(f, a...)) }),
		ErrorLogger:       kafka.LoggerFunc(func(f string, a ...any) { g.log.Warn(oneLine(fmt.Sprintf(f, a...))) }),
	})
	if err != nil {
		return fmt.Errorf("consumers: %w", err)
	}
	defer cg.Close() // waits for the handlers, then leaves the group
	for {
		gen, err := cg.Next(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed):
			return nil
		case err != nil:
			// kafka-go backs off and joins again by itself.
			g.log.Warn("consumer group: joining failed; retrying", "group", g.opts.Kafka.GroupID, "err", err)
			g.opts.Health.Set(telemetry.CheckConsumerGroup, fmt.Errorf("joining group %q: %w", g.opts.Kafka.GroupID, err))
			continue
		}
		g.opts.Health.Set(telemetry.CheckConsumerGroup, nil)
		gen.Start(func(gctx context.Context) {
			// kafka-go starts the next generation only after every
			// function of this one has returned, so this cannot
			// overwrite the next generation's "ready".
			<-gctx.Done()
			g.opts.Health.Set(telemetry.CheckConsumerGroup, fmt.Errorf("generation %d ended; rejoining group %q", gen.ID, g.opts.Kafka.GroupID))
		})
		var parts []string
		for topic, assigned := range gen.Assignments {
			for _, a := range assigned {
				parts = append(parts, fmt.Sprintf("%s/%d@%d", topic, a.ID, a.Offset))
				c := g.claim(gen, topic, a)
				gen.Start(func(gctx context.Context) {
					defer c.reader.Close()
					if err := handle(gctx, c); err != nil {
						g.log.Warn("partition handler failed", "topic", c.Topic, "partition", c.Partition, "err", err)
					}
				})
			}
		}
		g.log.Info("consumer group: generation", "group", g.opts.Kafka.GroupID, "generation", gen.ID, "member", gen.MemberID, "partitions", strings.Join(parts, " "))
	}
}

func (g *Group) claim(gen *kafka.Generation, topic string, a kafka.PartitionAssignment) *Claim {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        g.opts.Kafka.Brokers,
		Topic:          topic,
		Partition:      a.ID,
		Dialer:         g.dialer,
		MinBytes:       1,
		MaxBytes:       g.opts.Input.FetchMaxBytes,
		MaxWait:        g.opts.Input.FetchMaxWait,
		QueueCapacity:  g.opts.QueueCapacity,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    kafka.LoggerFunc(func(f string, a ...any) { g.log.Warn(oneLine(fmt.Sprintf(f, a...))) }),
	})
	// SetOffset cannot fail on a fresh reader that has no group.
	_ = r.SetOffset(a.Offset)
	return &Claim{Topic: topic, Partition: a.ID, Start: a.Offset, gen: gen, reader: r, decode: g.decode, prop: g.opts.Propagator}
}

// Claim is one partition handed to this member by one generation.
type Claim struct {
	Topic     string
	Partition int
	// Start is the committed offset the claim starts from, or
	// kafka.FirstOffset (-2) or kafka.LastOffset (-1) when the group has
	// none.
	Start int64

	gen    *kafka.Generation
	reader *kafka.Reader
	decode DecodeOptions
	prop   propagation.TextMapPropagator
}

// Message is one fetched record with its decoded document, or the reason it
// cannot be one.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []record.Header
	Time      time.Time
	// HighWaterMark is the partition's end offset when the record was
	// fetched: the lag is HighWaterMark - committed offset.
	HighWaterMark int64
	// TraceContext holds the trace context of the record's producer, from
	// its headers, when the group has a Propagator and the headers carry
	// one; else nil. It is never cancelled.
	TraceContext context.Context
	// Doc is the decoded document, when Err is nil.
	Doc record.Document
	// Err is a *record.InputError when the value is not a valid document: the
	// record belongs in the dead-letter topic with Err.Reason.
	Err *record.InputError
}

// Next fetches the next record of the partition and decodes it. Only a
// failure to fetch (ctx's end) is an error; a bad record is a Message with
// Err set.
func (c *Claim) Next(ctx context.Context) (Message, error) {
	m, err := c.reader.FetchMessage(ctx)
	if err != nil {
		return Message{}, err
	}
	return toMessage(m, c.decode, c.prop), nil
}

// toMessage decodes a fetched record; prop, when set, extracts its trace
// context.
func toMessage(m kafka.Message, decode DecodeOptions, prop propagation.TextMapPropagator) Message {
	msg := Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time, HighWaterMark: m.HighWaterMark}
	if prop != nil && len(m.Headers) > 0 {
		ctx := prop.Extract(context.Background(), telemetry.Headers(&m.Headers))
		if ctx != context.Background() {
			msg.TraceContext = ctx
		}
	}
	var encoding string
	if len(m.Headers) > 0 {
		// The one copy of the headers on the way through: pipeline and
		// producers pass this slice on.
		msg.Headers = make([]record.Header, 0, len(m.Headers))
	}
	for _, h := range m.Headers {
		msg.Headers = append(msg.Headers, record.Header{Key: h.Key, Value: h.Value})
		if strings.EqualFold(h.Key, "content-encoding") {
			encoding = string(h.Value)
		}
	}
	doc, err := Decode(m.Value, encoding, decode)
	var de *record.InputError
	switch {
	case err == nil:
		msg.Doc = doc
	case errors.As(err, &de):
		msg.Err = de
	default:
		msg.Err = &record.InputError{Reason: record.ReasonInvalidValue, Detail: oneLine(err.Error())}
	}
	return msg
}

// Commit commits offset, the next offset to read, through the claim's
// generation. Once the generation is over it fails, so a late commit never
// moves the next owner's offset: the generation's connection to the
// coordinator is closed when it ends, and a handler that overruns the
// rebalance is refused by the coordinator itself (ILLEGAL_GENERATION or
// UNKNOWN_MEMBER_ID).
func (c *Claim) Commit(offset int64) error {
	if offset < 0 {
		return nil
	}
	err := c.gen.CommitOffsets(map[string]map[int]int64{c.Topic: {c.Partition: offset}})
	if err != nil {
		return fmt.Errorf("commit %s/%d@%d in generation %d: %w", c.Topic, c.Partition, offset, c.gen.ID, err)
	}
	return nil
}
