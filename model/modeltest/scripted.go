// Package modeltest provides test doubles for the model package, as
// net/http/httptest does for net/http, and helpers that check what a real
// engine gave. Nothing here runs a real model.
package modeltest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/nerstream/nerstream/model"
)

// ErrPromptTooLong is the per-prompt error of a [ScriptedEngine] for a
// prompt that leaves no room for the answer in its context.
var ErrPromptTooLong = fmt.Errorf("scripted engine: %w", model.ErrPromptTooLong)

// ScriptedEngine is a test double of [model.Engine]: it answers each
// question with a fixed, scripted answer instead of running a model.
//
// It counts tokens with a stand-in rule (each white-space-separated word
// takes one token per four code points, rounded up), checks that every
// prompt fits its context as a real engine would, and records the groups it
// was given.
type ScriptedEngine struct {
	// Answer returns the generated text for one question: the passage and
	// the text in the question's slot (the entity type, or its
	// definition). Nil answers "[]" to everything.
	Answer func(text, query string) string
	// LogProbs, when set, gives the answer's tokens with their
	// log-probabilities (Completion.Tokens), as a model that scores would;
	// nil leaves the answers unscored.
	LogProbs func(text, query, answer string) []model.TokenLogProb
	// Context is the context window in tokens. Default: 2048.
	Context int
	// Err, when set, fails every Generate call as a whole.
	Err error

	mu    sync.Mutex
	calls [][]model.PromptGroup
}

// Answers returns an Answer function that looks the answer up by the
// question's query (the entity type) in a map, whatever the passage; "[]"
// for a query the map lacks.
func Answers(byQuery map[string]string) func(text, query string) string {
	return func(_, query string) string {
		if a, ok := byQuery[query]; ok {
			return a
		}
		return "[]"
	}
}

// Generate implements model.Engine.
func (e *ScriptedEngine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	e.mu.Lock()
	e.calls = append(e.calls, groups)
	e.mu.Unlock()
	maxNew := opts.MaxNewTokens
	if maxNew <= 0 {
		maxNew = model.DefaultMaxNewTokens
	}
	out := make([][]model.Completion, len(groups))
	for g, group := range groups {
		out[g] = make([]model.Completion, len(group.Prompts))
		for p, prompt := range group.Prompts {
			var text, query string
			for _, part := range prompt.Parts {
				switch part.Kind {
				case model.PartText:
					text = part.Text
				case model.PartQuery:
					query = part.Text
				}
			}
			n := 1 + tokens(prompt.String())
			if n+maxNew > e.ContextTokens() {
				out[g][p] = model.Completion{PromptTokens: n, Err: fmt.Errorf("%w: %d prompt tokens + %d new > %d", ErrPromptTooLong, n, maxNew, e.ContextTokens())}
				continue
			}
			answer := "[]"
			if e.Answer != nil {
				answer = e.Answer(text, query)
			}
			out[g][p] = model.Completion{Text: answer, PromptTokens: n, GeneratedTokens: tokens(answer) + 1}
			if e.LogProbs != nil {
				out[g][p].Tokens = e.LogProbs(text, query, answer)
			}
		}
	}
	return out, nil
}

// TokenCount implements model.Engine with the stand-in rule.
func (e *ScriptedEngine) TokenCount(ctx context.Context, text string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return tokens(text), nil
}

// ContextTokens implements model.Engine.
func (e *ScriptedEngine) ContextTokens() int {
	if e.Context > 0 {
		return e.Context
	}
	return 2048
}

// Calls returns the prompt groups of every Generate call so far.
func (e *ScriptedEngine) Calls() [][]model.PromptGroup {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]model.PromptGroup(nil), e.calls...)
}

func tokens(s string) int {
	n := 0
	for _, w := range strings.FieldsFunc(s, unicode.IsSpace) {
		n += (utf8.RuneCountInString(w) + 3) / 4
	}
	return n
}
