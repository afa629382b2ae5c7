// Package distill makes UniNER training data from a team's own documents,
// in the recipe of the UniNER paper (Zhou et al., 2023, §2 "targeted
// distillation"): sample passages, have a strong teacher LLM list every
// entity with a free-form type, and turn the answers into
// conversation-style instruction data with negative entity types, in the
// Pile-NER format that UniNER's training code (and other trainers of
// ShareGPT-style conversations) read. Training itself stays outside.
//
// The steps, each usable alone, and [Run], which chains them:
//
//   - [Split] cuts documents into passages of at most 256 tokens
//     ([WhitespaceTokens] by default, or any model.TokenCounter, such as
//     the student's GGUF vocabulary); [Dedup] drops exact and
//     near-duplicate passages (MinHash over word 5-shingles); [Sampler]
//     draws a seeded uniform sample.
//   - [Teacher] sends each passage to an OpenAI-compatible chat endpoint
//     with the paper's prompt ([SystemMessage], then [Instruction] and the
//     passage), at temperature 0, with a concurrency
//     bound, request and token rate limits, and retries. [Checkpoint]
//     journals every answer as it comes, so that an interrupted run never
//     pays for a passage twice.
//   - [ParseTuples] reads the teacher's list of ("mention", "type") tuples
//     however it is written; [Filter] keeps the mentions found verbatim in
//     the passage, with [NormalizeType]d types.
//   - [Build] makes one record per passage: "Text: …", "I've read this
//     text.", then one "What describes {type} in the text?" pair per type
//     found, answered with the JSON list of its mentions, plus negative
//     types answered "[]". Negatives are drawn by [NegativeSampler] with
//     probability proportional to each type's frequency in the whole
//     dataset, the paper's best variant (Table 4, +5.7 F1 over uniform
//     sampling); the pairs are shuffled with a seed.
//   - [Write] and [Read] handle the output; [ComputeStats] gives the
//     figures the paper reports for Pile-NER.
//
// Decisions:
//
//   - Output is deterministic: the same documents, answers and seed give
//     the same file, byte for byte, whatever the concurrency and the
//     order in which answers came. Records follow the order of the
//     passages, each passage's shuffle is seeded by the seed and its
//     position, and the negatives need every type's frequency, so records
//     are built only once all answers are in.
//   - Answers are written as Python's json.dumps writes them (", "
//     between items, non-ASCII as \uXXXX), as in UniNER's released data;
//     the passage text keeps its UTF-8.
//   - A mention must occur verbatim in its passage, else it is dropped:
//     the student is asked to extract, not to paraphrase. Types are
//     lower-cased and their white space collapsed; plurals are kept as
//     written.
//   - The checkpoint's key is a hash of the teacher's settings and the
//     passage, so a checkpoint made with another teacher or instruction
//     is never taken for this one's answers.
//   - A passage the teacher refuses for good (a 400: too long, a content
//     filter) is left out and reported; one that still fails after the
//     retries makes the run incomplete, with no output written, and the
//     next run asks only what is missing. A refused API key, or an unknown
//     URL or model, stops the run at once.
//   - The paper publishes no count of negative types per passage; the
//     count is the caller's choice ([NegativePolicy]).
package distill
