package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/record"
)

// TokenCount implements [model.Engine]: the tokens text takes as literal
// text, no BOS. See [Options.Tokenize]. Nothing is cached: each call with a
// server's tokenizer is one request (with the retries of any other); a
// local tokenizer sends none.
func (e *Engine) TokenCount(ctx context.Context, text string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := openaiapi.TokenizeRequest{}
	switch e.opts.Tokenize {
	case TokenizeEstimate:
		return EstimateTokens(text), nil
	case TokenizeLocal:
		n, err := e.opts.LocalTokenizer.TokenCount(ctx, text)
		if err != nil {
			return 0, fmt.Errorf("openai: counting tokens: %w", err)
		}
		return n, nil
	case TokenizeVLLM:
		req.Model, req.Prompt, req.AddSpecialTokens = e.opts.Model, &text, openaiapi.Ptr(false)
	case TokenizeLlamaServer:
		req.Content, req.AddSpecial, req.ParseSpecial = &text, openaiapi.Ptr(false), openaiapi.Ptr(false)
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("openai: encoding a tokenize request: %w", err)
	}
	n := 0
	err = e.call(ctx, func(ep *endpoint) string { return ep.root + "/tokenize" }, payload, func(body []byte) error {
		var v openaiapi.TokenizeResponse
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		switch {
		case v.Count != nil && *v.Count >= 0:
			n = *v.Count
		case v.Tokens != nil:
			n = len(v.Tokens)
		default:
			return errors.New("no tokens and no count")
		}
		return nil
	})
	if se, ok := errors.AsType[*StatusError](err); ok && se.refusesGroup() {
		// The server refuses this text, not every text: the document
		// is at fault, as model.Engine asks it to be reported.
		return 0, &record.InputError{Reason: record.ReasonEngineRefused, Detail: se.Error()}
	}
	if err != nil {
		return 0, fmt.Errorf("openai: counting tokens: %w", err)
	}
	return n, nil
}

// EstimateTokens is [TokenizeEstimate]'s count: len(text)+1, which no
// SentencePiece or byte-level BPE tokenization of text exceeds (each token
// covers at least one byte, but for the leading "▁" SentencePiece may add).
// It over-counts ordinary text about fourfold; that only makes windows
// smaller.
func EstimateTokens(text string) int {
	if text == "" {
		return 0
	}
	return len(text) + 1
}
