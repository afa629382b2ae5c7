package openaiapi

import "encoding/json"

// CompletionRequest is the body of POST /v1/completions: the subset of
// OpenAI's that UniNER needs, with the extensions of vLLM and llama-server.
// Most servers ignore the fields they do not know (vLLM, llama-server,
// Ollama); OpenAI's own refuses them.
type CompletionRequest struct {
	Model string `json:"model,omitempty"`
	// Prompt is a string or a list of strings; [Strings] reads it.
	Prompt      json.RawMessage `json:"prompt"`
	MaxTokens   *int            `json:"max_tokens,omitempty"`
	Temperature *float64        `json:"temperature,omitempty"`
	// TopP, FrequencyPenalty and PresencePenalty are OpenAI's sampling
	// settings, sent as their neutral values (1, 0, 0) by the dialects
	// whose servers have other defaults (Ollama).
	TopP             *float64 `json:"top_p,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	// Stop is a string or a list of strings; [Strings] reads it.
	Stop   json.RawMessage `json:"stop,omitempty"`
	N      *int            `json:"n,omitempty"`
	Stream bool            `json:"stream,omitempty"`
	Echo   bool            `json:"echo,omitempty"`
	// StructuredOutputs is vLLM's guided decoding ({"json": schema}).
	StructuredOutputs map[string]any `json:"structured_outputs,omitempty"`
	// Grammar is llama-server's GBNF grammar.
	Grammar string `json:"grammar,omitempty"`
	// Logprobs asks for the log-probabilities of each generated token and
	// of that many alternatives (OpenAI's completions field; vLLM,
	// llama-server and Ollama take it). nerstream sends 1: Ollama
	// returns none for 0.
	Logprobs *int `json:"logprobs,omitempty"`
}

// CompletionResponse is the answer to a CompletionRequest: one choice per
// prompt. llama-server answers a list of prompts with a list of these, one
// per prompt.
type CompletionResponse struct {
	ID      string   `json:"id,omitempty"`
	Object  string   `json:"object,omitempty"`
	Created int64    `json:"created,omitempty"`
	Model   string   `json:"model,omitempty"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Choice is one prompt's answer. Index and Text are pointers so that a
// client can tell a missing one from a zero one.
type Choice struct {
	Index        *int    `json:"index"`
	Text         *string `json:"text"`
	FinishReason string  `json:"finish_reason,omitempty"`
	// Logprobs holds the generated tokens' log-probabilities, when the
	// request asked for them; null otherwise.
	Logprobs *Logprobs `json:"logprobs"`
	// Usage is per choice: no server is known to send it here, but an
	// answer that comes as a list of completions has one per completion.
	Usage *Usage `json:"usage,omitempty"`
}

// Logprobs are a choice's token log-probabilities, in either of the two
// forms servers send on /v1/completions: OpenAI's completions form
// (Tokens with TokenLogprobs: vLLM, nerstream serve) or the chat form
// (Content: llama-server, Ollama).
type Logprobs struct {
	Tokens        []string             `json:"tokens,omitempty"`
	TokenLogprobs []*float64           `json:"token_logprobs,omitempty"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs,omitempty"`
	TextOffset    []int                `json:"text_offset,omitempty"`
	Content       []TokenLogprob       `json:"content,omitempty"`
}

// TokenLogprob is one token of the chat form. Bytes, when given, are the
// token's bytes (Token may have lost part of a UTF-8 sequence).
type TokenLogprob struct {
	Token   string   `json:"token"`
	Logprob *float64 `json:"logprob"`
	Bytes   []int    `json:"bytes,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     *int `json:"prompt_tokens"`
	CompletionTokens *int `json:"completion_tokens"`
	TotalTokens      *int `json:"total_tokens,omitempty"`
}

// TokenizeRequest is the body of POST /tokenize in the shapes of
// llama-server (Content, AddSpecial, ParseSpecial) and vLLM (Model, Prompt,
// AddSpecialTokens).
type TokenizeRequest struct {
	Model            string  `json:"model,omitempty"`
	Content          *string `json:"content,omitempty"`
	Prompt           *string `json:"prompt,omitempty"`
	AddSpecial       *bool   `json:"add_special,omitempty"`
	AddSpecialTokens *bool   `json:"add_special_tokens,omitempty"`
	ParseSpecial     *bool   `json:"parse_special,omitempty"`
}

// TokenizeResponse is the answer to a TokenizeRequest. Tokens are ids
// (llama-server may send objects with the piece too); Count, when given,
// wins over len(Tokens).
type TokenizeResponse struct {
	Tokens      []json.RawMessage `json:"tokens"`
	Count       *int              `json:"count,omitempty"`
	MaxModelLen int               `json:"max_model_len,omitempty"`
}

// ErrorResponse is an error answer in OpenAI's shape: {"error": {"message",
// "type", "code"}}.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the error of an ErrorResponse.
type ErrorBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
}

// Strings reads a JSON string or list of strings; null or nothing is nil.
// ok is false for anything else.
func Strings(raw json.RawMessage) (list []string, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, true
	}
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, true
	}
	return nil, false
}

// Ptr returns a pointer to v, for the optional fields.
func Ptr[T any](v T) *T { return &v }
