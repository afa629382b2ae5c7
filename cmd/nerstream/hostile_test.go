package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/gguf/gguftest"
)

// TestHostileModelFiles (issue 16): a model file that llama.cpp would
// abort on is bad input: exit 2 and one line that says what is wrong, from
// every command that loads a model. The whole hostile corpus goes through
// annotate; the files (the corpus's first five) through serve,
// run, demo, eval and bench engine too.
func TestHostileModelFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.json")
	os.WriteFile(data, []byte(`[{"id": "q1", "conversations": [
		{"from": "human", "value": "Text: Ada Lovelace met Charles Babbage ."}, {"from": "gpt", "value": "I've read this text."},
		{"from": "human", "value": "What describes person in the text?"}, {"from": "gpt", "value": "[\"Ada Lovelace\"]"}]}]`), 0o644)
	for i, c := range gguftest.Cases() {
		if c.Refused == "" || c.Mode != gguf.LoadModel {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("case-%d.gguf", i))
		if err := c.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		commands := [][]string{{"annotate", "--model", path, "--threads", "1"}}
		if i < 5 {
			commands = append(commands,
				[]string{"serve", "--model", path, "--threads", "1", "--listen", "127.0.0.1:0"},
				[]string{"demo", "--model", path, "--threads", "1"},
				[]string{"eval", "--data", data, "--model", path, "--threads", "1"},
				[]string{"bench", "engine", "--model", path, "--threads", "1", "--docs", "1"},
			)
		}
		for _, args := range commands {
			// serve too: it checks the file before it listens, and logs
			// nothing first.
			code, _, errs := runCLI(t, "", args...)
			t.Run(c.Name+"/"+args[0], func(t *testing.T) { checkOneLineError(t, code, 2, errs, c.Refused) })
		}
		if i < 5 {
			cfg := kafkatest.StreamConfig([]string{"127.0.0.1:1"})
			cfg.Model.Path, cfg.Model.Threads = path, 1
			code, _, errs := runCLI(t, "", "run", "--config", kafkatest.WriteConfig(t, cfg))
			// run logs JSON lines before it opens the model.
			t.Run(c.Name+"/run", func(t *testing.T) { checkOneLineError(t, code, 2, lastLine(errs), c.Refused) })
		}
	}
}

// lastLine returns the last line of s, with its newline: the error of a
// command that logs before it fails.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}
