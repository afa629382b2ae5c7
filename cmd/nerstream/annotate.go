package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/producers"
	"github.com/nerstream/nerstream/stream"
)

func runAnnotate(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("annotate", flag.ContinueOnError)
	ef := engines.Flags{MaxNewTokens: model.DefaultMaxNewTokens}
	ef.Register(fset, "the model (required)")
	types := fset.String("types", "person,organization,location", "entity types for documents that name none, comma-separated")
	parse := fset.String("parse", "lenient", "how answers are read: lenient or official")
	variant := fset.String("variant", "type", "prompt variant: type, definition or supervised")
	dataset := fset.String("dataset", "", "dataset name, for the supervised variant")
	batch := fset.Int("batch", 32, "documents per batch")
	noGrammar := fset.Bool("no-grammar", false, "do not hold answers to a JSON array of strings")
	substring := fset.Bool("substring", false, "hold every string of an answer to a substring of its passage")
	cache := registerCacheFlags(fset)
	var scores scoreFlags
	scores.register(fset)
	var cf configFlags
	cf.register(fset, false)
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	// --config and --set give the input.fields and output.mode/enrich
	// keys, as run takes them, and the model section's: where a flag
	// says otherwise, the flag wins (see annotateModel).
	cfg, problems, err := cf.load(config.Config.Validate)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return usagef("%s: %v (nerstream config check lists them)", cf.name(), problems)
	}
	lines := stream.LinesOptions{}
	if lines.Fields, err = cfg.Input.Fields.Selector(); err != nil {
		return usageError{err}
	}
	if cfg.Output.Mode == producers.ModeEnrich {
		if lines.Enrich, err = cfg.Output.Enrich.Enricher(); err != nil {
			return usageError{err}
		}
	}
	if err := checkCacheFlags(*cache); err != nil {
		return err
	}
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	ro, err := annotateModel(cfg.Model, given, &ef, annotateFlags{
		types: *types, parse: *parse, variant: *variant, dataset: *dataset, cache: *cache, scores: scores,
	})
	if err != nil {
		return err
	}
	if ef.Model == "" && ef.Engine != "openai" {
		return usagef("--model is required")
	}
	if len(pos) > 1 {
		return usagef("one input file at most, got %d", len(pos))
	}
	if *batch <= 0 || ro.MaxNewTokens <= 0 {
		return usagef("--batch and --max-new-tokens must be > 0")
	}
	in, name, err := openInput(s, pos)
	if err != nil {
		return err
	}
	defer in.Close()
	m, err := openModel(ctx, &ef, s.err, func(o *engines.Options) {
		o.Llama.NoGrammar, o.Llama.SubstringAnswers = *noGrammar, *substring
		o.Pull.MaxBytes = int64(cfg.Model.PullMaxBytes)
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if ro.Cache.Model, err = cacheIdentity(ro.Cache, m); err != nil {
		return err
	}
	rec, err := model.NewRecognizer(m.Engine, ro)
	if err != nil {
		return usageError{err}
	}
	p := newProgress(s.err)
	lines.Name, lines.Model, lines.Batch, lines.Progress = name, m.Name, *batch, p.set
	err = stream.AnnotateLines(ctx, rec, in, s.out, lines)
	if err != nil {
		return err
	}
	p.done()
	if c := rec.Cache(); c != nil {
		st := c.Stats()
		fmt.Fprintf(s.err, "annotate: result cache: %d hits, %d misses (prompts)\n", st.Hits, st.Misses)
	}
	return nil
}

// annotateFlags are annotate's own flags of the model section.
type annotateFlags struct {
	types, parse, variant, dataset string
	cache                          model.CacheOptions
	scores                         scoreFlags
}

// annotateModel merges the model section of the configuration (the file,
// the NERSTREAM_* environment, --set) with annotate's flags, so that no
// setting given is ignored: a flag given on the command line wins, and the
// section fills in the rest, the engine flags in ef included. The openai
// engine's keys are refused in one line: model.engine: openai always, and
// model.openai.* when --engine openai would use them (with the llama
// engine they are ignored, as run ignores them): annotate takes that
// engine from its flags. The entity scores'
// settings (the minimum, the calibration file) are checked here, before
// any input is read.
func annotateModel(m config.Model, given map[string]bool, ef *engines.Flags, f annotateFlags) (model.RecognizerOptions, error) {
	def := config.Default().Model
	switch {
	case m.Engine != def.Engine:
		return model.RecognizerOptions{}, usagef("model.engine: annotate takes the openai engine from its flags (--engine openai --endpoint URL …), not from the configuration")
	case ef.Engine == "openai" && !reflect.DeepEqual(m.OpenAI, def.OpenAI):
		// With the llama engine the section is ignored, as run ignores
		// it: a NERSTREAM_MODEL_OPENAI_* variable exported for another
		// command must not stop a local annotate.
		return model.RecognizerOptions{}, usagef("model.openai: annotate takes the openai engine's settings from its flags (--endpoint, --dialect, --api-key-file …), not from the configuration")
	}
	if !given["model"] && m.Path != "" && ef.Engine != "openai" {
		ef.Model = m.Path
	}
	if !given["threads"] {
		ef.Threads = m.Threads
	}
	if !given["gpu-layers"] {
		ef.GPULayers = m.GPULayers
	}
	if !given["backends-dir"] {
		ef.BackendsDir = m.BackendsDir
	}
	if !given["devices"] {
		ef.Devices = strings.Join(m.Devices, ",")
	}
	ro := m.RecognizerOptions
	if given["types"] || len(ro.Types) == 0 {
		// Without types, every document that names none would fail,
		// each line in its own error record, and the command would
		// exit 0.
		if ro.Types = splitList(f.types); len(ro.Types) == 0 {
			return ro, usagef("--types names no entity type (give a comma-separated list, like person,organization)")
		}
	}
	if given["parse"] {
		ro.Parse = model.ParseMode(f.parse)
	}
	if given["variant"] {
		ro.Prompt.Variant = model.Variant(f.variant)
	}
	if given["dataset"] {
		ro.Prompt.Dataset = f.dataset
	}
	if given["max-new-tokens"] {
		ro.MaxNewTokens = ef.MaxNewTokens
	} else {
		ef.MaxNewTokens = ro.MaxNewTokens
	}
	if f.cache.Enabled() {
		ro.Cache = f.cache // else model.cache, as run takes it
	}
	minName, calName := "model.min_score", "model.calibration"
	if given["min-score"] {
		ro.MinScore, minName = f.scores.minScore, "--min-score"
	}
	if given["calibration"] {
		ro.Calibration, calName = f.scores.calibration, "--calibration"
	}
	if err := checkScores(minName, ro.MinScore, calName, ro.Calibration); err != nil {
		return ro, err
	}
	return ro, nil
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

// progress draws a one-line counter on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	on    bool
	n     int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, start: time.Now(), on: hub.IsTerminal(w)}
}

func (p *progress) set(n int) {
	p.n = n
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
