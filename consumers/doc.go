// Package consumers is nerstream's Kafka input.
//
//   - [Group] is one member of a consumer group. Membership and commits go
//     through kafka-go's ConsumerGroup/Generation API, so every commit
//     carries the generation that owns its partition and a late one is
//     refused (kafka-go issue #1308 is why kafka.Reader's group mode is not
//     used). Each claimed partition is a [Claim], fetched by a
//     partition-only kafka.Reader.
//   - [ReadSnapshot] reads what topics hold at one moment, from their
//     first offsets, without a group or commits: the input of batch jobs
//     such as nerstream distill.
//   - [Decode] turns a record value into a [record.Document], or a [*record.InputError]
//     whose Reason goes into the dead letter's nerstream-error header. A
//     value is a JSON object or plain text (input.format), snappy-compressed
//     when its content-encoding header says so. `nerstream annotate` shares
//     [DecodeJSON].
//
// Offset tracking (what may be committed) is the pipeline package's; this
// package only sends the commits it is given.
package consumers
