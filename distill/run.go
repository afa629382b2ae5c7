package distill

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"sync"

	"github.com/nerstream/nerstream/model"
)

// DefaultPassageTokens is the paper's passage length: at most 256 tokens.
const DefaultPassageTokens = 256

// Document is a source document: its text, and where it came from (a file
// and line, a topic/partition/offset), which names its passages.
type Document struct {
	Source string
	Text   string
}

// Asker asks a teacher about one passage. [*Teacher] is one.
type Asker interface {
	Ask(ctx context.Context, passage string) (Answer, error)
}

// Options configure [Run]. Zero values take the defaults.
type Options struct {
	// PassageTokens is the most tokens of a passage, as Tokenizer counts.
	// Default: [DefaultPassageTokens].
	PassageTokens int
	// Tokenizer counts tokens for splitting. Default: [WhitespaceTokens];
	// a llama engine loaded with its vocabulary only counts the student
	// model's tokens.
	Tokenizer model.TokenCounter
	// NearDuplicate is the estimated Jaccard similarity of word shingles
	// from which a passage is a near duplicate of an earlier one, and
	// dropped (see [Dedup]). Default: [DefaultDedupThreshold]; 1 drops only
	// passages whose shingles are all the same.
	NearDuplicate float64
	// Sample is how many passages, drawn uniformly with Seed, go to the
	// teacher. Default: 0, all of them.
	Sample int
	// Seed seeds the sample, the negative types and the shuffles: the same
	// input, answers and Seed give the same output, byte for byte.
	Seed uint64
	// Negatives is how many negative types each passage gets.
	Negatives NegativePolicy
	// Filter bounds the mentions and types kept.
	Filter FilterOptions
	// Concurrency is how many passages are asked at once. Default: 4. The
	// teacher's own limits (its Concurrency, rate limits) apply as well.
	Concurrency int
	// TeacherID identifies what the answers depend on besides the passage
	// (the teacher's model, instruction and role). It goes into the
	// checkpoint keys, so that a checkpoint made with another teacher is
	// not taken for this one's answers. Default: empty.
	TeacherID string
	// Progress, when set, is called after every passage is settled, from
	// one goroutine at a time.
	Progress func(Progress)
}

// Progress is how far the asking has come.
type Progress struct {
	// Total is the passages to settle; Done those settled (answered now,
	// found in the checkpoint, refused or failed).
	Total, Done int
	// Cached counts the passages answered by the checkpoint.
	Cached int
	// PromptTokens and CompletionTokens are what this run's answers cost.
	PromptTokens, CompletionTokens int
}

// Report says what a run did, by step.
type Report struct {
	Documents       int `json:"documents"`
	EmptyDocuments  int `json:"empty_documents"`
	Passages        int `json:"passages"`
	ExactDuplicates int `json:"exact_duplicates"`
	NearDuplicates  int `json:"near_duplicates"`
	Sampled         int `json:"sampled"`

	// Asked counts the passages answered by the teacher in this run;
	// Cached those answered by the checkpoint.
	Asked  int `json:"asked"`
	Cached int `json:"cached"`
	// Refused counts passages the teacher refused for good (a 4xx other
	// than 401, 403, 404, 408 and 429): they are left out of the output
	// and asked again by the next run.
	Refused int `json:"refused"`
	// Failed counts passages still failing after the retries: with any,
	// the run writes no output.
	Failed int `json:"failed"`
	// Truncated counts answers cut at the teacher's max tokens; their
	// complete tuples are kept.
	Truncated int `json:"truncated"`

	Tuples        int         `json:"tuples"`
	TuplesSkipped int         `json:"tuples_malformed"`
	Dropped       FilterStats `json:"dropped"`
	// Records counts the output's records; NoPairs the passages left out
	// because they had no positive type and no negative one.
	Records int `json:"records"`
	NoPairs int `json:"passages_without_pairs"`

	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// ErrIncomplete is the error of a run in which some passages could not be
// answered: the answers it got are in the checkpoint, and running it again
// asks only the others.
var ErrIncomplete = errors.New("distill: some passages have no answer")

// Run turns documents into Pile-NER records, in the UniNER recipe:
//
//  1. Each document is split into passages of at most PassageTokens
//     tokens; exact and near-duplicate passages are dropped, the first of
//     each kept; Sample of them are drawn with Seed.
//  2. Each passage not in the checkpoint is sent to the teacher, and its
//     answer appended to the checkpoint as soon as it comes.
//  3. Once every passage has an answer, the answers are parsed
//     ([ParseTuples]) and filtered ([Filter]) and the records built
//     ([Build]), in passage order: the output does not depend on the order
//     in which answers came.
//
// A teacher that refuses the API key, or does not know the URL or model
// (401, 403, 404), stops the run at once. Passages that still fail after
// the teacher's retries make the run return [ErrIncomplete] (wrapped),
// with the report and no records. When ctx ends, Run returns ctx's error
// (wrapped) and the report so far; the checkpoint keeps every answer.
func Run(ctx context.Context, docs iter.Seq2[Document, error], teacher Asker, cp *Checkpoint, opts Options) ([]Record, Report, error) {
	if opts.PassageTokens == 0 {
		opts.PassageTokens = DefaultPassageTokens
	}
	if opts.Tokenizer == nil {
		opts.Tokenizer = WhitespaceTokens{}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	var rep Report
	passages, err := collect(ctx, docs, opts, &rep)
	if err != nil {
		return nil, rep, err
	}
	answers, err := ask(ctx, passages, teacher, cp, opts, &rep)
	if err != nil {
		return nil, rep, err
	}
	var ls []Labelled
	for i, p := range passages {
		e, ok := answers[i]
		if !ok {
			continue // refused
		}
		tuples, skipped := ParseTuples(e.Answer)
		rep.Tuples += len(tuples)
		rep.TuplesSkipped += skipped
		kept, dropped := Filter(p.Text, tuples, opts.Filter)
		rep.Dropped.add(dropped)
		named := make([]string, 0, len(tuples))
		for _, t := range tuples {
			named = append(named, NormalizeType(t.Type))
		}
		ls = append(ls, Labelled{Passage: p, Tuples: kept, Named: named})
	}
	records, noPairs := Build(ls, BuildOptions{Negatives: opts.Negatives, Seed: opts.Seed})
	rep.Records, rep.NoPairs = len(records), noPairs
	return records, rep, nil
}

// collect splits, deduplicates and samples the documents' passages.
func collect(ctx context.Context, docs iter.Seq2[Document, error], opts Options, rep *Report) ([]Passage, error) {
	dedup := NewDedup(opts.NearDuplicate)
	sampler := NewSampler(opts.Sample, opts.Seed)
	for d, err := range docs {
		if err != nil {
			return nil, err
		}
		rep.Documents++
		ps, err := Split(ctx, opts.Tokenizer, d.Source, d.Text, opts.PassageTokens)
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			rep.EmptyDocuments++
		}
		for _, p := range ps {
			rep.Passages++
			switch dup, kind := dedup.Seen(p.Text); {
			case !dup:
				sampler.Add(p)
			case kind == "exact":
				rep.ExactDuplicates++
			default:
				rep.NearDuplicates++
			}
		}
	}
	passages := sampler.Passages()
	rep.Sampled = len(passages)
	return passages, nil
}

// key is a passage's checkpoint key.
func (o Options) key(text string) string {
	if o.TeacherID == "" {
		return PassageKey(text)
	}
	return PassageKey(o.TeacherID + "\x00" + text)
}

// ask gets every passage's answer, from the checkpoint or the teacher, by
// passage index. Refused passages have none.
func ask(ctx context.Context, passages []Passage, teacher Asker, cp *Checkpoint, opts Options, rep *Report) (map[int]Entry, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		answers  = make(map[int]Entry, len(passages))
		progress = Progress{Total: len(passages)}
		lastErr  error
	)
	settle := func(i int, e *Entry, cached bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e != nil:
			answers[i] = *e
			if e.FinishReason == "length" {
				rep.Truncated++
			}
			if cached {
				rep.Cached++
				progress.Cached++
			} else {
				rep.Asked++
				rep.PromptTokens += e.Usage.PromptTokens
				rep.CompletionTokens += e.Usage.CompletionTokens
				progress.PromptTokens += e.Usage.PromptTokens
				progress.CompletionTokens += e.Usage.CompletionTokens
			}
		case refused(err):
			rep.Refused++
		default:
			rep.Failed++
			lastErr = err
		}
		progress.Done++
		if opts.Progress != nil {
			opts.Progress(progress)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(opts.Concurrency, max(len(passages), 1)) {
		wg.Go(func() {
			for i := range next {
				p := passages[i]
				key := opts.key(p.Text)
				if e, ok := cp.Lookup(key); ok {
					settle(i, &e, true, nil)
					continue
				}
				a, err := teacher.Ask(ctx, p.Text)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if fatal(err) {
						cancel(err)
						return
					}
					settle(i, nil, false, err)
					continue
				}
				e := Entry{Key: key, Source: fmt.Sprintf("%s#%d", p.Source, p.Index), Answer: a.Text, Usage: a.Usage, FinishReason: a.FinishReason}
				if err := cp.Append(e); err != nil {
					cancel(fmt.Errorf("distill: writing the checkpoint: %w", err))
					return
				}
				settle(i, &e, false, nil)
			}
		})
	}
feed:
	for i := range passages {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if rep.Failed > 0 {
		return nil, fmt.Errorf("%w: %d of %d passages failed after retries (the last: %v); run again to ask them, the %d answers so far are in the checkpoint",
			ErrIncomplete, rep.Failed, len(passages), lastErr, cp.Len())
	}
	return answers, nil
}

// fatal says whether an error of the teacher's will be every passage's:
// the API key refused, or the URL or model unknown.
func fatal(err error) bool {
	var te *TeacherError
	if !errors.As(err, &te) {
		return false
	}
	switch te.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}

// refused says whether the teacher refused this passage for good (a 400,
// say, for a prompt over its context, or a content filter), which asking
// again does not change.
func refused(err error) bool {
	var te *TeacherError
	return errors.As(err, &te) && !te.Retryable()
}

// add adds o's counts to s.
func (s *FilterStats) add(o FilterStats) {
	s.NotInPassage += o.NotInPassage
	s.EmptyType += o.EmptyType
	s.LongType += o.LongType
	s.EmptyMention += o.EmptyMention
	s.LongMention += o.LongMention
	s.Bracket += o.Bracket
	s.Duplicate += o.Duplicate
}
