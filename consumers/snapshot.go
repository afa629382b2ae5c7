package consumers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// SnapshotOptions configure [ReadSnapshot]. Zero values take the defaults.
type SnapshotOptions struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Topics are the topics to read. Required.
	Topics []string
	// ClientID names the reader to the brokers. Default: "nerstream".
	ClientID string
	// FetchMaxBytes bounds one fetch from one partition. Default: 1 MiB.
	FetchMaxBytes int
	// Decode is how record values become documents.
	Decode DecodeOptions
	// TLS and SASL secure the connections, as for a [Group].
	TLS  *tls.Config
	SASL sasl.Mechanism
}

// ReadSnapshot reads every record that the topics hold when it starts, from
// each partition's first offset to its end offset at that moment, and calls
// fn with each, in order of topic (as given), partition and offset. It
// joins no group and commits nothing: it is for batch jobs over a topic
// (nerstream distill), which keep their own progress. Records produced
// after the start are not read. A bad record comes to fn with Err set, as
// from [Claim.Next]. fn's error stops the read and is returned.
func ReadSnapshot(ctx context.Context, opts SnapshotOptions, fn func(Message) error) error {
	if len(opts.Brokers) == 0 || len(opts.Topics) == 0 {
		return errors.New("consumers: brokers and topics are required")
	}
	if opts.ClientID == "" {
		opts.ClientID = "nerstream"
	}
	if opts.FetchMaxBytes <= 0 {
		opts.FetchMaxBytes = 1 << 20
	}
	if opts.Decode.Format == "" {
		opts.Decode.Format = FormatJSON
	}
	dialer := &kafka.Dialer{ClientID: opts.ClientID, Timeout: 10 * time.Second, DualStack: true, TLS: opts.TLS, SASLMechanism: opts.SASL}
	for _, topic := range opts.Topics {
		parts, err := lookupPartitions(ctx, dialer, opts.Brokers, topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := readPartition(ctx, dialer, opts, p, fn); err != nil {
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

// readPartition reads one partition from its first offset to the end
// offset it has now.
func readPartition(ctx context.Context, dialer *kafka.Dialer, opts SnapshotOptions, p kafka.Partition, fn func(Message) error) error {
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
		Brokers:        opts.Brokers,
		Topic:          p.Topic,
		Partition:      p.ID,
		Dialer:         dialer,
		MinBytes:       1,
		MaxBytes:       opts.FetchMaxBytes,
		MaxWait:        250 * time.Millisecond,
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
		if err := fn(toMessage(m, opts.Decode, nil)); err != nil {
			return err
		}
		if m.Offset+1 >= last {
			return nil
		}
	}
}
