// Package producers is nerstream's Kafka output: annotation records and
// dead letters.
//
// So far it holds the annotation record (DESIGN.md, "Records"), which
// `nerstream annotate` writes too; the Kafka writers join it with the
// streaming pipeline.
package producers
