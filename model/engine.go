package model

import (
	"context"
	"errors"
)

// The errors an engine wraps, so that callers can tell them apart whichever
// engine runs.
var (
	// ErrClosed is a call to an engine that was closed.
	ErrClosed = errors.New("engine closed")
	// ErrPromptTooLong is a prompt that, with room for its answer, does
	// not fit the model's context: a Completion's Err.
	ErrPromptTooLong = errors.New("prompt does not fit the context")
)

// DefaultMaxNewTokens is the official decoding limit: at most 256 new tokens.
const DefaultMaxNewTokens = 256

// Engine generates UniNER answers. It is what an inference runtime
// implements, as a database driver implements database/sql/driver: the
// in-process llama.cpp engine (model/llama) is one.
//
// Decoding is the official one: greedy (temperature 0), stopping at EOS or
// after [GenerateOptions.MaxNewTokens] new tokens.
type Engine interface {
	// Generate completes every prompt of every group. The prompts of one
	// group share a prefix (one passage, asked about several entity
	// types), so an engine can compute that prefix once; it finds the
	// shared part on token ids. out[g][p] answers groups[g].Prompts[p].
	//
	// A prompt that the engine refuses on its own (too long for the
	// context, say) gets a [Completion] with Err set, and the others are
	// still answered. The returned error is for a failure of the whole
	// call (ctx done, the engine closed), and then out is nil.
	Generate(ctx context.Context, groups []PromptGroup, opts GenerateOptions) (out [][]Completion, err error)

	// TokenCount returns the number of tokens that text takes in the
	// model's vocabulary, as literal text: no BOS, no special tokens.
	// An engine that refuses this text alone returns a [*record.InputError];
	// any other error is a failure of the engine, and [Recognizer] fails
	// the whole batch with it.
	TokenCount(ctx context.Context, text string) (int, error)

	// ContextTokens returns the context window in tokens, the budget for
	// a prompt and its answer together.
	ContextTokens() int
}

// PromptGroup is a set of prompts that share a prefix: one passage's
// questions, one per entity type.
type PromptGroup struct {
	Prompts []Prompt
}

// GenerateOptions tune one Generate call.
type GenerateOptions struct {
	// MaxNewTokens bounds each answer. 0 means [DefaultMaxNewTokens].
	MaxNewTokens int
	// NoScores asks for no token log-probabilities (Completion.Tokens
	// nil): an engine that spends work on them skips it. For measuring
	// their cost; the recognizer always asks for them.
	NoScores bool
}

// Completion is an engine's answer to one prompt.
type Completion struct {
	// Text is the generated text, without the prompt and without EOS.
	Text string
	// PromptTokens is the prompt's length in tokens, BOS included.
	PromptTokens int
	// GeneratedTokens is the number of tokens generated.
	GeneratedTokens int
	// Tokens are the generated tokens with the model's log-probability
	// of each, in order: their Bytes add up to len(Text). Nil where the
	// engine gave no probabilities (scoring off, or a server that returns
	// none); then the answer's mentions get no scores.
	Tokens []TokenLogProb
	// Err is set when the engine refused this prompt alone.
	Err error
}

// TokenLogProb is one generated token: how many bytes of the answer's
// text it spells, and the natural log of the probability the model gave
// it, under the model's whole distribution at that step (before the
// answer grammar masks it: see the package doc).
type TokenLogProb struct {
	Bytes   int
	LogProb float64
}

// AnswerGrammar is a GBNF grammar (llama.cpp's grammar format) that holds
// an answer to a JSON array of strings, the form of every UniNER answer:
// `["a", "b"]` or `[]`, with at most one space before the list, after a
// comma, and around the brackets. The in-process engine decodes under it,
// and the openai engine sends it to llama-server.
const AnswerGrammar = `root   ::= " "? "[" ( " "? string ( "," " "? string )* )? " "? "]"
string ::= "\"" char* "\""
char   ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" hex hex hex hex )
hex    ::= [0-9a-fA-F]
`
