package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nerstream/nerstream/internal/redact"
)

// maxModelName bounds a served model's name: it goes into every
// annotation and log line.
const maxModelName = 256

// ServedModel asks the endpoints, in order, for the models they serve
// (GET {base}/models, OpenAI's list) and returns the first one's id: the
// name annotations carry when [Options.Model] names none. vLLM lists its
// --served-model-name first, llama-server its model file's path, and
// nerstream serve its model's name; a GGUF file's path (llama-server
// without --alias) is named by its file, as the in-process engine names
// a model. One request per endpoint, without
// retries, until one answers; the error is the first endpoint's. A name
// that is not a short line of text (over 256 bytes, not UTF-8, a control
// character) is refused.
func (e *Engine) ServedModel(ctx context.Context) (string, error) {
	var first error
	for _, ep := range e.eps {
		name, err := e.servedModel(ctx, ep)
		if err == nil {
			return name, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", first
}

func (e *Engine) servedModel(ctx context.Context, ep *endpoint) (string, error) {
	actx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	target := ep.base + "/models"
	name := redact.String(target)
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		return "", fmt.Errorf("openai: %s: %w", name, redact.Error(err))
	}
	req.Header.Set("Accept", "application/json")
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("openai: %s: %s", name, redact.Text(e.redact(unwrapURLError(err).Error())))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("openai: %s: reading the answer: %s", name, redact.Text(e.redact(err.Error())))
	}
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{StatusCode: resp.StatusCode, URL: name}
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", fmt.Errorf("openai: %s: malformed answer: %w", name, err)
	}
	if len(list.Data) == 0 {
		return "", fmt.Errorf("openai: %s: lists no model", name)
	}
	id := list.Data[0].ID
	if strings.HasSuffix(strings.ToLower(id), ".gguf") {
		id = id[strings.LastIndexAny(id, `/\`)+1:]
	}
	if err := checkModelName(id); err != nil {
		return "", fmt.Errorf("openai: %s: %w", name, err)
	}
	return id, nil
}

// errModelName is a served model's name that is no short line of text.
var errModelName = errors.New("the served model's name is not a line of text of at most 256 bytes")

// checkModelName refuses a name that is empty, over maxModelName bytes,
// not UTF-8, or holds a control character.
func checkModelName(s string) error {
	if s == "" || len(s) > maxModelName || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return errModelName
	}
	return nil
}
