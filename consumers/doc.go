// Package consumers is nerstream's Kafka input: it decodes and validates
// input records into documents. A value is a JSON object or plain text
// (input.format), snappy-compressed when its content-encoding header says so.
//
// So far it holds the decoding of input values (DESIGN.md, "Records"),
// which `nerstream annotate` shares; group membership, fetching and offset
// tracking join it with the streaming pipeline.
package consumers
