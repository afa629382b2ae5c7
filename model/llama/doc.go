// Package llama is nerstream's in-process inference engine: a thin cgo
// binding over llama.cpp, compiled from the sources vendored in
// github.com/ollama/ollama v0.24.0 (llama.cpp commit ec98e2002), and a
// continuous-batching scheduler that implements [model.Engine].
//
// # Scheduling
//
// One llama context serves many sequences at once (n_seq_max, with a
// unified KV cache). For each prompt group (one passage, asked about several
// entity types) the engine tokenizes every prompt, finds the prefix they
// share on token ids, and decodes that prefix once for all of them, each
// token carrying every sequence id of the group. Each prompt's tail and its
// generated tokens then go through llama_decode together with other
// documents' work, and a finished sequence frees its KV cells and its
// sequence id at once for the next group. A group too large for the cache
// is split, and each part decodes the prefix again (past the resident
// prompt prefix, below).
//
// # Resident prompt prefix
//
// Every UniNER prompt begins with the same tokens: BOS and the preamble
// ("A virtual assistant answers questions from a user based on the
// provided text. USER: Text:"). The scheduler keeps them in the KV cache
// for the engine's life under a sequence id of its own (one past
// Sequences: the context has Sequences+1), and a new group attaches to
// those cells with llama_memory_seq_cp, which in a unified KV cache adds
// the group's sequence ids to the cells without copying or taking any;
// the group decodes only the rest, its positions continuing from the
// shared length. For log lines of 15-30 tokens the preamble is a large
// share of the prefill, and each document's copy of it would also
// lengthen attention for every token decoded beside it.
//
// The prefix is learnt, never assumed: the longest common token prefix of
// two documents' prompts (parts of one group split for room are one
// document), when it is at least minResident tokens long; a group attaches
// to as much of it as all its prompts share, leaving each prompt a token
// of its own. When a new document shares less of it (two first documents
// that began alike, a log line repeated, taught it more than the
// preamble), it is cut back to that, if still minResident tokens long,
// once no active group uses more. Admission counts its cells once: reserved while it lives,
// and each group reserves only what it adds. It goes when the engine
// closes, after a failed decode (whatever llama.cpp left in the cache),
// when work that runs alone (the one-at-a-time baseline, the prefill
// probe) or a group that fits the cache only without it needs its cells
// (it is then learnt again), and when it is turned off. Without a spare
// sequence id (Sequences at llama.cpp's limit of 256), without a unified
// cache, or when documents share less than minResident tokens, the engine
// decodes as it did before.
//
// Answers are the same with and without it: the tests compare them on
// real llama.cpp (ExactCache; scores agree to about 1e-7, since the
// preamble's keys and values come from a batch of another make-up, as in
// batched against one-at-a-time decoding) and on the fake decoder, whose
// logits depend on every token a sequence holds. Options.NoResidentPrefix
// and Engine.SetResidentPrefix turn it off, so that bench engine
// --resident-rounds can measure what it saves in one run (BENCHMARKS.md,
// Resident prompt prefix).
//
// # Decoding
//
// Decoding is greedy, as the official UniNER code. By default a GBNF grammar
// holds every answer to a JSON array of strings; generation stops at EOS,
// when the array closes, or after MaxNewTokens. The grammar is checked on
// the arg-max token first and applied to the whole vocabulary only when it
// refuses that token, so it costs little.
//
// # Scores
//
// Each generated token gets the natural log of the probability the model
// gave it (model.Completion.Tokens), from the logits row it was sampled
// from: the log-softmax of that token, logit minus the log-sum-exp over
// the whole vocabulary, at no extra decode (package model turns these into
// entity scores). The log-sum-exp is one vectorised pass in C (helpers.c,
// AVX2 with a Cephes expf polynomial, summed in double; agreeing with a
// plain float64 one to 1e-6).
//
// The distribution is the model's own, before the answer grammar masks it.
// The grammar removes only tokens that cannot continue a JSON list of
// strings, and greedy decoding takes the arg-max, which it allows at most
// steps; renormalising over what it allows would call it on the whole
// vocabulary at every step (the costly path that the sampler avoids) and
// would give every forced token (a comma, a closing bracket) probability
// 1, hiding the model's doubt. It is also what OpenAI-compatible servers
// report as log-probabilities (vLLM and llama-server give the raw
// distribution's), so that both engines score alike. A call
// with model.GenerateOptions.NoScores skips the pass, for measuring its
// cost (bench engine --scores-rounds).
//
// # Safety
//
// llama.cpp aborts the whole process on a failed assertion, so every input
// is checked in Go first: prompts that would not fit the context, invalid
// UTF-8, token ids and batch sizes come back as Go errors.
//
// Model files too: [Load] runs the gate of package gguf
// (gguf.File.CheckLlama, for the whole model, or for the vocabulary with
// Options.VocabOnly) before llama.cpp opens the file, whoever calls it, so
// that a file llama.cpp would abort on (or read past an array's end in)
// comes back as one line wrapping gguf.ErrFormat or gguf.ErrModel. This is
// why this package imports model/gguf, a standard-library-only leaf,
// besides model. TestHostileFiles runs gguf's hostile corpus through Load
// and the real llama.cpp, each file in a child process of the test binary,
// so that an abort fails the case it is; with NERSTREAM_HOSTILE_UNGATED=1
// it runs the corpus past the gate instead and logs what llama.cpp does
// with each file.
//
// A load that llama.cpp refuses says every error line it logged during the
// load, in order, joined into one line of about a kilobyte at most (with a
// count of the lines left out), not only the last. Loads are serialized so
// that those lines are the load's own.
//
// # The cgo boundary
//
// Every call into C is in cgo.go, behind small Go types: the model, its
// vocabulary, the context (decode a batch, a row of logits, remove a
// sequence) and the grammar sampler. The scheduler fills a plain Go batch,
// which only cgo.go copies into a llama_batch. The scheduler, the
// sampler's policy and the stop rules are plain Go over two interfaces
// declared where they are used (decoder, grammar), so that their tests run
// against fakes, without llama.cpp. llama_decl.h restates the part of
// llama.h the binding uses; layout_test.go checks its structs, prototypes
// and constants against the pinned headers.
//
// # Global state
//
// llama.cpp's backend and log callback are process-wide: the first [Load]
// starts the backend and routes llama.cpp's log lines to log/slog, at
// debug level. [Options.Logger] chooses the logger: the latest Load that
// gives one wins, for the lines of every engine, since llama.cpp's lines
// do not say which model they are about. Until one is given, lines go to
// slog.Default(). Error lines also feed the errors that Load and decoding
// return.
package llama
