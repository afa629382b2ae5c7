package openai

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/record"
)

// TokenCounting is how the engine counts tokens: [Options.Tokenize] with
// its default filled in.
func (e *Engine) TokenCounting() Tokenize { return e.opts.Tokenize }

// ChecksPromptTokens says whether the engine compares the prompt tokens
// that servers report with the prompts' own counts (see the package doc):
// with a local tokenizer, or llama-server's /tokenize, and a dialect other
// than vllm.
func (e *Engine) ChecksPromptTokens() bool {
	if e.opts.Dialect == DialectVLLM {
		// vLLM tokenizes with the model's Hugging Face tokenizer, which
		// may split the text beside "</s>" otherwise than llama.cpp's;
		// and it refuses a prompt past its context rather than cut it.
		return false
	}
	return e.opts.Tokenize == TokenizeLocal || e.opts.Tokenize == TokenizeLlamaServer
}

// verifyPromptTokens compares each answered prompt's prompt_tokens, where
// the server counted that prompt alone (counted), with the tokens the
// prompt has, and makes a difference the prompt's Completion.Err:
// [ErrPromptTruncated] for fewer, [ErrPromptAltered] for more. A counting
// request that the server refuses (400) is the prompt's error too; any
// other failure to count fails the call, as TokenCount's would.
func (e *Engine) verifyPromptTokens(ctx context.Context, prompts []model.Prompt, counted []bool, counts *segmentCounts, comps []model.Completion) error {
	if !e.ChecksPromptTokens() {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for p := range prompts {
		if !counted[p] || comps[p].Err != nil {
			continue
		}
		wg.Go(func() {
			want, err := e.promptTokens(ctx, prompts[p], counts)
			if ie := (*record.InputError)(nil); errors.As(err, &ie) {
				comps[p].Err = err
				return
			}
			if err != nil {
				cancel(err)
				return
			}
			got := comps[p].PromptTokens
			switch {
			case got < want:
				comps[p].Err = fmt.Errorf("%w: the server counted %d prompt tokens, the prompt has %d", ErrPromptTruncated, got, want)
			case got > want:
				comps[p].Err = fmt.Errorf("%w: the server counted %d prompt tokens, the prompt has %d", ErrPromptAltered, got, want)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// promptTokens counts a prompt's tokens as a llama.cpp-based server counts
// its prompt_tokens: BOS, then the text, each "</s>" of the template one
// token. With llama-server's /tokenize, each stretch of literal text
// between special tokens is counted alone, as llama.cpp's tokenizer
// splits a prompt at them (and nerstream serve tokenizes it), and BOS is
// taken as added: LLaMA's vocabulary asks for it.
func (e *Engine) promptTokens(ctx context.Context, p model.Prompt, counts *segmentCounts) (int, error) {
	if e.opts.Tokenize == TokenizeLocal {
		toks, err := e.opts.LocalTokenizer.Tokenize(p)
		if err != nil {
			return 0, fmt.Errorf("openai: counting a prompt's tokens: %w", err)
		}
		return len(toks), nil
	}
	n := 1 // BOS
	for _, s := range p.Segments() {
		if s.Special {
			n++
			continue
		}
		c, err := counts.get(ctx, s.Text, e.TokenCount)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// segmentCounts remembers the token counts of prompt segments for one
// Generate call, so that a passage shared by a group's prompts, and a
// question shared by the documents that ask about the same type, are
// counted once. Callers that ask for a count being counted wait for it.
type segmentCounts struct {
	mu sync.Mutex
	m  map[string]*segmentCount
}

type segmentCount struct {
	done chan struct{}
	n    int
	err  error
}

func (c *segmentCounts) get(ctx context.Context, text string, count func(context.Context, string) (int, error)) (int, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*segmentCount{}
	}
	sc, ok := c.m[text]
	if !ok {
		sc = &segmentCount{done: make(chan struct{})}
		c.m[text] = sc
		c.mu.Unlock()
		sc.n, sc.err = count(ctx, text)
		close(sc.done)
		return sc.n, sc.err
	}
	c.mu.Unlock()
	select {
	case <-sc.done:
		return sc.n, sc.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
