package consumers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/problems"
)

// SnapshotOptions configure [ReadSnapshot]. Zero values take the defaults.
type SnapshotOptions struct {
	// Kafka is the brokers (required) and the connections' security; the
	// group settings are not used.
	Kafka KafkaConfig
	// Input is the topics to read (required) and how their records are
	// fetched and decoded.
	Input InputConfig
}

// ReadSnapshot reads every record that the topics hold when it starts, from
// each partition's first offset to its end offset at that moment, and calls
// fn with each, in order of topic (as given), partition and offset. It
// joins no group and commits nothing: it is for batch jobs over a topic
// (nerstream distill), which keep their own progress. Records produced
// after the start are not read. A bad record comes to fn with Err set, as
// from [Claim.Next]. fn's error stops the read and is returned.
func ReadSnapshot(ctx context.Context, opts SnapshotOptions, fn func(Message) error) error {
	k, in := defaults.Fill(opts.Kafka, DefaultKafkaConfig()), defaults.Fill(opts.Input, DefaultInputConfig())
	if len(k.Brokers) == 0 || len(in.Topics) == 0 {
		return errors.New("consumers: brokers and topics are required")
	}
	var p problems.List
	p.Add("kafka", k.Validate())
	p.Add("input", in.Validate())
	if err := p.Err(); err != nil {
		return fmt.Errorf("consumers: %w", err)
	}
	tlsCfg, mech, err := k.Security()
	if err != nil {
		return fmt.Errorf("consumers: %w", err)
	}
	dialer := k.dialer(tlsCfg, mech)
	read := snapshotRead{brokers: k.Brokers, input: in, decode: DecodeOptions{Format: in.Format, Limits: Limits{MaxBytes: in.MaxBytes}}}
	for _, topic := range in.Topics {
		parts, err := lookupPartitions(ctx, dialer, k.Brokers, topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := read.partition(ctx, dialer, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookupPartitions asks the first broker that answers for topic's
// partitions, sorted by id.
func lookupPartitions(ctx context.Context, dialer *kafka.Dialer, brokers []string, topic string) ([]kafka.Partition, error) {
	var errs []error
	for _, b := range brokers {
		parts, err := dialer.LookupPartitions(ctx, "tcp", b, topic)
		if err == nil {
			if len(parts) == 0 {
				return nil, fmt.Errorf("consumers: topic %q has no partitions", topic)
			}
			slices.SortFunc(parts, func(a, b kafka.Partition) int { return a.ID - b.ID })
			return parts, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("consumers: looking up the partitions of %q: %w", topic, errors.Join(errs...))
}

// snapshotRead is what reading a partition needs.
type snapshotRead struct {
	brokers []string
	input   InputConfig
	decode  DecodeOptions
}

// partition reads one partition from its first offset to the end offset it
// has now.
func (sr snapshotRead) partition(ctx context.Context, dialer *kafka.Dialer, p kafka.Partition, fn func(Message) error) error {
	leader := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
	conn, err := dialer.DialLeader(ctx, "tcp", leader, p.Topic, p.ID)
	if err != nil {
		return fmt.Errorf("consumers: %s/%d: %w", p.Topic, p.ID, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return fmt.Errorf("consumers: %s/%d: reading its offsets: %w", p.Topic, p.ID, err)
	}
	if first >= last {
		return nil // empty
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        sr.brokers,
		Topic:          p.Topic,
		Partition:      p.ID,
		Dialer:         dialer,
		MinBytes:       1,
		MaxBytes:       sr.input.FetchMaxBytes,
		MaxWait:        sr.input.FetchMaxWait,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
	})
	defer r.Close()
	// SetOffset cannot fail on a fresh reader that has no group.
	_ = r.SetOffset(first)
	for {
		// The last offsets may be transaction markers, which are never
		// returned: a fetch that finds nothing more, with the reader
		// past last, is the end too.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				if r.Offset() >= last {
					return nil
				}
				continue
			}
			return fmt.Errorf("consumers: %s/%d: %w", p.Topic, p.ID, err)
		}
		if err := fn(toMessage(m, sr.decode, nil)); err != nil {
			return err
		}
		if m.Offset+1 >= last {
			return nil
		}
	}
}
