// Package shareddata is how tests find the public data that lives beside
// the checkout, in ../shared/data (the NER test sets, LLaMA's vocabulary
// and its reference token ids; ../shared/data/README.md describes them).
//
// A test that needs a file there asks for it here. When the file is
// absent (or, for LLaMA's vocabulary, damaged), the test skips and says
// "SKIPPED" with the reason, so that a clone without the data still
// passes; with NERSTREAM_REQUIRE_SHARED_DATA=1, which .ci/run sets (CI
// always has ../shared beside the clone), it fails instead, so that a
// missing or moved file can never turn the tests that check against the
// public data into silent skips.
package shareddata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// RequireEnv is the variable that makes missing shared data a failure.
const RequireEnv = "NERSTREAM_REQUIRE_SHARED_DATA"

// VocabEnv names another copy of LLaMA's vocabulary for [Vocab].
const VocabEnv = "NERSTREAM_TEST_VOCAB"

// LlamaVocab is LLaMA's vocabulary in the shared data: a vocabulary-only
// GGUF file (llama.cpp's models/ggml-vocab-llama-spm.gguf).
const LlamaVocab = "vocab/ggml-vocab-llama-spm.gguf"

// PromptIDs is the file of whole UniNER prompts (type variant) with the
// token ids an independent LLaMA tokenizer gives them (see the shared
// data's README.md): one {"text", "type", "ids"} object a line.
const PromptIDs = "vocab/uniner-prompt-ids.jsonl"

// PromptCase is one case of [PromptIDs].
type PromptCase struct {
	Text string  `json:"text"`
	Type string  `json:"type"`
	IDs  []int32 `json:"ids"`
}

// PromptCaseCount is the number of cases in [PromptIDs].
const PromptCaseCount = 48

// PromptCases reads the cases of [PromptIDs], skipping (or failing) the
// test as [Dir] does when the file is absent, and failing it when a line
// is not a case or the file holds fewer than [PromptCaseCount].
func PromptCases(t testing.TB) []PromptCase {
	t.Helper()
	return promptCases(t, File(t, PromptIDs), PromptCaseCount)
}

func promptCases(t testing.TB, path string, atLeast int) []PromptCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	var cases []PromptCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var c PromptCase
		if err := dec.Decode(&c); err != nil || c.Text == "" || c.Type == "" || len(c.IDs) == 0 {
			t.Fatalf("%s:%d: not a case {\"text\", \"type\", \"ids\"} (%v)", path, n, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(cases) < atLeast {
		t.Fatalf("%s: %d cases, want %d", path, len(cases), atLeast)
	}
	return cases
}

// Dir returns the folder ../shared/data/sub beside the checkout (sub may
// be ""), or skips the test, saying why, when it is absent; with
// NERSTREAM_REQUIRE_SHARED_DATA=1 it fails the test instead.
func Dir(t testing.TB, sub string) string {
	t.Helper()
	return dir(t, root(), sub)
}

// File returns the file ../shared/data/rel beside the checkout, or skips
// (or fails) the test as [Dir] does when it is absent.
func File(t testing.TB, rel string) string {
	t.Helper()
	return file(t, root(), rel)
}

// Vocab returns LLaMA's vocabulary: the file that NERSTREAM_TEST_VOCAB
// names, else [LlamaVocab] in the shared data. It skips (or fails) the
// test as [Dir] does when the file is absent, and also when it is damaged
// as a binary file is by a UTF-8 text conversion (every byte that is not
// UTF-8 replaced by U+FFFD), which llama.cpp cannot load.
func Vocab(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(VocabEnv); p != "" {
		return vocab(t, p)
	}
	return vocab(t, file(t, root(), LlamaVocab))
}

// root is ../shared/data beside the module's root: the nearest folder at
// or above the test's working folder (its package's folder) that holds
// go.mod. A test binary run elsewhere gets "", and skips.
func root() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "data")
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func dir(t testing.TB, root, sub string) string {
	t.Helper()
	p := filepath.Join(root, sub)
	st, err := os.Stat(p)
	if err == nil && !st.IsDir() {
		err = errors.New("not a folder")
	}
	if root == "" || err != nil {
		missing(t, "this test needs ../shared/data/%s beside the checkout, and it is absent (%v)", sub, errOrNoModule(root, err))
	}
	return p
}

func file(t testing.TB, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	st, err := os.Stat(p)
	if err == nil && st.IsDir() {
		err = errors.New("a folder, not a file")
	}
	if root == "" || err != nil {
		missing(t, "this test needs ../shared/data/%s beside the checkout, and it is absent (%v)", rel, errOrNoModule(root, err))
	}
	return p
}

func vocab(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		missing(t, "this test needs LLaMA's vocabulary (../shared/data/%s beside the checkout, or %s), and it cannot be read (%v)", LlamaVocab, VocabEnv, err)
	}
	if utf8.Valid(data) && bytes.Contains(data, []byte("\uFFFD")) {
		missing(t, "%s is damaged: it is valid UTF-8 with %d U+FFFD replacement characters, so its binary bytes went through a text conversion, and llama.cpp cannot load it; point %s at a genuine copy (llama.cpp's models/ggml-vocab-llama-spm.gguf, 723,869 bytes, sha256 16c37245…0e69)",
			path, bytes.Count(data, []byte("\uFFFD")), VocabEnv)
	}
	return path
}

func errOrNoModule(root string, err error) error {
	if root == "" {
		return errors.New("no go.mod at or above the working folder")
	}
	return err
}

// missing skips the test with the reason, or fails it when RequireEnv
// is set.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1, and %s", RequireEnv, msg)
	}
	t.Skipf("SKIPPED: %s (set %s=1 to make this a failure)", msg, RequireEnv)
}
