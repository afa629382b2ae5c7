package openai

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nerstream/nerstream/internal/openaiapi"
	"github.com/nerstream/nerstream/model"
)

// stopAtEOS is the stop list of every request.
var stopAtEOS = json.RawMessage(`["` + model.EOS + `"]`)

// answerSchema is the JSON schema of an answer, for vLLM.
var answerSchema = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}

// Generate implements [model.Engine]. Each group is one request, or with a
// dialect that takes string prompts only, one request per prompt, sent
// together; the groups run concurrently, and every request waits for a
// place on an endpoint.
func (e *Engine) Generate(ctx context.Context, groups []model.PromptGroup, opts model.GenerateOptions) ([][]model.Completion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	maxNew := opts.MaxNewTokens
	if maxNew <= 0 {
		maxNew = model.DefaultMaxNewTokens
	}
	out := make([][]model.Completion, len(groups))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	counts := &segmentCounts{}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(len(groups), e.capacity) {
		wg.Go(func() {
			for g := range work {
				if err := e.generateGroup(ctx, groups[g].Prompts, maxNew, counts, &out[g]); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for g := range groups {
		select {
		case work <- g:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// generateGroup answers one group into *out. Its error fails the whole call.
func (e *Engine) generateGroup(ctx context.Context, prompts []model.Prompt, maxNew int, counts *segmentCounts, out *[]model.Completion) error {
	comps := make([]model.Completion, len(prompts))
	counted := make([]bool, len(prompts)) // the server gave the prompt's own count
	var sent []int                        // indices into prompts of texts
	var texts []string                    // the prompts sent
	for p, prompt := range prompts {
		if err := e.checkPrompt(prompt); err != nil {
			comps[p].Err = err
			continue
		}
		sent = append(sent, p)
		texts = append(texts, prompt.String())
	}
	if len(sent) > 0 {
		var err error
		if e.opts.Dialect.ListPrompts() {
			err = e.complete(ctx, sent, texts, maxNew, comps, counted)
		} else {
			err = e.completeEach(ctx, sent, texts, maxNew, comps, counted)
		}
		if err != nil {
			return err
		}
		if err := e.verifyPromptTokens(ctx, prompts, counted, counts, comps); err != nil {
			return err
		}
		for _, c := range comps {
			if c.Err == nil && c.Tokens == nil {
				e.noScores.Do(func() {
					cmp.Or(e.opts.Logger, slog.Default()).Warn("openai: the server returned no token log-probabilities that spell its answers; entities get no scores")
				})
				break
			}
		}
	}
	*out = comps
	return nil
}

// completeEach sends each prompt alone, all at once: each request takes
// its own place on an endpoint. The first error that fails the call stops
// the others.
func (e *Engine) completeEach(ctx context.Context, sent []int, texts []string, maxNew int, comps []model.Completion, counted []bool) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range sent {
		wg.Go(func() {
			if err := e.complete(ctx, sent[i:i+1], texts[i:i+1], maxNew, comps, counted); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// complete sends texts, the prompts sent[i] of a group, in one request (a
// list of prompts, or with a dialect that takes strings only, the one
// prompt as a string), and puts their answers in comps[sent[i]], and in
// counted[sent[i]] whether the server counted that prompt's tokens alone.
// A refusal of the request (400, 413) is every one of its prompts'
// Completion.Err; any other error fails the call.
func (e *Engine) complete(ctx context.Context, sent []int, texts []string, maxNew int, comps []model.Completion, counted []bool) error {
	payload, err := e.completionPayload(texts, maxNew)
	if err != nil {
		return err
	}
	var got []model.Completion
	var perPrompt bool
	err = e.call(ctx, func(ep *endpoint) string { return ep.base + "/completions" }, payload, func(body []byte) error {
		var err error
		got, perPrompt, err = decodeCompletions(body, texts)
		return err
	})
	if se, ok := errors.AsType[*StatusError](err); ok && se.refusesGroup() {
		for _, p := range sent {
			comps[p].Err = se
		}
		return nil
	}
	if errors.Is(err, ErrRequestFailed) {
		// The document fails healthy servers: its own error.
		for _, p := range sent {
			comps[p].Err = err
		}
		return nil
	}
	if err != nil {
		return err
	}
	for i, p := range sent {
		comps[p], counted[p] = got[i], perPrompt
	}
	return nil
}

// completionPayload is the body of a completions request for texts (a
// list of prompts, or with a dialect that takes strings only, the one
// prompt as a string), in the dialect's shape.
func (e *Engine) completionPayload(texts []string, maxNew int) ([]byte, error) {
	req := openaiapi.CompletionRequest{Model: e.opts.Model, MaxTokens: &maxNew, Temperature: openaiapi.Ptr(0.0), Stop: stopAtEOS, Logprobs: openaiapi.Ptr(1)}
	if e.opts.GuidedJSON {
		switch e.opts.Dialect {
		case DialectVLLM:
			req.StructuredOutputs = map[string]any{"json": answerSchema}
		case DialectLlamaServer:
			req.Grammar = model.AnswerGrammar
		}
	}
	var err error
	if e.opts.Dialect.ListPrompts() {
		req.Prompt, err = json.Marshal(texts)
	} else {
		// The neutral values of OpenAI's sampling settings, sent where
		// the server's own defaults differ: Ollama takes an absent
		// temperature as 1 and top_p 0 as 1. (Its repeat_penalty, 1.1
		// by default, has no field here: see the package doc.)
		req.TopP, req.FrequencyPenalty, req.PresencePenalty = openaiapi.Ptr(1.0), openaiapi.Ptr(0.0), openaiapi.Ptr(0.0)
		req.Prompt, err = json.Marshal(texts[0])
	}
	if err != nil {
		return nil, fmt.Errorf("openai: encoding a request: %w", err)
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("openai: encoding a request: %w", err)
	}
	return payload, nil
}

// decodeCompletions reads the answer to a request of len(prompts) prompts:
// one completion object, or (llama-server, for a list of prompts) a list
// of them, one per prompt. Every prompt must have exactly one choice.
// perPrompt says whether the server gave each prompt's own prompt token
// count (per choice, per completion of a list, or a request of one
// prompt), rather than a total spread over them.
func decodeCompletions(body []byte, prompts []string) (out []model.Completion, perPrompt bool, err error) {
	var resps []openaiapi.CompletionResponse
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &resps); err != nil {
			return nil, false, err
		}
		for i := range resps {
			// A completion's usage is its one choice's.
			if len(resps[i].Choices) == 1 && resps[i].Choices[0].Usage == nil {
				resps[i].Choices[0].Usage = resps[i].Usage
				resps[i].Usage = nil
			}
		}
	} else {
		var r openaiapi.CompletionResponse
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, false, err
		}
		resps = []openaiapi.CompletionResponse{r}
	}
	n := len(prompts)
	texts := make([]*string, n)
	logprobs := make([]*openaiapi.Logprobs, n)
	per := make([]*openaiapi.Usage, n)
	var total openaiapi.Usage
	count := 0
	for _, r := range resps {
		if r.Usage != nil {
			total = addUsage(total, *r.Usage)
		}
		for _, c := range r.Choices {
			if c.Index == nil || c.Text == nil {
				return nil, false, errors.New("a choice without index or text")
			}
			i := *c.Index
			if i < 0 || i >= n {
				return nil, false, fmt.Errorf("choice index %d out of range for %d prompts", i, n)
			}
			if texts[i] != nil {
				return nil, false, fmt.Errorf("two choices for prompt %d", i)
			}
			texts[i] = c.Text
			logprobs[i] = c.Logprobs
			per[i] = c.Usage
			count++
		}
	}
	if count != n {
		return nil, false, fmt.Errorf("%d choices for %d prompts", count, n)
	}
	out = make([]model.Completion, n)
	for i, t := range texts {
		out[i].Text = trimAnswer(*t)
		out[i].Tokens = tokenLogProbs(logprobs[i], len(out[i].Text))
	}
	// Token counts: per choice when given, else the totals spread in
	// proportion to the prompts' and answers' lengths in bytes.
	promptWeights := make([]int, n)
	answerWeights := make([]int, n)
	allPer := true
	for i := range n {
		promptWeights[i] = len(prompts[i])
		answerWeights[i] = len(out[i].Text) + 1 // +1: EOS
		if per[i] == nil || per[i].PromptTokens == nil || per[i].CompletionTokens == nil {
			allPer = false
		}
	}
	if allPer {
		for i := range n {
			out[i].PromptTokens = *per[i].PromptTokens
			out[i].GeneratedTokens = *per[i].CompletionTokens
		}
		return out, true, nil
	}
	if total.PromptTokens != nil {
		for i, v := range spread(*total.PromptTokens, promptWeights) {
			out[i].PromptTokens = v
		}
	}
	if total.CompletionTokens != nil {
		for i, v := range spread(*total.CompletionTokens, answerWeights) {
			out[i].GeneratedTokens = v
		}
	}
	return out, n == 1 && total.PromptTokens != nil, nil
}

func addUsage(a, b openaiapi.Usage) openaiapi.Usage {
	add := func(x, y *int) *int {
		if y == nil {
			return x
		}
		v := *y
		if x != nil {
			v += *x
		}
		return &v
	}
	return openaiapi.Usage{PromptTokens: add(a.PromptTokens, b.PromptTokens), CompletionTokens: add(a.CompletionTokens, b.CompletionTokens)}
}

// spread divides total in proportion to weights, by largest remainder, so
// that the parts add up to total.
func spread(total int, weights []int) []int {
	parts := make([]int, len(weights))
	sum := 0
	for _, w := range weights {
		sum += w
	}
	if sum == 0 || total <= 0 {
		return parts
	}
	rem := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		parts[i] = total * w / sum
		rem[i] = total * w % sum
		given += parts[i]
	}
	for ; given < total; given++ {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		parts[best]++
		rem[best] = -1
	}
	return parts
}

// tokenLogProbs reads a choice's token log-probabilities, in either form,
// for the first n bytes of its text (the answer before any EOS). It
// returns nil where there are none, or where they do not spell exactly
// those bytes (then the answer's mentions get no scores): a token whose
// log-probability is missing, not a log-probability (above 0), or tokens
// that end inside the answer's last byte.
func tokenLogProbs(lp *openaiapi.Logprobs, n int) []model.TokenLogProb {
	if lp == nil {
		return nil
	}
	var bytes []int
	var probs []*float64
	switch {
	case len(lp.Content) > 0:
		for _, t := range lp.Content {
			b := len(t.Token)
			if t.Bytes != nil {
				b = len(t.Bytes)
			}
			bytes, probs = append(bytes, b), append(probs, t.Logprob)
		}
	case len(lp.Tokens) == len(lp.TokenLogprobs):
		for i, t := range lp.Tokens {
			bytes, probs = append(bytes, len(t)), append(probs, lp.TokenLogprobs[i])
		}
	default:
		return nil
	}
	out := []model.TokenLogProb{}
	sum := 0
	for i, b := range bytes {
		if sum >= n {
			break // past the answer: EOS, and what a server sent after it
		}
		if p := probs[i]; p != nil && *p <= 0 {
			out = append(out, model.TokenLogProb{Bytes: b, LogProb: *p})
			sum += b
			continue
		}
		return nil
	}
	if sum != n {
		return nil
	}
	return out
}

// trimAnswer cuts the answer at EOS, should the server return it: the
// in-process engine stops there and keeps the rest as it is.
func trimAnswer(s string) string {
	if i := strings.Index(s, model.EOS); i >= 0 {
		return s[:i]
	}
	return s
}
