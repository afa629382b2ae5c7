package consumers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestReadSnapshot reads two topics from a kfake broker over kafka-go: every
// record once, in topic, partition and offset order, decoded as a Claim
// decodes (snappy, bad JSON and a tombstone as Err), with an empty
// partition and an empty topic in the way. (A tombstone, a record with a
// null value, was an invalid_json dead letter; it is empty_value.)
func TestReadSnapshot(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "a"), kfake.SeedTopics(2, "b"), kfake.SeedTopics(1, "empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type rec struct {
		topic     string
		partition int
		m         kafka.Message
	}
	var recs []rec
	// Topic a: partitions 0 and 2 (1 stays empty); topic b: partition 1.
	for i := range 5 {
		recs = append(recs, rec{"a", 0, kafka.Message{Value: fmt.Appendf(nil, `{"id":"a0-%d","text":"t"}`, i)}})
	}
	recs = append(recs,
		rec{"a", 2, kafka.Message{Value: []byte(`{"id":"a2-0","text":"t"}`)}},
		rec{"a", 2, kafka.Message{Value: []byte(`not json`)}},
		rec{"a", 2, kafka.Message{Value: snappy.Encode(nil, []byte(`{"id":"a2-2","text":"zipped"}`)),
			Headers: []kafka.Header{{Key: "content-encoding", Value: []byte("snappy")}}}},
		rec{"a", 2, kafka.Message{Key: []byte("deleted"), Value: nil}}, // a tombstone
		rec{"b", 1, kafka.Message{Value: []byte(`{"id":"b-0","text":"t"}`)}},
	)
	for _, r := range recs {
		if err := produceTo(ctx, brokers[0], r.topic, r.partition, r.m); err != nil {
			t.Fatal(err)
		}
	}

	var got []string
	err = ReadSnapshot(ctx, SnapshotOptions{Kafka: KafkaConfig{Brokers: brokers}, Input: InputConfig{Topics: []string{"a", "empty", "b"}}}, func(m Message) error {
		switch {
		case m.Err != nil:
			got = append(got, fmt.Sprintf("%s/%d@%d:%s", m.Topic, m.Partition, m.Offset, m.Err.Reason))
		default:
			got = append(got, fmt.Sprintf("%s/%d@%d:%s:%s", m.Topic, m.Partition, m.Offset, m.Doc.ID, m.Doc.Text))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{
		"a/0@0:a0-0:t", "a/0@1:a0-1:t", "a/0@2:a0-2:t", "a/0@3:a0-3:t", "a/0@4:a0-4:t",
		"a/2@0:a2-0:t", "a/2@1:invalid_json", "a/2@2:a2-2:zipped", "a/2@3:empty_value",
		"b/1@0:b-0:t",
	})
	if fmt.Sprint(got) != want {
		t.Errorf("read\n%v\nwant\n%v", got, want)
	}

	// fn's error stops the read.
	stop := fmt.Errorf("stop (test)")
	n := 0
	err = ReadSnapshot(ctx, SnapshotOptions{Kafka: KafkaConfig{Brokers: brokers}, Input: InputConfig{Topics: []string{"a"}}}, func(Message) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("after fn's error: %v, %d calls", err, n)
	}
	// A topic that does not exist is an error, not a hang.
	err = ReadSnapshot(ctx, SnapshotOptions{Kafka: KafkaConfig{Brokers: brokers}, Input: InputConfig{Topics: []string{"missing"}}}, func(Message) error { return nil })
	if err == nil {
		t.Error("a missing topic read without error")
	}
}

// produceTo writes m to one partition through its leader.
func produceTo(ctx context.Context, broker, topic string, partition int, m kafka.Message) error {
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.WriteMessages(m)
	return err
}
