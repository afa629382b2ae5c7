package distill

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// checkpointSyncEvery is how many appends a Checkpoint makes between
// syncs to stable storage. Each append is written to the OS at once, so a
// crash of the process loses nothing; a crash of the machine loses at most
// the appends since the last sync, whose passages are then asked again:
// 32 answers cost less than a sync per answer would on a slow disk.
const checkpointSyncEvery = 32

// ErrCheckpointClosed is returned by [Checkpoint.Append] after
// [Checkpoint.Close].
var ErrCheckpointClosed = errors.New("distill: checkpoint is closed")

// Entry is one answered passage, a line of a [Checkpoint].
type Entry struct {
	// Key identifies the question: the [PassageKey] of the passage's text,
	// or, as [Run] writes it, of the teacher's settings and the text (see
	// [Options.TeacherID]). Required.
	Key string `json:"key"`
	// Source is where the passage came from.
	Source string `json:"source"`
	// Answer is the teacher's raw text.
	Answer string `json:"answer"`
	// Usage is what the answer cost.
	Usage Usage `json:"usage"`
	// FinishReason is the teacher's finish_reason ("length": the answer
	// was cut at the token bound); empty when not known.
	FinishReason string `json:"finish_reason,omitempty"`
}

// PassageKey identifies a passage's text: the hex form of the first 16
// bytes of its SHA-256 (32 hex digits).
func PassageKey(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:16])
}

// Checkpoint is a journal of answered passages, so that a run that is
// stopped and started again never pays the teacher twice for a passage: an
// append-only file of [Entry] values, one JSON object a line, and nothing
// else. It is safe for concurrent use; use one at a time per file (it
// takes no lock on the file).
type Checkpoint struct {
	path string

	mu       sync.Mutex
	f        *os.File // nil once closed
	size     int64    // the file's length: where the next line starts
	unsynced int      // appends since the last sync
	broken   error    // a failed write that could not be undone
	entries  []Entry
	index    map[string]int // Key → entries index
}

// OpenCheckpoint opens the checkpoint file at path, creating it if need
// be, and loads the entries already there.
//
// A last line cut by a crash (one without a line break at its end, or
// that is not a valid entry) is ignored and cut from the file, so that
// appends go on from a clean line; a bad line anywhere else is an error
// that names its number. Blank lines are skipped; of entries with the same
// key, the first counts.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("distill: opening the checkpoint: %w", err)
	}
	c := &Checkpoint{path: path, f: f, index: map[string]int{}}
	if err := c.load(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// load reads the entries and cuts a broken last line.
func (c *Checkpoint) load() error {
	r := bufio.NewReaderSize(c.f, 64<<10)
	var good int64 // the length of the lines read well
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // empty, or cut before its line break: dropped
		}
		if err != nil {
			return fmt.Errorf("distill: reading the checkpoint %s: %w", c.path, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			good += int64(len(line))
			continue
		}
		e, err := decodeEntry(line)
		if err != nil {
			if _, perr := r.Peek(1); perr == io.EOF {
				break // the last line: cut by a crash
			}
			return fmt.Errorf("distill: checkpoint %s: line %d: %w", c.path, lineNo, err)
		}
		good += int64(len(line))
		if _, ok := c.index[e.Key]; !ok {
			c.index[e.Key] = len(c.entries)
			c.entries = append(c.entries, e)
		}
	}
	fi, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("distill: checkpoint %s: %w", c.path, err)
	}
	if fi.Size() != good {
		if err := c.f.Truncate(good); err != nil {
			return fmt.Errorf("distill: cutting the broken last line of the checkpoint %s: %w", c.path, err)
		}
	}
	c.size = good
	return nil
}

// decodeEntry reads one line.
func decodeEntry(line []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return Entry{}, err
	}
	if e.Key == "" {
		return Entry{}, errors.New("entry without a key")
	}
	return e, nil
}

// Path returns the file's path.
func (c *Checkpoint) Path() string { return c.path }

// Lookup returns the entry for key, if its passage was answered.
func (c *Checkpoint) Lookup(key string) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[key]
	if !ok {
		return Entry{}, false
	}
	return c.entries[i], true
}

// Len returns the number of entries.
func (c *Checkpoint) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Entries returns a copy of the entries, in the order they were appended.
func (c *Checkpoint) Entries() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Entry(nil), c.entries...)
}

// Append writes e as one line, handed to the OS at once, and records it;
// every 32 appends, and on Close, the file is synced to stable storage (a
// machine crash loses at most the unsynced tail, which is asked again).
// Appending a key already present does nothing. An entry without a key is
// an error; so is an append after Close ([ErrCheckpointClosed]). A failed
// write is cut back off the file, so that later appends stay on lines of
// their own.
func (c *Checkpoint) Append(e Entry) error {
	if e.Key == "" {
		return fmt.Errorf("distill: checkpoint %s: entry without a key", c.path)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil { // ends the line with '\n'
		return fmt.Errorf("distill: checkpoint %s: %w", c.path, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.f == nil:
		return ErrCheckpointClosed
	case c.broken != nil:
		return c.broken
	}
	if _, ok := c.index[e.Key]; ok {
		return nil
	}
	n, err := c.f.Write(buf.Bytes())
	if err != nil {
		werr := fmt.Errorf("distill: writing the checkpoint %s: %w", c.path, err)
		if n > 0 {
			if terr := c.f.Truncate(c.size); terr != nil {
				c.broken = fmt.Errorf("%w (and cutting the partial line failed: %v)", werr, terr)
				return c.broken
			}
		}
		return werr
	}
	c.size += int64(n)
	c.index[e.Key] = len(c.entries)
	c.entries = append(c.entries, e)
	if c.unsynced++; c.unsynced >= checkpointSyncEvery {
		c.unsynced = 0
		if err := c.f.Sync(); err != nil {
			return fmt.Errorf("distill: syncing the checkpoint %s: %w", c.path, err)
		}
	}
	return nil
}

// Close syncs the file to stable storage and closes it. Closing again
// does nothing.
func (c *Checkpoint) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	f := c.f
	c.f = nil
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("distill: closing the checkpoint %s: %w", c.path, err)
	}
	return nil
}
