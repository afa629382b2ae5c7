// Package producers is nerstream's Kafka output: annotation records and
// dead letters (DESIGN.md, "Records" and "Delivery").
//
// # Records
//
// AnnotationMessage turns a [record.Annotation] into a Message for the
// annotation topic, keyed by the document id.
//
// DeadLetter turns an input record that could not be annotated into a
// Message for the dead-letter topic: the record's own key, value and
// headers, followed by four headers, exported as constants:
//
//	nerstream-error             a short reason
//	nerstream-source-topic      the input record's topic
//	nerstream-source-partition  its partition, in decimal
//	nerstream-source-offset     its offset, in decimal
//
// A record re-fed from a dead-letter topic already carries these; DeadLetter
// replaces them, so each appears once and describes the latest failure.
//
// # Writer
//
// Writer writes Messages with kafka-go. Message is this package's own type,
// with [record.Header]s, so that callers do not depend on kafka-go. One
// Writer serves every output topic: each Message names its topic.
//
//   - Acknowledgement: produce requests ask for acks=all, and Write is
//     synchronous. It returns nil only when every message was acknowledged
//     by all in-sync replicas, which is what lets the consumer commit the
//     input offsets behind them.
//   - Failure: kafka-go retries retriable errors (leader changes, not
//     enough replicas, timeouts) up to Options.MaxAttempts times per batch;
//     beyond that Write returns an error wrapping kafka-go's, and the caller
//     retries the whole slice. Duplicates are possible (at-least-once);
//     loss is not. Writer.Retries counts kafka-go's retried requests.
//   - Partitioning: keyed records go to murmur2(key) mod partitions, as the
//     Java client and librdkafka's "murmur2_random" do, so annotations of
//     one document id always share a partition, whichever client wrote
//     them. Records without a key (dead letters of unkeyed input) go to a
//     random partition.
//   - Order: records of one partition are sent in the order given, across
//     Writes too while they succeed.
//   - Topics: a missing topic is an error unless Options.CreateTopics asks
//     the brokers to create it.
//   - Batching and compression: see Options; the defaults (snappy, 2ms
//     linger, 1000 records or 1 MiB per partition request) suit a
//     synchronous caller that writes one micro-batch at a time.
package producers
