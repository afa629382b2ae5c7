package distill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func testEntry(i int) Entry {
	text := fmt.Sprintf("passage %d", i)
	return Entry{
		Key:    PassageKey(text),
		Source: fmt.Sprintf("doc.txt:%d", i),
		Answer: fmt.Sprintf(`[("Ada %d", "person"), ("<&>", "thing")]`+"\nsecond line \u2028 é", i),
		Usage:  Usage{PromptTokens: 100 + i, CompletionTokens: i},
	}
}

// entryLines returns the file's entries, failing on any line that is
// neither blank nor an entry with a key.
func entryLines(t *testing.T, path string) []Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("the file does not end with a line break: %q", b)
	}
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		e, err := decodeEntry(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v: %q", n, err, sc.Text())
		}
		out = append(out, e)
	}
	return out
}

func TestPassageKey(t *testing.T) {
	tests := []struct{ text, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb924"}, // SHA-256 of nothing, first 16 bytes
		{"abc", "ba7816bf8f01cfea414140de5dae2223"},
	}
	for _, tt := range tests {
		if got := PassageKey(tt.text); got != tt.want {
			t.Errorf("PassageKey(%q) = %s, want %s", tt.text, got, tt.want)
		}
	}
}

func TestCheckpointReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	c, err := OpenCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatalf("new checkpoint has %d entries", c.Len())
	}
	want := []Entry{testEntry(1), testEntry(2), testEntry(3)}
	want[2].FinishReason = "length"
	for _, e := range want {
		if err := c.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	dup := testEntry(2)
	dup.Answer = "other"
	if err := c.Append(dup); err != nil {
		t.Fatal(err)
	}
	if err := c.Append(Entry{Answer: "x"}); err == nil {
		t.Error("an entry without a key was appended")
	}
	if got, ok := c.Lookup(want[1].Key); !ok || got != want[1] {
		t.Errorf("Lookup = %+v, %v; want the first entry of the key", got, ok)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Append(testEntry(4)); !errors.Is(err, ErrCheckpointClosed) {
		t.Errorf("Append after Close = %v, want ErrCheckpointClosed", err)
	}
	if got := entryLines(t, path); !reflect.DeepEqual(got, want) {
		t.Errorf("file holds %+v, want %+v", got, want)
	}

	c, err = OpenCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Len() != len(want) || !reflect.DeepEqual(c.Entries(), want) {
		t.Errorf("reopened: %+v, want %+v", c.Entries(), want)
	}
	for _, e := range want {
		if got, ok := c.Lookup(e.Key); !ok || got != e {
			t.Errorf("Lookup(%s) = %+v, %v", e.Key, got, ok)
		}
	}
	if _, ok := c.Lookup(PassageKey("never asked")); ok {
		t.Error("Lookup found a key never appended")
	}
}

func TestCheckpointCutLastLine(t *testing.T) {
	line := func(i int) string {
		b, _ := json.Marshal(testEntry(i))
		return string(b) + "\n"
	}
	full := line(3)
	tests := []struct {
		name, tail string
	}{
		{"half a line", full[:len(full)/2]},
		{"a whole entry without its line break", strings.TrimSuffix(full, "\n")},
		{"not JSON, with a line break", `{"key":"abc","answer":` + "\n"},
		{"an entry without a key", `{"answer":"x"}` + "\n"},
		{"zeros", "\x00\x00\x00\x00"},
		{"nothing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.jsonl")
			good := line(1) + "\n" + line(2) // a blank line is skipped
			if err := os.WriteFile(path, []byte(good+tt.tail), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := OpenCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.Len() != 2 {
				t.Errorf("%d entries, want 2", c.Len())
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(good)) {
				t.Errorf("file size after open = %v (%v), want %d: the broken line cut", fi.Size(), err, len(good))
			}
			if err := c.Append(testEntry(3)); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			want := []Entry{testEntry(1), testEntry(2), testEntry(3)}
			if got := entryLines(t, path); !reflect.DeepEqual(got, want) {
				t.Errorf("file holds %+v, want %+v", got, want)
			}
			c, err = OpenCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Len() != 3 {
				t.Errorf("reopened: %d entries, want 3", c.Len())
			}
		})
	}
}

func TestCheckpointBadLine(t *testing.T) {
	good := func(i int) string {
		b, _ := json.Marshal(testEntry(i))
		return string(b) + "\n"
	}
	tests := []struct {
		name, content, want string
	}{
		{"not JSON", good(1) + "{oops\n" + good(2), "line 2"},
		{"no key", good(1) + good(2) + `{"answer":"x"}` + "\n" + good(3), "line 3: entry without a key"},
		{"after a blank line", "\n" + "[1]\n" + good(2), "line 2"},
		{"bad, then a cut line", good(1) + "nope\n" + `{"key":`, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := OpenCheckpoint(path)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to name %s and %q", err, path, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Error("a checkpoint with a bad line was changed")
			}
		})
	}
}

func TestCheckpointOpenError(t *testing.T) {
	_, err := OpenCheckpoint(filepath.Join(t.TempDir(), "no", "such", "dir", "run.jsonl"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestCheckpointConcurrentAppends(t *testing.T) {
	const writers, each = 8, 60
	path := filepath.Join(t.TempDir(), "run.jsonl")
	c, err := OpenCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			// Writers w and w+1 share half their keys.
			for i := range each {
				if err := c.Append(testEntry(w*each/2 + i)); err != nil {
					t.Error(err)
				}
				c.Lookup(PassageKey("x"))
				c.Len()
			}
		})
	}
	wg.Wait()
	unique := (writers + 1) * each / 2
	if c.Len() != unique {
		t.Errorf("%d entries, want %d", c.Len(), unique)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entryLines(t, path) {
		seen[e.Key]++
		if want := testEntry(e.Usage.CompletionTokens); e != want {
			t.Errorf("entry %+v, want %+v", e, want)
		}
	}
	if len(seen) != unique {
		t.Errorf("%d keys in the file, want %d", len(seen), unique)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("key %s written %d times", k, n)
		}
	}
}
