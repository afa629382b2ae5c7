package eval

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nerstream/nerstream/model"
)

// Query is one question of a dataset: one passage, one entity type.
type Query struct {
	ID   string
	Text string
	Type string
	// Gold are the gold mentions as the official parser reads them, not
	// normalised, repeats kept.
	Gold []string
	// GoldSpans are the gold mentions' exact places in Text, when the
	// source has them (CoNLL). Nil means the source has only strings
	// (UniNER JSON), and the span metric aligns them.
	GoldSpans []model.Span
}

// Dataset is the queries of one file.
type Dataset struct {
	// Name is the file's name without its extension.
	Name    string
	Queries []Query
}

// ErrFormat marks a file that is not a readable dataset.
var ErrFormat = errors.New("bad dataset file")

// formatError is an ErrFormat, with the line it was found on when known.
func formatError(line int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Errorf("%w: %s", ErrFormat, msg)
}

// LoadOptions configure [Load].
type LoadOptions struct {
	// LabelMap maps CoNLL labels to entity types; see [ReadCoNLL]. Nil
	// means [DefaultLabelMap].
	LabelMap map[string]string
}

// datasetExts are the files a folder is searched for.
var datasetExts = []string{".json", ".jsonl", ".txt", ".conll", ".bio", ".iob", ".tsv"}

// Load reads a dataset file, or every dataset file in a folder (not its
// sub-folders), sorted by name. The format is found from the content:
// UniNER conversation JSON (a list, or one record per line) or CoNLL.
func Load(path string, opts LoadOptions) ([]Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		d, err := loadFile(path, opts)
		if err != nil {
			return nil, err
		}
		return []Dataset{d}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []Dataset
	for _, e := range entries {
		if e.IsDir() || !slices.Contains(datasetExts, strings.ToLower(filepath.Ext(e.Name()))) {
			continue
		}
		d, err := loadFile(filepath.Join(path, e.Name()), opts)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no dataset files (%s) in the folder", ErrFormat, path, strings.Join(datasetExts, ", "))
	}
	return out, nil
}

func loadFile(path string, opts LoadOptions) (Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return Dataset{}, err
	}
	defer f.Close()
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	br := bufio.NewReaderSize(f, 1<<16)
	head, _ := br.Peek(512)
	head = bytes.TrimLeft(head, " \t\r\n\ufeff")
	var d Dataset
	switch {
	case len(head) == 0:
		return Dataset{}, fmt.Errorf("%s: %w", path, formatError(0, "the file is empty"))
	case head[0] == '[' || head[0] == '{':
		d, err = ReadUniNER(br, name)
	default:
		labels := opts.LabelMap
		if labels == nil {
			labels = DefaultLabelMap()
		}
		d, err = ReadCoNLL(br, name, labels)
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// readLines calls fn for each line of r, numbered from 1, without its line
// ending, and without a byte order mark at the start of the first line.
// Lines may be long.
func readLines(r io.Reader, fn func(n int, line string) error) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if len(line) > 0 || err == nil {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if n == 1 {
				line = strings.TrimPrefix(line, "\ufeff")
			}
			if ferr := fn(n, line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
