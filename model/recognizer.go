package model

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nerstream/nerstream/internal/defaults"
	"github.com/nerstream/nerstream/internal/problems"
	"github.com/nerstream/nerstream/record"
)

// Annotation is the result for one document: its entities, and what the
// model said beside them. [Annotation.Record] makes the output record.
type Annotation struct {
	ID string
	// Types are the entity types that were asked about.
	Types []string
	// Entities are sorted by start, then end, then the order of Types.
	Entities []record.Entity
	// Unaligned holds what the model named but the text does not hold.
	Unaligned []record.Mention
	// EmptyScores holds, for each type whose answer was "[]" in every
	// window, the probability of that (the product over the windows).
	// Nil where the engine gave no probabilities.
	EmptyScores map[string]float64
	// BelowMinScore counts the entities dropped for a score under
	// RecognizerOptions.MinScore.
	BelowMinScore int
	// Answers are the model's answers as it gave them, before parsing:
	// one per window and entity type, window by window, each window's in
	// the order of Types. They are what Entities and Unaligned were read
	// from (nerstream serve shows them when asked to explain).
	Answers []Answer
	// Windows is the number of windows the text was split into.
	Windows int
	// PromptTokens and GeneratedTokens add up over the document's prompts.
	PromptTokens, GeneratedTokens int
	// Err is set when this document failed alone: a [*record.InputError]
	// for bad input, or the engine's error for one of its prompts.
	Err error
}

// Answer is the model's answer to one question: the raw text it generated
// about one entity type in one window of the text.
type Answer struct {
	Type string
	// Window is the index of the window, 0 for a text that needed one.
	Window int
	Text   string
}

// Record is the output record of the annotation (DESIGN.md, "Records"):
// modelName names the model, and metadata is the input's metadata object,
// passed through. Its Source is left for the caller to set.
func (a *Annotation) Record(modelName string, metadata json.RawMessage) record.Annotation {
	return record.Annotation{ID: a.ID, Model: modelName, EntityTypes: a.Types, Entities: a.Entities, Unaligned: a.Unaligned, EmptyScores: a.EmptyScores, Metadata: metadata}
}

// RecognizerOptions configure a [Recognizer]. Zero values take the
// defaults, which [DefaultRecognizerOptions] returns. The fields with YAML
// keys are the task's part of the configuration's model section.
type RecognizerOptions struct {
	// Types are asked about when a document names none.
	Types []string `yaml:"entity_types"`
	// Prompt selects the prompt variant.
	Prompt PromptOptions `yaml:"prompt"`
	// Parse is how answers are read: "lenient" (default; recovers lists
	// after chatter, cut short or holding non-strings) or "official"
	// (exactly UniNER's evaluation parser).
	Parse ParseMode `yaml:"parse"`
	// MaxNewTokens bounds each answer. Default: 256, as the official
	// decoding.
	MaxNewTokens int `yaml:"max_new_tokens"`
	// MaxTypes bounds the entity types of one document; each costs a
	// prompt. Default: 64.
	MaxTypes int `yaml:"max_entity_types"`
	// WindowTokens caps the text of one prompt in tokens (long documents
	// are split into overlapping windows). Default: 0, the context's
	// room. UniNER was trained on passages of at most 256 tokens; a cap
	// near that may suit long documents better.
	WindowTokens int `yaml:"window_tokens"`
	// OverlapTokens is the overlap of neighbouring windows. Default: 64.
	OverlapTokens int `yaml:"overlap_tokens"`
	// MinScore drops entities whose score (the model's probability of the
	// mention, 0 to 1) is lower, before output. Default: 0, keep
	// everything. An entity without a score (an engine that gives no
	// probabilities) is kept.
	MinScore float64 `yaml:"min_score"`
	// Calibration is a file that `nerstream eval --calibrate` wrote: a
	// monotone map from the raw score to the precision observed on a
	// labelled set, applied to every entity's score (before MinScore).
	// Default: none, raw scores. empty_scores stay raw.
	Calibration string `yaml:"calibration"`
	// MaxTypeRunes bounds one entity type's length. Default: 256.
	MaxTypeRunes int `yaml:"-"`
	// MaxTextBytes bounds one document's text; longer texts are refused
	// rather than split into very many windows. Default: 1 MiB.
	MaxTextBytes int `yaml:"-"`
	// Cache keeps the model's answers for texts seen before (see
	// [CachingEngine]). Default: off.
	Cache CacheOptions `yaml:"cache"`
}

// DefaultRecognizerOptions returns the options that zero values stand for.
func DefaultRecognizerOptions() RecognizerOptions {
	return RecognizerOptions{
		Prompt:        PromptOptions{Variant: VariantType, SupervisedFormat: DefaultSupervisedFormat},
		Parse:         ParseLenientMode,
		MaxNewTokens:  DefaultMaxNewTokens,
		MaxTypes:      64,
		OverlapTokens: 64,
		MaxTypeRunes:  256,
		MaxTextBytes:  1 << 20,
	}
}

// Validate reports every problem of the options, at their YAML keys. Zero
// values are problems here; [NewRecognizer] fills them with the defaults
// first.
func (o RecognizerOptions) Validate() error {
	var p problems.List
	for i, t := range o.Types {
		if strings.TrimSpace(t) == "" {
			p.Addf(fmt.Sprintf("entity_types[%d]", i), "must not be empty")
		}
	}
	p.Add("prompt", o.Prompt.Validate())
	p.Add("cache", o.Cache.Validate())
	if o.Parse != ParseLenientMode && o.Parse != ParseOfficialMode {
		p.Addf("parse", "%q is not one of lenient, official", o.Parse)
	}
	problems.Positive(&p, "max_new_tokens", o.MaxNewTokens)
	problems.Positive(&p, "max_entity_types", o.MaxTypes)
	if o.WindowTokens < 0 {
		p.Addf("window_tokens", "must be >= 0")
	}
	if o.OverlapTokens < 0 {
		p.Addf("overlap_tokens", "must be >= 0")
	}
	if !(o.MinScore >= 0 && o.MinScore <= 1) {
		p.Addf("min_score", "must be between 0 and 1")
	}
	if o.MaxTypeRunes <= 0 || o.MaxTextBytes <= 0 {
		p.Addf("", "MaxTypeRunes and MaxTextBytes must be > 0")
	}
	return p.Err()
}

// promptMargin covers the tokens a prompt may gain where the text meets the
// template, beyond the counts of the two apart.
const promptMargin = 8

// Recognizer annotates documents with an [Engine]. It is safe for
// concurrent use if the engine is.
type Recognizer struct {
	engine   Engine
	template *Template
	opts     RecognizerOptions
	cache    *Cache
	// calibration maps raw entity scores; nil: none.
	calibration *Calibration
}

// NewRecognizer checks the options and returns a Recognizer.
func NewRecognizer(engine Engine, opts RecognizerOptions) (*Recognizer, error) {
	if engine == nil {
		return nil, errors.New("recognizer: no engine")
	}
	opts = defaults.Fill(opts, DefaultRecognizerOptions())
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("recognizer: %w", err)
	}
	t, err := NewTemplate(opts.Prompt)
	if err != nil {
		return nil, err
	}
	if opts.MaxNewTokens >= engine.ContextTokens() {
		return nil, fmt.Errorf("recognizer: max new tokens %d leave no room in a context of %d", opts.MaxNewTokens, engine.ContextTokens())
	}
	r := &Recognizer{engine: engine, template: t, opts: opts}
	if opts.Calibration != "" {
		if r.calibration, err = ReadCalibration(opts.Calibration); err != nil {
			return nil, fmt.Errorf("recognizer: calibration: %w", err)
		}
	}
	if opts.Cache.Enabled() {
		if r.cache, err = NewCache(opts.Cache, nil); err != nil {
			return nil, fmt.Errorf("recognizer: %w", err)
		}
		r.engine = NewCachingEngine(engine, r.cache, opts.Cache.Model)
	}
	return r, nil
}

// Cache returns the recognizer's result cache, nil when it has none.
func (r *Recognizer) Cache() *Cache { return r.cache }

// Template returns the recognizer's prompt template.
func (r *Recognizer) Template() *Template { return r.template }

// job is one document on its way through Recognize.
type job struct {
	types   []string
	windows []Window
	group   int // index of the first window's group
}

// Recognize annotates docs with one Generate call to the engine, so that an
// engine batches them together. The result has one Annotation per document,
// in order. A bad document sets its own Annotation's Err; the error return
// is for a failure of the whole batch.
func (r *Recognizer) Recognize(ctx context.Context, docs []record.Document) ([]Annotation, error) {
	anns := make([]Annotation, len(docs))
	jobs := make([]job, len(docs))
	var groups []PromptGroup
	for i, d := range docs {
		anns[i].ID = d.ID
		types, err := r.check(d)
		if err != nil {
			anns[i].Err = err
			continue
		}
		anns[i].Types = types
		windows, err := r.split(ctx, d.Text, types)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Only a refusal of this document is its own error. An
			// engine that cannot count tokens (a remote tokenizer that
			// is down, a closed engine) fails the batch, so that the
			// documents are retried and held, not dead-lettered.
			if _, bad := errors.AsType[*record.InputError](err); !bad {
				return nil, err
			}
			anns[i].Err = err
			continue
		}
		jobs[i] = job{types: types, windows: windows, group: len(groups)}
		for _, w := range windows {
			g := PromptGroup{Prompts: make([]Prompt, len(types))}
			for k, t := range types {
				g.Prompts[k] = r.template.Prompt(w.Text, t)
			}
			groups = append(groups, g)
		}
		anns[i].Windows = len(windows)
	}
	if len(groups) == 0 {
		return anns, nil
	}
	out, err := r.engine.Generate(ctx, groups, GenerateOptions{MaxNewTokens: r.opts.MaxNewTokens})
	if err != nil {
		return nil, err
	}
	if len(out) != len(groups) {
		return nil, fmt.Errorf("recognizer: engine answered %d of %d prompt groups", len(out), len(groups))
	}
	for i := range docs {
		if anns[i].Err == nil {
			r.collect(&anns[i], docs[i].Text, jobs[i], out)
		}
	}
	return anns, nil
}

// Check validates a document as [Recognizer.Recognize] does before it
// calls the engine: the text (its size, UTF-8, not blank) and the entity
// types (given or configured, not blank, their length and number). The
// error is the [*record.InputError] that Recognize would set in the
// document's Annotation. It calls no engine: a caller that takes all
// documents or none (nerstream serve's /v1/annotate) checks each first, so
// that a bad one costs no generation. Only a refusal that needs token
// counts (a type whose prompt leaves no room for text) is left to
// Recognize.
func (r *Recognizer) Check(d record.Document) error {
	_, err := r.check(d)
	return err
}

// check validates a document and returns the types to ask about.
func (r *Recognizer) check(d record.Document) ([]string, error) {
	if len(d.Text) > r.opts.MaxTextBytes {
		return nil, &record.InputError{Reason: record.ReasonTextTooLong, Detail: fmt.Sprintf("text of %d bytes is over the limit of %d", len(d.Text), r.opts.MaxTextBytes)}
	}
	if !utf8.ValidString(d.Text) {
		return nil, &record.InputError{Reason: record.ReasonInvalidUTF8, Detail: "text is not valid UTF-8"}
	}
	if strings.TrimFunc(d.Text, isSpaceRune) == "" {
		return nil, &record.InputError{Reason: record.ReasonEmptyText, Detail: "text is empty"}
	}
	src := d.Types
	if len(src) == 0 {
		src = r.opts.Types
	}
	if len(src) == 0 {
		return nil, &record.InputError{Reason: record.ReasonNoTypes, Detail: "no entity types given and none configured"}
	}
	types := make([]string, 0, len(src))
	for _, t := range src {
		if !utf8.ValidString(t) {
			return nil, &record.InputError{Reason: record.ReasonInvalidType, Detail: "entity type is not valid UTF-8"}
		}
		t = strings.TrimFunc(t, isSpaceRune)
		if t == "" {
			return nil, &record.InputError{Reason: record.ReasonInvalidType, Detail: "entity type is empty"}
		}
		if n := utf8.RuneCountInString(t); n > r.opts.MaxTypeRunes {
			return nil, &record.InputError{Reason: record.ReasonTypeTooLong, Detail: fmt.Sprintf("entity type of %d characters is over the limit of %d", n, r.opts.MaxTypeRunes)}
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if len(types) > r.opts.MaxTypes {
		return nil, &record.InputError{Reason: record.ReasonTooManyTypes, Detail: fmt.Sprintf("%d entity types is over the limit of %d", len(types), r.opts.MaxTypes)}
	}
	return types, nil
}

// split cuts text into windows whose prompts fit the context with room for
// the answer, for the longest of the types.
func (r *Recognizer) split(ctx context.Context, text string, types []string) ([]Window, error) {
	longest := ""
	for _, t := range types {
		if q := r.template.Query(t); len(q) > len(longest) {
			longest = q
		}
	}
	room := r.engine.ContextTokens() - r.opts.MaxNewTokens
	frame := r.template.Prompt("", longest).String()
	// Bytes bound a prompt's tokens (plus BOS), so a short document needs
	// no counting at all.
	if len(frame)+len(text)+2 <= room && (r.opts.WindowTokens <= 0 || len(text)+1 <= r.opts.WindowTokens) {
		trimmed := strings.TrimLeftFunc(text, isSpaceRune)
		return []Window{{
			Text:  strings.TrimRightFunc(trimmed, isSpaceRune),
			Start: utf8.RuneCountInString(text[:len(text)-len(trimmed)]),
		}}, nil
	}
	overhead, err := r.engine.TokenCount(ctx, frame)
	if err != nil {
		return nil, fmt.Errorf("recognizer: counting tokens: %w", err)
	}
	budget := room - overhead - 1 - promptMargin
	if r.opts.WindowTokens > 0 {
		budget = min(budget, r.opts.WindowTokens)
	}
	if budget < 16 {
		return nil, &record.InputError{Reason: record.ReasonContextTooBig, Detail: fmt.Sprintf("the prompt for entity type %q leaves %d tokens for the text in a context of %d", longest, budget, r.engine.ContextTokens())}
	}
	c := Chunker{Counter: r.engine, Budget: budget, Overlap: r.opts.OverlapTokens}
	return c.Split(ctx, text)
}

// collect parses and aligns one document's answers.
func (r *Recognizer) collect(a *Annotation, text string, j job, out [][]Completion) {
	type key struct {
		start, end int
		typ        string
	}
	seen := map[key]int{}         // index in a.Entities
	empty := map[string]float64{} // log-probability of "[]" over the windows
	emptyAll := map[string]bool{} // every window answered "[]"
	scored := true
	aligned := map[record.Mention]bool{}
	var missed []record.Mention
	docAligner := NewAligner(text)
	for w, win := range j.windows {
		comps := out[j.group+w]
		if len(comps) != len(j.types) {
			a.Err = fmt.Errorf("recognizer: engine answered %d of %d prompts", len(comps), len(j.types))
			return
		}
		al := NewAligner(win.Text)
		for k, typ := range j.types {
			c := comps[k]
			if c.Err != nil {
				a.Err = fmt.Errorf("recognizer: window %d, entity type %q: %w", w, typ, c.Err)
				return
			}
			a.PromptTokens += c.PromptTokens
			a.GeneratedTokens += c.GeneratedTokens
			a.Answers = append(a.Answers, Answer{Type: typ, Window: w, Text: c.Text})
			sc, ok := scoreAnswer(c.Text, c.Tokens)
			scored = scored && ok
			if w == 0 || emptyAll[typ] {
				emptyAll[typ] = sc.empty
				empty[typ] += sc.emptyLP
			}
			for _, m := range Parse(r.opts.Parse, c.Text) {
				var score *float64
				if lp, ok := sc.mentions[m]; ok {
					score = probability(lp)
					if r.calibration != nil {
						*score = r.calibration.Apply(math.Exp(lp))
					}
				}
				spans := al.Find(m)
				if len(spans) == 0 {
					missed = append(missed, record.Mention{Type: typ, Text: m})
					continue
				}
				aligned[record.Mention{Type: typ, Text: m}] = true
				for _, s := range spans {
					s.Start += win.Start
					s.End += win.Start
					if i, dup := seen[key{s.Start, s.End, typ}]; dup {
						// Windows overlap: the same span keeps its higher score.
						if old := a.Entities[i].Score; old != nil && score != nil && *score > *old {
							a.Entities[i].Score = score
						}
						continue
					}
					seen[key{s.Start, s.End, typ}] = len(a.Entities)
					e := record.Entity{Text: docAligner.Slice(s), Type: typ, Start: s.Start, End: s.End, Score: score}
					if e.Text != m {
						e.Mention = m
					}
					a.Entities = append(a.Entities, e)
				}
			}
		}
	}
	if scored {
		for _, typ := range j.types {
			if emptyAll[typ] {
				if a.EmptyScores == nil {
					a.EmptyScores = map[string]float64{}
				}
				a.EmptyScores[typ] = *probability(empty[typ])
			}
		}
	}
	if r.opts.MinScore > 0 {
		n := len(a.Entities)
		a.Entities = slices.DeleteFunc(a.Entities, func(e record.Entity) bool { return e.Score != nil && *e.Score < r.opts.MinScore })
		a.BelowMinScore = n - len(a.Entities)
	}
	for _, m := range missed {
		if !aligned[m] && !slices.Contains(a.Unaligned, m) {
			a.Unaligned = append(a.Unaligned, m)
		}
	}
	typeIndex := func(t string) int { return slices.Index(j.types, t) }
	slices.SortStableFunc(a.Entities, func(x, y record.Entity) int {
		return cmp.Or(cmp.Compare(x.Start, y.Start), cmp.Compare(x.End, y.End), cmp.Compare(typeIndex(x.Type), typeIndex(y.Type)))
	})
}
