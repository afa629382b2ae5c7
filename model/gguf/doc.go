// Package gguf reads and writes GGUF files, the model format of llama.cpp, and
// writes synthetic LLaMA models for tests and benchmarks.
//
//   - [Open] and [Read] parse a GGUF file's header: its metadata ([KV]s) and
//     its tensor descriptions ([TensorInfo]), never the tensor data. They are
//     written for hostile input: every length and count is bounded by the
//     bytes left in the file, unknown value and tensor types are refused, and
//     tensor data must lie inside the file. Any defect gives one error that
//     wraps [ErrFormat] and names what is wrong.
//   - [Write] writes a GGUF version 3 file, laying out and aligning the tensor
//     data and streaming it from a callback, so that a file of any size is
//     written in bounded memory.
//   - [Synth] writes a LLaMA model with random weights in one of the [Presets]
//     shapes ("tiny", "small", "7b"): the metadata and tensors that
//     llama.cpp's LLaMA loader expects, with the built-in SentencePiece-style
//     vocabulary of [SynthVocab] or a real one taken from a GGUF file by
//     [ReadVocab].
//   - [Describe] summarises a file for `nerstream model info`.
//   - [File.CheckLlama] (and [OpenLlama]) is the gate before llama.cpp:
//     see below.
//
// [GGMLType] describes ggml's tensor types (block and byte sizes, as in
// ggml.c's type_traits), [FileType] llama.cpp's general.file_type values.
//
// The layout (all little-endian): the magic "GGUF", a uint32 version, a
// uint64 tensor count, a uint64 metadata count, the metadata (key, uint32
// value type, value), the tensor descriptions (name, uint32 dimension count,
// uint64 dimensions, uint32 ggml type, uint64 offset into the data section),
// padding to the alignment (general.alignment, 32 by default), and the data
// section, each tensor at its aligned offset.
//
// # The gate before llama.cpp
//
// llama.cpp trusts a model file: on some malformed files it fails an
// assertion (GGML_ASSERT, GGML_ABORT) or throws past its own catch, and
// the process dies with SIGABRT; on others it reads past an array's end or
// divides by zero. [File.CheckLlama] checks, in Go, on the header alone,
// everything that the pinned llama.cpp (ollama v0.24.0's vendored copy)
// reads from a LLaMA model, and package llama calls it before every load.
// It was written from llama-model-loader.cpp, llama-model.cpp
// (load_hparams, load_tensors), llama-vocab.cpp, llama-hparams.cpp and
// ggml's gguf.cpp, and each rule is in the hostile corpus of package
// gguftest, which package llama runs through llama.cpp itself. It checks:
//
//   - the file's structure, as ggml's reader takes it (beyond what [Read]
//     refuses already): no empty key (an assertion), no NUL byte in a key
//     or a tensor name (C finds keys with strcmp, so such a key shadows
//     another), no array of arrays, general.alignment a uint32 (an
//     assertion), tensor names under 64 bytes, no dimension of 0 (ggml's
//     reader divides by each), ggml's own bound on the element count, and
//     each tensor's data right after the one before it (what ggml
//     requires: no gaps, no overlaps);
//   - general.architecture "llama", general.name and general.file_type of
//     their types, no split model (split.count ≤ 1);
//   - the vocabulary: tokenizer "llama" (SentencePiece: the only one the
//     engine runs, and the only one whose failure modes the gate knows);
//     tokens a string array, not empty, every token non-empty and unique
//     (llama.cpp asserts both); scores a float32 array and token types an
//     int32 array, each of exactly one entry per token (llama.cpp reads
//     them as raw C arrays of the vocabulary's length), scores finite,
//     types 0 to 6, a byte token's text <0xHH>; a token for each of the
//     256 bytes (SentencePiece falls back to them, and a missing one
//     throws past llama.cpp's catch); every special-token id a uint32
//     below the vocabulary size, and the defaults of absent ones (BOS 1,
//     EOS 2, UNK 0) too; the flags bools; merges, when present, strings;
//   - the hyperparameters (not for a vocabulary-only load, which does not
//     read them): every key of the type llama.cpp's get_key wants (uint32,
//     float32, string, bool); context_length 1 to [MaxContext];
//     block_count 1 to [MaxLayers]; feed_forward_length, head_count and
//     head_count_kv positive, as one uint32 or a uint32/int32 array of one
//     equal value per layer (llama.cpp sizes every layer by layer 0's, and
//     asserts on a float array); head_count_kv dividing head_count, and
//     head_count dividing embedding_length; key and value heads of one,
//     even width, and rope.dimension_count equal to it; no experts (the
//     expert counts assert against each other); a known rope scaling type
//     (an assertion otherwise); the epsilon and rope factors finite and
//     positive; vocab_size, when present, the number of tokens;
//   - the tensors (not for a vocabulary-only load): exactly those of a
//     LLaMA model of these hyperparameters, by name, each of the shape
//     load_tensors creates, with the optional ones (output, biases, rope
//     factors) allowed; vectors F32, matrices of a type that ggml's CPU
//     backend multiplies and looks rows up in (not I8…I64, F64, Q8_1 or
//     Q8_K, which abort or crash at the first decode).
//
// Decisions: the gate refuses more than llama.cpp strictly must (a
// special id out of range, which llama.cpp replaces with a default and a
// warning; a model of another architecture or tokenizer, which it might
// load) because a one-line refusal is clearer than a model that half
// works, and because the engine runs UniNER, a LLaMA with SentencePiece.
// What llama.cpp would refuse cleanly is refused too, so that the error
// names the problem in the file's own terms. The gate reads the header
// only (never tensor data), in a few milliseconds for LLaMA-7B's
// (BenchmarkGate7b). It checks the file that is read before llama.cpp
// reads it again: a file replaced between the two is not covered.
//
// [Read] bounds the header at [MaxHeaderBytes], so that no file, however
// large, makes the header take more memory than that.
//
// The package uses the standard library only; package gguftest, which
// builds hostile files for tests, imports this one.
package gguf
