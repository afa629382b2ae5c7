// Package model holds the UniNER task, independent of any inference runtime.
//
// UniNER (Zhou et al., 2023, arXiv 2308.03279) answers one question per entity
// type about one passage, as a JSON list of mention strings. This package turns
// documents into those questions, parses the answers and finds the mentions in
// the text:
//
//   - [Template] renders the exact UniNER prompt, byte for byte, in its three
//     variants, as a [Prompt] made of [Part]s so that an engine can keep the
//     document's own text out of special-token parsing.
//   - [ParseOfficial] and [ParseLenient] read the model's answer.
//   - [Aligner] finds every occurrence of a mention in the text, as Unicode
//     code-point offsets.
//   - [Chunker] splits a document too long for the model's context into
//     overlapping windows.
//   - Scores: an engine gives each generated token's log-probability
//     ([Completion].Tokens), and [Recognizer] turns them into each
//     entity's score and each empty answer's (score.go says exactly how);
//     RecognizerOptions.MinScore drops the lower-scored entities, and
//     RecognizerOptions.Calibration maps raw scores through a fitted
//     [Calibration] first.
//   - [Engine] is what an inference runtime implements (see model/llama);
//     [Recognizer] drives an Engine from documents to annotations.
//   - [CachingEngine] answers prompts seen before from a bounded [Cache]
//     (model.cache), computing identical prompts in flight once.
//
// The package does no I/O and knows nothing of Kafka or llama.cpp, in the way
// that database/sql knows nothing of any one database.
package model
