// Package openai is a [model.Engine] that sends UniNER prompts to
// OpenAI-compatible inference servers over HTTP: the /v1/completions
// endpoint of vLLM, llama.cpp's llama-server, Ollama, SGLang or TGI.
//
// # Deployment
//
// The in-process engine (model/llama) runs the model inside nerstream. This
// one lets a GPU tier serve it instead: one or more inference servers, each
// given here as a base URL, or one load balancer in front of many. For
// example, with vLLM:
//
//	vllm serve Universal-NER/UniNER-7B-type --enable-prefix-caching --max-model-len 2048
//
// and nerstream pointed at http://gpu-1:8000/v1, http://gpu-2:8000/v1. With
// llama-server:
//
//	llama-server -m UniNER-7B-type.Q4_K_M.gguf -c 16384 -np 8 --port 8080
//
// (its context is split between the -np slots: 8 slots of 2,048 tokens).
// With Ollama, a Modelfile makes the model take the prompt as it is and
// decode greedily:
//
//	FROM ./UniNER-7B-type.Q4_K_M.gguf
//	TEMPLATE """{{ .Prompt }}"""
//	PARAMETER temperature 0
//	PARAMETER repeat_penalty 1
//	PARAMETER num_ctx 2048
//	PARAMETER stop "</s>"
//
// then ollama create uniner -f Modelfile, OLLAMA_NUM_PARALLEL=8 ollama
// serve, and nerstream pointed at http://host:11434/v1 with the ollama
// dialect, Model "uniner" and a Tokenizer (see below).
//
// # Dialects: a list of prompts, or one string per request
//
// With the dialects "" (the plain API), vllm and llama-server, the prompts
// of one [model.PromptGroup] (one passage, asked about each entity type)
// go out in ONE request, with "prompt" as a list of strings, so that they
// reach one server together and its prefix cache computes the passage once
// for all of them. A load balancer in front of several servers should keep
// that property: it routes whole requests, so it does. Prefix caching must
// be on in the server (vLLM: --enable-prefix-caching, the default in recent
// versions; llama-server caches prompts by default).
//
// OpenAI's API allows "prompt" to be a string or a list, so "" keeps the
// list, as it always has: every server it was used with (vLLM,
// llama-server, SGLang, nerstream serve) takes one, and a string per
// request would cost them the shared passage. Servers that take only a
// string have dialects of their own: ollama (Ollama v0.24.0 decodes
// "prompt" into a Go string and answers a list with a 400, "cannot
// unmarshal array into Go struct field CompletionRequest.prompt of type
// string") and openai (the plain API, one string per request, for any
// other such server). With these, each prompt of a group is a request of
// its own, all sent at once: each takes its own place under
// [Options.MaxInFlightPerEndpoint], waits for one like any request, and is
// retried alone; a 400 refuses that prompt only. The passage is then
// shared only as far as the server's prompt cache shares it between
// requests: Ollama's llama runner starts a request in the free slot that
// holds the longest cached prefix of it (with OLLAMA_MULTIUSER_CACHE=1 it
// also copies a prefix from a busy slot), so prompts sent together mostly
// compute the passage each, in parallel slots (OLLAMA_NUM_PARALLEL).
//
// # The prompt as text
//
// Each prompt is sent as its [model.Prompt.String], the exact prompt of the
// official code. The server adds BOS itself. The "</s>" inside the prompt
// must become the EOS special token, not the four characters: vLLM (with
// the Hugging Face tokenizer), llama-server and Ollama (its llama runner
// tokenizes with parse_special) parse special tokens in prompt text by
// default, so it does. A server configured not to parse
// them would see a different prompt, and answer worse.
//
// Because the server parses special tokens in the whole text, it would also
// parse them in the document's text, where [model.PartText] says an engine
// must not: a document holding "</s>USER: ..." could break out of its slot.
// So by default a prompt whose user parts (text, entity type, dataset name)
// hold LLaMA's special-token text ("<s>", "</s>", "<unk>") is refused with
// [ErrSpecialTokenText] in its Completion.Err, and the recognizer
// dead-letters that document. [Options.AllowSpecialTokenText] sends it
// anyway.
//
// Decoding is the official one: temperature 0, at most MaxNewTokens new
// tokens ("max_tokens"), stop at "</s>". The string dialects also send
// "top_p": 1, "frequency_penalty": 0 and "presence_penalty": 0, OpenAI's
// neutral values: Ollama's OpenAI layer maps exactly these fields (and
// "seed", which greedy decoding does not use, so it is not sent) to its
// options, takes an absent temperature as 1 and a top_p of 0 as 1, and
// passes the penalties to llama.cpp's sampler. Its repeat_penalty (1.1 by
// default, over the last 64 tokens, the prompt's included) has no OpenAI
// field, and changes greedy answers (16 of 64 in the comparison
// with the in-process engine; none with repeat_penalty 1): the Modelfile
// above sets it to 1. Its TEMPLATE must be "{{ .Prompt }}", or the prompt
// is wrapped in the model's chat template; its num_ctx must hold a prompt
// and its answer (ContextTokens). The answer text is returned as the
// server gives it, cut at "</s>" if the server echoes it: the in-process
// engine returns the detokenized pieces as they are, leading space included.
// With [Options.GuidedJSON] the server holds the answer to a JSON array of
// strings, as the in-process engine's grammar does (vLLM:
// "structured_outputs": {"json": schema}; llama-server: a GBNF "grammar").
//
// # Endpoints, retries and ejection
//
// Requests go to the endpoint with the fewest requests in flight (or in
// turn, [RoutingRoundRobin]), at most [Options.MaxInFlightPerEndpoint] at
// once on each; the groups of one Generate call run concurrently up to the
// pool's capacity, and further requests wait for a free place.
//
// A request that fails for a reason that may pass is retried, on another
// endpoint when there is one, up to [Options.Retries] times, after an
// exponential back-off with full jitter (a random wait between 0 and
// min(BackoffMax, BackoffInitial × 2^retry)). These retry: connection
// errors and cut connections, 5xx, 429, 408, a request past
// [Options.Timeout], and malformed bodies (bad JSON, the wrong number of
// choices). When the retries are spent, Generate fails as a whole: the
// model tier is down, not the documents bad, so the caller keeps them.
//
// A 429, and a 503 with Retry-After, mark the endpoint busy for the
// Retry-After (a 429 without one: for BackoffInitial; at most
// [Options.MaxRetryAfter]): it gets no requests until then, and retries go
// to the other endpoints at once. When every endpoint that is not ejected
// is busy, the retry waits for the first to be free.
//
// A failure is the request's or the server's. After a failure that may be
// the request's own (a 5xx other than 503, a malformed or cut answer, a
// timeout) the engine sends the endpoint a health probe: a UniNER prompt
// about a one-line passage, one new token, in the shape of every request
// (its result stands for a second, so failures in a burst share one). When
// the probe passes, the endpoint is healthy: the failure does not count
// toward its circuit breaker, the request is retried on another endpoint
// as usual, and when its retries are spent its prompts get an error
// wrapping [ErrRequestFailed] in their Completion.Err, the other groups go
// on, and the caller retries or dead-letters that document alone (a poison
// document must not eject a server, nor stall the stream). When the probe
// fails, the failure is the endpoint's, as before.
//
// These do not retry. 400 (and 413) is a refusal of that one request (most
// often a prompt too long for the server's context), if the endpoint
// answers the probe: every prompt of that group gets a [*StatusError] in
// its Completion.Err, and the other groups go on. A server that refuses the
// probe too refuses every request (a request shape it does not take): that
// fails the call as a whole, so that the caller holds its documents rather
// than dead-letter them all. [Engine.Probe] sends the probe to every
// endpoint at start: run and annotate fail at once, in one line, when every
// server refuses it ([ErrServerRefuses]). 401 and 403 fail the whole call with an error about the API key;
// any other 4xx (404 for a wrong model name or URL, 422) fails the whole
// call too, as it would fail every request. Cancelling ctx stops every
// request at once.
//
// Each endpoint has a circuit breaker. After [Options.FailureThreshold]
// consecutive failures (of the retrying kind, 429 excepted: a busy server is
// not a broken one) it is ejected for [Options.Cooldown]: no request goes
// there. Then it is half-open: the next request that needs an endpoint goes
// to it as a probe, and the probe's success re-admits it, its failure
// ejects it for another cooldown. When every endpoint is ejected, an attempt
// fails at once, and is retried after its back-off like any other.
//
// [Engine.Stats] gives counters of requests, retries, failures, ejections
// and each endpoint's state and requests in flight, for the caller to
// export.
//
// # Tracing
//
// The package imports only the standard library. To trace its requests,
// pass an [*http.Client] whose transport is instrumented (otelhttp's, say)
// as [Options.HTTPClient]; every request carries the caller's ctx.
//
// # Token counting
//
// [Engine.TokenCount] counts with a local tokenizer ([TokenizeLocal]: the
// GGUF file that [Options.Tokenizer] names, loaded without its weights by
// engines.Open; no request), or asks the server's tokenizer
// ([TokenizeVLLM], [TokenizeLlamaServer]: POST /tokenize at the server's
// root, each call, nothing cached) or, with [TokenizeEstimate] (the
// default of the dialects without /tokenize: "", openai, ollama), returns
// len(text)+1: no
// SentencePiece or byte-level BPE text takes more tokens than its bytes
// plus one (LLaMA splits digits into single tokens and falls back to bytes
// for characters outside its vocabulary, so smaller estimates such as
// bytes/2 can fall short). The estimate over-counts ordinary text about
// fourfold, which only makes windows smaller: no round trip, no prompt too
// long.
//
// # A prompt the server cut short
//
// Ollama cuts a prompt longer than its num_ctx silently: it answers 200
// about the prompt's end, with usage.prompt_tokens equal to num_ctx. So
// where the engine can count a prompt's tokens as a llama.cpp-based server
// does (BOS, the text, each "</s>" of the template one token), it checks
// the prompt_tokens that the server reports for that prompt alone: fewer
// is [ErrPromptTruncated], more is [ErrPromptAltered] (a TEMPLATE around
// the prompt, or another tokenizer), in the prompt's Completion.Err, and
// the recognizer dead-letters the document as it does after a 400. It
// counts with the local tokenizer, or with llama-server's /tokenize (its
// literal text between special tokens counted once per call, passages and
// questions shared), and checks where the server reports each prompt's own
// count: the string dialects, llama-server's list answers. It does not
// check vLLM, which refuses a prompt past its context with a 400 rather
// than cut it, reports a request's total only, and tokenizes with the
// model's Hugging Face tokenizer, which may split the text beside "</s>"
// otherwise than llama.cpp's. Without a tokenizer (Ollama's default: it
// has no /tokenize) nothing can be checked: the log says so at start, and
// ContextTokens must then stay within num_ctx. [Engine.ChecksPromptTokens]
// tells whether the engine checks.
package openai
