package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/consumers"
	"github.com/nerstream/nerstream/distill"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
)

// nerstream distill: teacher-labelled UniNER training data from a file or
// a topic (see package distill). `nerstream distill stats FILE` describes
// a dataset.
func runDistill(ctx context.Context, s streams, args []string) error {
	if len(args) > 0 && args[0] == "stats" {
		return runDistillStats(s, args[1:])
	}
	fset := flag.NewFlagSet("distill", flag.ContinueOnError)
	in := fset.String("in", "", "input file: JSON lines ({\"text\": …, \"id\": …}) or plain text, documents separated by blank lines")
	var topics setFlag
	fset.Var(&topics, "topic", "read this topic instead of --in, from its start to its end now, as run reads input (with --config); repeatable")
	var cf configFlags
	cf.register(fset, false)
	teacherURL := fset.String("teacher", "", "the teacher's OpenAI-compatible API base, like http://host:8000/v1 (required)")
	teacherModel := fset.String("teacher-model", "", "the teacher's model name (required)")
	out := fset.String("out", "", "output file, Pile-NER conversations: a JSON list for .json, JSON lines otherwise (required)")
	checkpoint := fset.String("checkpoint", "", "the journal of answers that a stopped run resumes from (default: OUT.checkpoint.jsonl)")
	negatives := fset.Int("negatives", 2, "negative entity types per passage, drawn by frequency over the dataset")
	negRatio := fset.Float64("negative-ratio", 0, "negative types per positive type instead of a fixed count (rounded half up)")
	seed := fset.Uint64("seed", 1, "seeds the sample, the negatives and the shuffles")
	sample := fset.Int("sample", 0, "passages to draw (uniformly, with --seed) for the teacher; 0: all")
	passageTokens := fset.Int("passage-tokens", distill.DefaultPassageTokens, "most tokens per passage")
	tokenizer := fset.String("tokenizer", "whitespace", "how passage tokens are counted: whitespace, or a GGUF model whose vocabulary counts them (the student's)")
	nearDup := fset.Float64("near-duplicate", distill.DefaultDedupThreshold, "word-shingle similarity from which a passage is a near duplicate and dropped, in (0, 1]")
	apiKeyFile := fset.String("api-key-file", "", "a file holding the teacher's API key (else $OPENAI_API_KEY)")
	role := fset.String("role", distill.RoleUser, "where the instruction goes: user (the paper's layout: its system message, then the instruction and the passage) or system (the instruction as the system message)")
	noSystem := fset.Bool("no-system-message", false, "with --role user, leave out the paper's system message (for chat templates that take none)")
	maxTokens := fset.Int("max-tokens", 1024, "most tokens of one answer")
	concurrency := fset.Int("concurrency", 4, "requests to the teacher at once")
	rpm := fset.Int("rpm", 0, "most requests per minute; 0: no limit")
	tpm := fset.Int("tpm", 0, "most tokens per minute (prompt estimate plus max tokens, corrected by usage); 0: no limit")
	retries := fset.Int("retries", 5, "retries of a failed request (429, 5xx, timeouts, cut connections)")
	timeout := fset.Duration("request-timeout", 2*time.Minute, "the longest one request may take before it is retried")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	switch {
	case *teacherURL == "" || *teacherModel == "" || *out == "":
		return usagef("--teacher, --teacher-model and --out are required")
	case (*in == "") == (len(topics) == 0 && cf.path == ""):
		return usagef("give one input: --in FILE, or --config F (with --topic T or its input.topics)")
	case *in != "" && (len(topics) > 0 || cf.path != ""):
		return usagef("--in and --topic/--config exclude each other")
	case *negatives < 0 || *negRatio < 0 || *sample < 0 || *passageTokens < 2 || *maxTokens <= 0 || *concurrency <= 0 || *rpm < 0 || *tpm < 0 || *timeout <= 0:
		return usagef("--negatives, --negative-ratio, --sample, --rpm and --tpm must be >= 0; --passage-tokens >= 2; --max-tokens, --concurrency and --request-timeout > 0")
	case !(*nearDup > 0 && *nearDup <= 1):
		return usagef("--near-duplicate must be in (0, 1]")
	}
	policy := distill.NegativePolicy{Count: *negatives}
	if *negRatio > 0 {
		policy = distill.NegativePolicy{Ratio: *negRatio}
	}
	if *checkpoint == "" {
		*checkpoint = *out + ".checkpoint.jsonl"
	}

	teacher, err := distill.NewTeacher(distill.TeacherOptions{
		BaseURL: *teacherURL, Model: *teacherModel, APIKey: os.Getenv("OPENAI_API_KEY"), APIKeyFile: *apiKeyFile,
		Role: *role, OmitSystemMessage: *noSystem, MaxTokens: *maxTokens, Concurrency: *concurrency,
		RequestsPerMinute: *rpm, TokensPerMinute: *tpm, Retries: *retries, Timeout: *timeout,
	})
	if err != nil {
		return usageError{err}
	}
	counter, closeCounter, err := distillTokenizer(ctx, *tokenizer, s.err)
	if err != nil {
		return err
	}
	defer closeCounter()

	var docs iter.Seq2[distill.Document, error]
	var skipped *int
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return usagef("--in: %v", err)
		}
		defer f.Close()
		docs = distill.ReadFile(f, *in)
	} else {
		cfg, problems, err := cf.load(config.Config.Validate)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return usagef("%s: %v (nerstream config check lists them)", cf.name(), problems)
		}
		if len(topics) == 0 {
			topics = cfg.Input.Topics
		}
		if len(cfg.Kafka.Brokers) == 0 || len(topics) == 0 {
			return usagef("%s: kafka.brokers and a topic (--topic or input.topics) are needed to read from Kafka", cf.name())
		}
		cfg.Input.Topics = topics
		skipped = new(int)
		docs = distill.ReadTopics(ctx, consumers.SnapshotOptions{Kafka: cfg.Kafka, Input: cfg.Input}, skipped)
	}

	cp, err := distill.OpenCheckpoint(*checkpoint)
	if err != nil {
		return usagef("--checkpoint: %v", err)
	}
	defer cp.Close()
	if n := cp.Len(); n > 0 {
		fmt.Fprintf(s.err, "distill: resuming: %d answers in %s\n", n, *checkpoint)
	}
	bar := distill.NewBar(s.err, hub.IsTerminal(s.err))
	records, rep, err := distill.Run(ctx, docs, teacher, cp, distill.Options{
		PassageTokens: *passageTokens, Tokenizer: counter, NearDuplicate: *nearDup,
		Sample: *sample, Seed: *seed, Negatives: policy, Concurrency: *concurrency,
		// The answers depend on the model and the prompt, not on which
		// host serves them.
		TeacherID: strings.Join([]string{*teacherModel, *role, strconv.FormatBool(*noSystem), distill.Instruction}, "\x00"),
		Progress:  bar.Update,
	})
	bar.Done()
	if cerr := cp.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the checkpoint: %w", cerr)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("distill: stopped with %d answers in %s; run the same command again to continue", cp.Len(), *checkpoint)
	}
	if errors.Is(err, distill.ErrInput) {
		return usageError{err}
	}
	if err != nil {
		return err // distill.ErrIncomplete says how to go on
	}
	if err := distill.WriteFile(*out, records); err != nil {
		return err
	}
	summary := struct {
		distill.Report
		SkippedRecords *int   `json:"skipped_records,omitempty"`
		Out            string `json:"out"`
		Checkpoint     string `json:"checkpoint"`
	}{rep, skipped, *out, *checkpoint}
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(summary)
}

// distillTokenizer returns the token counter that --tokenizer names: white
// space, or a model's vocabulary (a GGUF model is loaded without its
// weights; any other model counts as its engine does).
func distillTokenizer(ctx context.Context, name string, progress io.Writer) (model.TokenCounter, func(), error) {
	if name == "" || name == "whitespace" {
		return distill.WhitespaceTokens{}, func() {}, nil
	}
	f := engines.Flags{Model: name}
	m, err := openModel(ctx, &f, progress, func(o *engines.Options) { o.Llama.VocabOnly = true })
	if err != nil {
		return nil, nil, usagef("--tokenizer: %v", err)
	}
	return m.Engine, func() { m.Close() }, nil
}

// runDistillStats prints a dataset's figures.
func runDistillStats(s streams, args []string) error {
	fset := flag.NewFlagSet("distill stats", flag.ContinueOnError)
	top := fset.Int("top", 20, "most frequent types to list")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one dataset file")
	}
	if *top < 0 {
		return usagef("--top must be >= 0")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return usageError{err}
	}
	defer f.Close()
	records, err := distill.Read(f)
	if err != nil {
		return usagef("%s: %v", pos[0], err)
	}
	st, err := distill.ComputeStats(records, *top)
	if err != nil {
		return usagef("%s: %v", pos[0], err)
	}
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}
