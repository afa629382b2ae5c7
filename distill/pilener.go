package distill

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Write writes records to w as a JSON list (jsonList true) formatted one
// record per line inside the brackets, or as JSON lines (jsonList false).
// HTML characters are not escaped and non-ASCII text is written raw (the
// answers themselves are ASCII, see FormatAnswer).
func Write(w io.Writer, records []Record, jsonList bool) error {
	bw := bufio.NewWriter(w)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if jsonList {
		if len(records) == 0 {
			bw.WriteString("[]\n")
		} else {
			bw.WriteString("[\n")
		}
	}
	for i, r := range records {
		buf.Reset()
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("distill: encode record %d (id %q): %w", i, r.ID, err)
		}
		line := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		bw.Write(line)
		switch {
		case !jsonList:
			bw.WriteByte('\n')
		case i < len(records)-1:
			bw.WriteString(",\n")
		default:
			bw.WriteString("\n]\n")
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("distill: write records: %w", err)
	}
	return nil
}

// WriteFile writes records to path atomically: to a temporary file in the
// same folder, synced, then renamed over path. The format follows the
// extension: .json is a JSON list, .jsonl (or anything else) JSON lines.
func WriteFile(path string, records []Record) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	jsonList := strings.EqualFold(filepath.Ext(path), ".json")
	if err := Write(f, records, jsonList); err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("distill: write %s: %w", path, err)
	}
	// Make the rename itself durable; not every system can sync a folder.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Read reads records written by Write, in either form: a JSON list, or one
// JSON record per line (blank lines allowed).
func Read(r io.Reader) ([]Record, error) {
	br := bufio.NewReader(r)
	// Peek past white space and a byte-order mark to tell the forms apart.
	var first byte
	for {
		c, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("distill: read records: %w", err)
		}
		if c == 0xEF { // the UTF-8 byte-order mark EF BB BF
			if bom, _ := br.Peek(2); bytes.Equal(bom, []byte{0xBB, 0xBF}) {
				br.Discard(2)
				continue
			}
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			first = c
			br.UnreadByte()
			break
		}
	}
	dec := json.NewDecoder(br)
	if first == '[' {
		var records []Record
		if err := dec.Decode(&records); err != nil {
			return nil, fmt.Errorf("distill: read a JSON list of records: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("distill: read records: text after the JSON list")
		}
		return records, nil
	}
	var records []Record
	for {
		var rec Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return records, nil
		}
		if err != nil {
			return nil, fmt.Errorf("distill: read record %d: %w", len(records), err)
		}
		records = append(records, rec)
	}
}
