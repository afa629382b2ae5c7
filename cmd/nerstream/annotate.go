package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/model/openai"
	"github.com/nerstream/nerstream/record"
)

// annotateError is the record written for a line that gives no annotation.
type annotateError struct {
	Line  int    `json:"line"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

func runAnnotate(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("annotate", flag.ContinueOnError)
	engineName := fset.String("engine", "llama", "llama (in process, --model F.gguf) or openai (OpenAI-compatible servers, --endpoint)")
	modelPath := fset.String("model", "", "GGUF model file (llama engine, required); with --engine openai, the served model's name, if the server wants one")
	var endpoints setFlag
	fset.Var(&endpoints, "endpoint", "openai engine: a server's base URL, like http://gpu-1:8000/v1; repeatable, for a pool")
	dialect := fset.String("dialect", "", "openai engine: the server's extensions, llama-server (and nerstream serve) or vllm; empty for plain OpenAI")
	apiKeyFile := fset.String("api-key-file", "", "openai engine: a file holding the API key (else $OPENAI_API_KEY)")
	timeout := fset.Duration("request-timeout", 60*time.Second, "openai engine: the longest one request may take before it is retried")
	types := fset.String("types", "person,organization,location", "entity types for documents that name none, comma-separated")
	threads := fset.Int("threads", 0, "CPU threads (default: all)")
	gpuLayers := fset.Int("gpu-layers", -1, "layers to offload to a GPU: -1 all, 0 none")
	parse := fset.String("parse", "lenient", "how answers are read: lenient or official")
	variant := fset.String("variant", "type", "prompt variant: type, definition or supervised")
	dataset := fset.String("dataset", "", "dataset name, for the supervised variant")
	maxNew := fset.Int("max-new-tokens", model.DefaultMaxNewTokens, "most tokens per answer")
	batch := fset.Int("batch", 32, "documents per batch")
	noGrammar := fset.Bool("no-grammar", false, "do not hold answers to a JSON array of strings")
	substring := fset.Bool("substring", false, "hold every string of an answer to a substring of its passage")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	switch *engineName {
	case "llama":
		if *modelPath == "" {
			return usagef("--model is required")
		}
	case "openai":
		if len(endpoints) == 0 {
			return usagef("--engine openai needs at least one --endpoint")
		}
		if *timeout <= 0 {
			return usagef("--request-timeout must be > 0")
		}
	default:
		return usagef("--engine %q is not one of llama, openai", *engineName)
	}
	if len(pos) > 1 {
		return usagef("one input file at most, got %d", len(pos))
	}
	if *batch <= 0 || *maxNew <= 0 {
		return usagef("--batch and --max-new-tokens must be > 0")
	}
	in, name, err := openInput(s, pos)
	if err != nil {
		return err
	}
	defer in.Close()
	var eng model.Engine
	modelName := filepath.Base(*modelPath)
	if *engineName == "openai" {
		oe, err := openai.New(openai.Options{
			Endpoints:  endpoints,
			Model:      *modelPath,
			APIKey:     os.Getenv("OPENAI_API_KEY"),
			APIKeyFile: *apiKeyFile,
			Dialect:    openai.Dialect(*dialect),
			Timeout:    *timeout,
		})
		if err != nil {
			return usageError{err}
		}
		defer oe.Close()
		eng = oe
		if *modelPath == "" {
			modelName = "openai"
		}
	} else {
		opts := llama.DefaultOptions()
		opts.Threads = *threads
		opts.GPULayers = *gpuLayers
		opts.NoGrammar = *noGrammar
		opts.SubstringAnswers = *substring
		le, err := loadEngine(*modelPath, opts)
		if err != nil {
			return err
		}
		defer le.Close()
		eng = le
	}
	rec, err := model.NewRecognizer(eng, model.RecognizerOptions{
		Prompt:       model.PromptOptions{Variant: model.Variant(*variant), Dataset: *dataset},
		Parse:        model.ParseMode(*parse),
		Types:        splitList(*types),
		MaxNewTokens: *maxNew,
	})
	if err != nil {
		return usageError{err}
	}
	a := annotator{rec: rec, model: modelName, name: name, out: bufio.NewWriter(s.out), progress: newProgress(s.err)}
	if err := a.run(ctx, in, *batch); err != nil {
		return err
	}
	a.progress.done()
	return nil
}

// loadEngine loads a model, telling a bad path (exit 2) from a failure
// of the engine (exit 1).
func loadEngine(path string, opts llama.Options) (*llama.Engine, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("--model: %v", err)
	}
	if st.IsDir() {
		return nil, usagef("--model: %s is a folder", path)
	}
	eng, err := llama.Load(path, opts)
	if err != nil {
		if strings.Contains(err.Error(), "not a GGUF file") {
			return nil, usageError{err}
		}
		return nil, err
	}
	return eng, nil
}

func openInput(s streams, pos []string) (io.ReadCloser, string, error) {
	if len(pos) == 0 || pos[0] == "-" {
		return io.NopCloser(s.in), "stdin", nil
	}
	f, err := os.Open(pos[0])
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, "", usagef("%v", err)
		}
		return nil, "", err
	}
	return f, filepath.Base(pos[0]), nil
}

func splitList(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// annotator turns JSON lines into annotation records, in input order.
type annotator struct {
	rec      *model.Recognizer
	model    string
	name     string
	out      *bufio.Writer
	progress *progress
}

// line is one input line waiting for its batch.
type line struct {
	n   int
	doc record.Document
	err error
}

func (a *annotator) run(ctx context.Context, in io.Reader, batch int) error {
	br := bufio.NewReaderSize(in, 1<<20)
	var pending []line
	n := 0
	for {
		text, rerr := br.ReadString('\n')
		if len(text) > 0 {
			n++
			if strings.TrimSpace(text) != "" {
				doc, err := consumers.DecodeJSON([]byte(text), consumers.Limits{})
				if err == nil && doc.ID == "" {
					doc.ID = fmt.Sprintf("%s:%d", a.name, n)
				}
				pending = append(pending, line{n: n, doc: doc, err: err})
			}
		}
		if len(pending) >= batch || (rerr != nil && len(pending) > 0) {
			if err := a.flush(ctx, pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
		if rerr == io.EOF {
			return a.out.Flush()
		}
		if rerr != nil {
			return fmt.Errorf("reading the input: %w", rerr)
		}
	}
}

func (a *annotator) flush(ctx context.Context, lines []line) error {
	var docs []record.Document
	for _, l := range lines {
		if l.err == nil {
			docs = append(docs, l.doc)
		}
	}
	anns, err := a.rec.Recognize(ctx, docs)
	if err != nil {
		return fmt.Errorf("annotating lines %d to %d: %w", lines[0].n, lines[len(lines)-1].n, err)
	}
	enc := json.NewEncoder(a.out)
	enc.SetEscapeHTML(false)
	k := 0
	for _, l := range lines {
		var rec any
		switch {
		case l.err != nil:
			rec = annotateError{Line: l.n, Error: l.err.Error()}
		case anns[k].Err != nil:
			rec = annotateError{Line: l.n, ID: l.doc.ID, Error: anns[k].Err.Error()}
			k++
		default:
			rec = anns[k].Record(a.model, l.doc.Metadata)
			k++
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
		a.progress.add(1)
	}
	return a.out.Flush()
}

// progress draws a one-line counter on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	on    bool
	n     int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) add(n int) {
	p.n += n
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := float64(p.n) / time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "\rannotated %d documents (%.1f/s)", p.n, rate)
}

func (p *progress) done() {
	if p.on && p.n > 0 {
		fmt.Fprintf(p.w, "\rannotated %d documents in %s\n", p.n, time.Since(p.start).Round(time.Millisecond))
	}
}
