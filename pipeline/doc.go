// Package pipeline moves documents from claimed input partitions through the
// model to the output, and decides what may be committed.
//
// The flow for one claimed partition (see [Pipeline.Consume]):
//
//	Claim.Next → in-flight slot → micro-batch → Recognizer → Encoder → Sink.Write → Claim.Commit
//
// Along the way:
//
//   - Micro-batches gather documents from every claimed partition and close
//     on Options.MaxDocs, Options.MaxBytes or Options.Linger, whichever
//     comes first. Options.Workers batches go to the model at once.
//   - Options.MaxInFlight bounds the documents fetched and not yet
//     acknowledged, over all partitions. At the bound, no partition
//     fetches (back-pressure): memory stays bounded, and so do the
//     duplicates that a crash can cause.
//   - Each partition's outputs are written in input order, one write at a
//     time, and a per-partition tracker commits the offset below which every record
//     is acknowledged by the sink. Bad input (a rejected decode, or a
//     document the model refuses) becomes a dead letter in its place and is
//     committed like any other record.
//   - A failed commit is retried with the same back-off while the
//     partition goes on writing, and readiness (telemetry.CheckCommit) is
//     false. Once the records written and not committed reach MaxInFlight
//     over all partitions, a partition whose commits fail writes no more
//     until one succeeds: a crash in a commit outage then redelivers about
//     twice MaxInFlight records at most, not everything since the last
//     commit. The held records keep their in-flight slots, so fetching
//     stops too.
//   - A model failure on one document (an error in its Annotation) is
//     retried with exponential back-off; after Options.Retry.MaxAttempts
//     the record becomes a dead letter with reason [record.ReasonInferenceFailed].
//     A failure of the whole call (Recognize returns an error) is first
//     told apart: a probe (a canned one-line document) goes to the
//     recognizer. If the probe fails too, the engine is down (closed, a
//     remote GPU tier unreachable): no document is blamed, and the batch
//     is retried without end, with back-off capped at
//     Options.Retry.MaxBackoff, held uncommitted while readiness is false.
//     If the probe passes, the batch's documents are at fault (a poison
//     document): the batch is split in halves, each retried on its own,
//     down to single documents, so that the others go through and a
//     document that fails the working engine alone spends its attempts
//     and becomes an inference_failed dead letter. Sink
//     failures are likewise retried without end and never become dead
//     letters.
//   - When a claim's context ends (a rebalance or a shutdown), fetching
//     stops at once and the work already in flight has
//     Options.DrainTimeout to be written and committed through the claim,
//     which still belongs to the generation that fetched it. What is left
//     then is abandoned, uncommitted, for the partition's next owner.
//
// The package knows nothing of Kafka clients, record schemas or llama.cpp: it
// talks to them through [Claim], [Sink], [Encoder] and [Recognizer], which
// the stream package fills with the consumers, producers and model packages.
package pipeline
