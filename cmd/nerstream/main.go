// Command nerstream runs UniversalNER (UniNER) open named-entity recognition
// on Kafka streams, and the local tools around it.
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad usage, bad config or bad input
// file, always with one line on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/redact"
	"github.com/nerstream/nerstream/model/hub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// streams are a command's standard files.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// command is one sub-command.
type command struct {
	name    string
	usage   string // the arguments, after the name
	summary string
	run     func(ctx context.Context, s streams, args []string) error
}

func commands() []command {
	return []command{
		{"run", "--config FILE [--set PATH=VALUE ...] [-v]",
			"the streaming processor: documents from Kafka, annotations and dead letters to Kafka, until SIGTERM or SIGINT", runRun},
		{"demo", "[--model SPEC] [--json] [-v]",
			"an embedded Kafka-protocol broker on loopback, sample documents, the whole stream end to end; prints the annotations as they arrive", runDemo},
		{"broker", "[--listen 127.0.0.1:9092] [--topics docs,entities,entities-dlq] [--partitions 3]",
			"run the embedded Kafka-protocol broker on its own, for local development (in memory, no authentication), until SIGTERM or SIGINT; prints its address", runBroker},
		{"prompt", "--text T --type X [--variant type|definition|supervised] [--dataset D] [--definition S] [--config F] [--tokens (--vocab F.gguf | --model SPEC)]",
			"print the exact UniNER prompt for one text and one entity type, or with --tokens its tokens, one a line (id, spelling, text), to check by eye or against another tokenizer", runPrompt},
		{"eval", "--data FILE|DIR (--predictions P.jsonl | --model SPEC [--save-predictions P.jsonl]) [--metric official|span] [--parse official|lenient] [--label-map L]",
			"score predictions against UniNER JSON or CoNLL data; prints JSON", runEval},
		{"annotate", "--model SPEC [--types a,b] [--threads N] [--gpu-layers N] [--batch N] [--engine openai --endpoint URL [--dialect llama-server|vllm|ollama|openai] [--served-model NAME] [--tokenizer GGUF]] [--min-score F] [--calibration FILE] [--config F] [--set PATH=VALUE] [IN.jsonl]",
			"annotate JSON-lines documents with a model; one annotation record per line, in order", runAnnotate},
		{"serve", "--model SPEC [--listen 127.0.0.1:8081] [--max-new-tokens N] [--threads N] [--gpu-layers N] [--token-file F] [--max-body-bytes B] [--max-text-bytes B] [--max-types N] [--max-prompts N] [--max-docs N] [--max-in-flight N] [--request-timeout D] [--drain-timeout D] [--min-score F] [--calibration FILE]",
			"serve the model over HTTP until SIGTERM or SIGINT: POST /v1/completions (the OpenAI completions subset, greedy) and POST /v1/annotate (annotation records), with /healthz /readyz /metrics, and a page at / to try the model in a browser; requests from all connections share one continuous batch", runServe},
		{"distill", "(--in FILE | --config F [--topic T ...]) --teacher URL --teacher-model NAME --out FILE [--negatives N | --negative-ratio R] [--seed S] [--sample N] [--passage-tokens 256] [--tokenizer whitespace|SPEC] [--api-key-file F] [--concurrency N] [--rpm N] [--tpm N] [--retries N] | stats FILE [--top N]",
			"make UniNER training data in the paper's recipe: passages from a file or a topic, entities from a teacher LLM (resumable), Pile-NER conversations with frequency-sampled negative types; or describe such a dataset", runDistill},
		{"devices", "[--backends-dir D] [--json]",
			"list the devices a model can run on (the CPU, and those of the GPU backend modules it loads) with their memory", runDevices},
		{"version", "[--json] [--backends-dir D]",
			"print the version, the Go version, the llama.cpp commit, the SIMD extensions of the build against the CPU's, and the GPU backends found", runVersion},
		{"config", "check|print [--config FILE] [--set PATH=VALUE ...]",
			"check a configuration (file, NERSTREAM_* environment and --set flags, in that order) and list every problem, or print the effective configuration with secrets redacted", runConfig},
		{"model", "synth --preset tiny|small|7b [--type f32|f16|q8_0] [--vocab V.gguf] --out F.gguf | info F.gguf [--json] | pull REF [--sha256 HEX] [--require-sha256] [--dir DIR] [--force] [--max-bytes SIZE]",
			"write a synthetic LLaMA model with random weights, describe a GGUF model, or download one (REF: hf://OWNER/REPO/FILE.gguf[@REVISION] or an https:// address) into the model cache and print its path", runModel},
		{"bench", "engine --model SPEC [--docs N] [--types K] [--doc-tokens P] [--max-new-tokens M] [--skip-naive] | engine --engine openai --endpoint URL [--dialect D] [--served-model NAME] [--tokenizer GGUF] [--clients C] [--model BASELINE] | threads --model SPEC [--counts 1,2] [--hogs N] [--rounds R] | pipeline [--docs N] [--partitions P] [--doc-bytes B] [--max-docs M] [--max-in-flight F] [--workers W] [--telemetry [--rounds R]] [--model SPEC] | scale [--partitions P] [--members 1,2,4] [--latency D] [--max-docs M] [--window D] [--rebalance-members R] [--plot FILE.svg]",
			"measure the engine against one-prompt-at-a-time decoding, its default thread count against fixed ones on a quiet and a busy machine, or the stream against a plain kafka-go loop; prints JSON", runBench},
	}
}

// usageError is bad usage, a bad config or a bad input file: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := streams{in: stdin, out: stdout, err: stderr}
	if len(args) == 2 && args[0] == "help" {
		// nerstream help COMMAND is nerstream COMMAND --help.
		return run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = append([]string{"version"}, args[1:]...)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, s, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprintf(stdout, "usage: nerstream %s %s\n\n%s.\n", c.name, c.usage, c.summary)
			if he, ok := errors.AsType[helpError](err); ok {
				printFlags(stdout, he.fs)
			}
			return 0
		}
		// The last stop of every error: an address in it is shown without
		// its credentials or query values, whichever package made it.
		fmt.Fprintf(stderr, "nerstream %s: %s\n", c.name, redact.Text(oneLine(err.Error())))
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "nerstream: unknown command %q (run nerstream --help)\n", args[0])
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "nerstream: UniversalNER open named-entity recognition on streams.")
	fmt.Fprintln(w, "\nusage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  nerstream %s %s\n      %s\n", c.name, c.usage, c.summary)
	}
	fmt.Fprintln(w, "\nSPEC, the model: a GGUF file, synth:tiny|small|7b (random weights), hf://OWNER/REPO/FILE.gguf[@REV] or https://…/FILE.gguf (pulled into the model cache), or openai:URL[,URL…] (OpenAI-compatible servers).")
	fmt.Fprintln(w, "\nnerstream COMMAND --help (or nerstream help COMMAND) lists the command's flags, with their defaults.")
	fmt.Fprintln(w, "\nExit codes: 0 ok, 1 runtime failure, 2 bad usage, config or input file.")
}

// openModel opens the model that the engine flags name, pulling a
// reference into the model cache with its progress on progress. A spec
// that names no model is bad usage.
func openModel(ctx context.Context, f *engines.Flags, progress io.Writer, adjust func(*engines.Options)) (*engines.Model, error) {
	spec, err := f.Spec()
	if err != nil {
		return nil, usageError{err}
	}
	opts, err := f.Options()
	if err != nil {
		return nil, usageError{err}
	}
	opts.Pull = hub.Options{Progress: progress, Bar: hub.IsTerminal(progress)}
	if adjust != nil {
		adjust(&opts)
	}
	m, err := engines.Open(ctx, spec, opts)
	return checkModel("--model", m, err)
}

// checkModelFlags checks the model that the engine flags name, as far as
// engines.Check can without loading it: a bad spec is bad usage.
func checkModelFlags(f *engines.Flags) error {
	spec, err := f.Spec()
	if err != nil {
		return usageError{err}
	}
	opts, err := f.Options()
	if err != nil {
		return usageError{err}
	}
	if err := engines.Check(spec, opts); err != nil {
		return usagef("--model: %v", err)
	}
	return nil
}

// checkModel makes a bad model spec a usage error naming the setting.
func checkModel(setting string, m *engines.Model, err error) (*engines.Model, error) {
	if errors.Is(err, engines.ErrSpec) {
		return nil, usagef("%s: %v", setting, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return m, nil
}

// writeJSON writes v as indented JSON, the output of the commands that
// print figures.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// parseNoArgs parses the flags of a command that takes no positional
// arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// parseFlags parses flags that may come before, between or after the
// positional arguments, and returns the positional ones. Everything after
// "--" is positional.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpError{fs}
			}
			return nil, usagef("%v (run nerstream %s --help)", err, fs.Name())
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// helpError is -h or --help on a command's flags: run prints the
// command's usage and then every flag of fs, with its default and meaning.
type helpError struct{ fs *flag.FlagSet }

func (helpError) Error() string { return flag.ErrHelp.Error() }
func (helpError) Unwrap() error { return flag.ErrHelp }

// printFlags writes every flag of fs, with its default and meaning, as
// the flag package does, to w.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "\nflags of nerstream %s:\n", fs.Name())
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
