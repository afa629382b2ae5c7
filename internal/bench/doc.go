// Package bench holds the benchmark harnesses that `nerstream bench` runs
// and prints as JSON:
//
//   - [Engine]: the in-process engine's batched, prefix-shared decoding
//     against answering one prompt at a time, and its prefill against the
//     one-batch ceiling.
//   - [Remote]: the openai engine against OpenAI-compatible servers, beside
//     an in-process baseline.
//   - [Pipeline]: the streaming path (stream, the code of `nerstream run`)
//     against a plain kafka-go consume → produce loop on the same embedded
//     broker, which runs in a child process ([RunBroker]), with telemetry
//     phases to price tracing.
//   - [Scale]: throughput against the members of one consumer group, each
//     a process of its own ([RunMember]), with a model that sleeps per
//     batch; join and leave rebalances and their duplicates.
//
// It is internal: its figures are for BENCHMARKS.md, not an API.
package bench

import "errors"

// ErrOptions is wrapped by the errors that say the options are wrong.
var ErrOptions = errors.New("bad benchmark options")
