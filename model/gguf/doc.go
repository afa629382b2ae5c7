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
// The package uses the standard library only.
package gguf
