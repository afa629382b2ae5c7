// Package consumers is nerstream's Kafka input: it decodes and validates
// input records into documents.
//
// So far it holds the decoding of input values (DESIGN.md, "Records"),
// which `nerstream annotate` shares; group membership, fetching and offset
// tracking join it with the streaming pipeline.
package consumers
