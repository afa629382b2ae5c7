package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/internal/bench"
)

// runBench dispatches `nerstream bench engine`, `bench threads` and `bench
// pipeline` (package internal/bench). `bench broker` is the pipeline
// benchmark's broker process and `bench hog` a busy process of bench
// threads, started by them and not meant for users.
func runBench(ctx context.Context, s streams, args []string) error {
	if len(args) == 0 {
		return usagef("want a benchmark: engine, threads, pipeline or scale")
	}
	switch args[0] {
	case "engine":
		return runBenchEngine(ctx, s, args[1:])
	case "pipeline":
		return runBenchPipeline(ctx, s, args[1:])
	case "threads":
		return runBenchThreads(ctx, s, args[1:])
	case "broker":
		return runBenchBroker(ctx, s, args[1:])
	case "hog":
		return runBenchHog(ctx, s, args[1:])
	case "scale":
		return runBenchScale(ctx, s, args[1:])
	case "member":
		return runBenchMember(ctx, s, args[1:])
	case "-h", "--help", "help":
		return flag.ErrHelp
	}
	return usagef("unknown benchmark %q (want engine, threads, pipeline or scale)", args[0])
}

func runBenchEngine(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench engine", flag.ContinueOnError)
	ef := engines.Flags{MaxNewTokens: 16}
	ef.Register(fset, "the model; with --engine openai, the in-process baseline (optional)")
	var o bench.EngineOptions
	fset.IntVar(&o.Docs, "docs", 16, "documents")
	fset.IntVar(&o.Types, "types", 8, "entity types per document")
	fset.IntVar(&o.DocTokens, "doc-tokens", 200, "tokens per document text")
	fset.BoolVar(&o.SkipNaive, "skip-naive", false, "do not run the one-prompt-at-a-time baseline")
	fset.IntVar(&o.ScoresRounds, "scores-rounds", 0, "also measure what entity scores cost: this many rounds of the engine phase with scores off and on, alternating")
	fset.IntVar(&o.ResidentRounds, "resident-rounds", 0, "also measure what the resident prompt prefix saves: this many rounds of the engine phase with it off and on, alternating")
	sequences := fset.Int("sequences", 0, "parallel sequences (default: the engine's)")
	cells := fset.Int("cells", 0, "KV cache cells (default: the engine's)")
	batchTokens := fset.Int("batch-tokens", 0, "tokens per llama_decode (default: the engine's)")
	substring := fset.Bool("substring", false, "hold answers to substrings of their passage")
	clients := fset.Int("clients", 8, "openai engine: concurrent clients, each with one request in flight")
	promptsOut := fset.String("prompts-out", "", "write the benchmark's prompts as token ids (JSON lines) to this file first, for scripts/hf_baseline.py")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	o.MaxNewTokens = ef.MaxNewTokens
	if o.Docs <= 0 || o.Types <= 0 || o.Types > bench.MaxTypes || o.DocTokens <= 0 || o.MaxNewTokens <= 0 || o.ScoresRounds < 0 || o.ResidentRounds < 0 {
		return usagef("--docs, --doc-tokens and --max-new-tokens must be > 0, --scores-rounds and --resident-rounds >= 0, and --types within 1..%d", bench.MaxTypes)
	}
	llamaOpts := func(eo *engines.Options) {
		eo.Llama.Sequences, eo.Llama.Cells, eo.Llama.BatchTokens, eo.Llama.SubstringAnswers = *sequences, *cells, *batchTokens, *substring
	}
	// Servers are --engine openai --endpoint URL (with --model, an
	// in-process baseline) or --model openai:URL,…
	remote, isRemote := ef.Endpoints, ef.Engine == "openai"
	if urls, ok := strings.CutPrefix(ef.Model, engines.OpenAIPrefix); ok && !isRemote {
		remote, isRemote, ef.Model = splitList(urls), true, ""
	}
	if isRemote && len(remote) == 0 {
		return usagef("--engine openai needs at least one --endpoint")
	}
	if !isRemote {
		if ef.Model == "" {
			return usagef("--model is required")
		}
		m, err := openModel(ctx, &ef, s.err, llamaOpts)
		if err != nil {
			return err
		}
		defer m.Close()
		if len(m.Workers) == 0 {
			return usagef("--model: the engine benchmark runs an in-process model")
		}
		if *promptsOut != "" {
			if err := writePrompts(ctx, m, o, *promptsOut); err != nil {
				return err
			}
		}
		res, err := bench.Engine(ctx, m, o)
		if err != nil {
			return err
		}
		return writeJSON(s.out, res)
	}
	// Servers, against an in-process baseline when --model names one.
	if *clients <= 0 {
		return usagef("--clients must be > 0")
	}
	// --model is the baseline here: the served model is --served-model.
	served := ef
	served.Model = ""
	eo, err := served.Options()
	if err != nil {
		return usageError{err}
	}
	ro := bench.RemoteOptions{EngineOptions: o, Endpoints: remote, Dialect: ef.Dialect, Clients: *clients, OpenAI: eo.OpenAI}
	if ro.Dialect == "" {
		ro.Dialect = "llama-server"
	}
	if ef.Model != "" {
		base := engines.Flags{Model: ef.Model, Threads: ef.Threads, GPULayers: ef.GPULayers}
		m, err := openModel(ctx, &base, s.err, llamaOpts)
		if err != nil {
			return err
		}
		defer m.Close()
		ro.Baseline = m
	}
	res, err := bench.Remote(ctx, ro)
	if errors.Is(err, bench.ErrOptions) || errors.Is(err, engines.ErrSpec) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	return writeJSON(s.out, res)
}

// writePrompts writes the benchmark's prompts as token ids to path.
func writePrompts(ctx context.Context, m *engines.Model, o bench.EngineOptions, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return usageError{fmt.Errorf("--prompts-out: %w", err)}
	}
	err = bench.WritePrompts(ctx, m, o, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--prompts-out %s: %w", path, err)
	}
	return nil
}

func runBenchPipeline(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench pipeline", flag.ContinueOnError)
	o := bench.PipelineOptions{Stderr: s.err}
	fset.IntVar(&o.Docs, "docs", 10000, "documents in the backlog")
	fset.IntVar(&o.Partitions, "partitions", 6, "partitions of the input and output topics")
	fset.IntVar(&o.DocBytes, "doc-bytes", 200, "bytes of one JSON document")
	fset.IntVar(&o.MaxDocs, "max-docs", 32, "batch.max_docs")
	fset.IntVar(&o.MaxInFlight, "max-in-flight", 256, "batch.max_in_flight")
	fset.IntVar(&o.Workers, "workers", 2, "batch.workers")
	fset.IntVar(&o.RawBatch, "raw-batch", 0, "records one raw-loop write gathers at most (default: --max-docs)")
	fset.BoolVar(&o.RawFirst, "raw-first", false, "run the raw phase before the pipeline phases (default: after them)")
	fset.BoolVar(&o.Telemetry, "telemetry", false, "also measure the pipeline with tracing (sampling ratio 1) and metrics exported over OTLP/HTTP to a receiver in the broker process; every input record then carries a traceparent header")
	fset.BoolVar(&o.Logs, "logs", false, "seed a log-like stream (500 templates drawn Zipf s=1.1, with slots) and add a phase with the result cache after each pipeline phase; needs --model")
	fset.IntVar(&o.LogFillings, "log-fillings", bench.DefaultLogFillings, "with --logs, the slot fillings per template (drawn Zipf s=1.1): fewer give more exact repeats, more give more near-duplicates")
	fset.IntVar(&o.Cache.Entries, "cache-entries", 100_000, "with --logs, model.cache.entries of the cache phases")
	fset.IntVar(&o.Cache.Bytes, "cache-bytes", 64<<20, "with --logs, model.cache.bytes of the cache phases")
	fset.IntVar(&o.Rounds, "rounds", 0, "pipeline phases (and, with --telemetry, telemetry phases) to run, alternating; the figures are their medians (default 1, or 2 with --telemetry)")
	ef := engines.Flags{MaxNewTokens: 16}
	ef.Register(fset, "run this model in the pipeline phases instead of the instant echo model, to see the stream's costs beside real inference")
	fset.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit of one phase")
	fset.DurationVar(&o.Poll, "poll", 5*time.Millisecond, "how often the committed offsets are read to see a phase's end")
	fset.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of each phase to PREFIX.PHASE.pprof (PREFIX.pipeline.pprof, PREFIX.raw.pprof, PREFIX.telemetry.pprof, …)")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	if o.Docs <= 0 || o.Partitions <= 0 || o.DocBytes < 40 || o.Timeout <= 0 || o.Poll <= 0 || o.Rounds < 0 {
		return usagef("--docs, --partitions, --timeout and --poll must be > 0, --rounds >= 0, and --doc-bytes >= 40")
	}
	if o.LogFillings < 1 || o.LogFillings > bench.MaxLogFillings {
		return usagef("--log-fillings must be from 1 to %d", bench.MaxLogFillings)
	}
	if ef.Model != "" || ef.Engine == "openai" {
		m, err := openModel(ctx, &ef, s.err, nil)
		if err != nil {
			return err
		}
		defer m.Close()
		o.Model, o.MaxNewTokens = m.Engine, ef.MaxNewTokens
		fmt.Fprintf(s.err, "bench pipeline: model %s\n", m.Name)
	}
	res, err := bench.Pipeline(ctx, o)
	if errors.Is(err, bench.ErrOptions) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	return writeJSON(s.out, res)
}

// runBenchBroker is `nerstream bench broker` (hidden): the broker process
// of bench pipeline and bench scale, which start it.
func runBenchBroker(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench broker", flag.ContinueOnError)
	var o bench.BrokerOptions
	fset.IntVar(&o.Partitions, "partitions", 6, "partitions of each topic")
	fset.IntVar(&o.Docs, "docs", 10000, "documents to seed")
	fset.IntVar(&o.DocBytes, "doc-bytes", 200, "bytes of one JSON document")
	fset.BoolVar(&o.Traceparent, "traceparent", false, "give every document a W3C traceparent header (a sampled trace of its own)")
	fset.BoolVar(&o.Logs, "logs", false, "seed the log-like stream of bench pipeline --logs")
	fset.IntVar(&o.LogFillings, "log-fillings", bench.DefaultLogFillings, "with --logs, the slot fillings per template")
	fset.BoolVar(&o.OTLP, "otlp", false, "also serve an OTLP/HTTP receiver on loopback that counts what it gets and discards it")
	if _, err := parseFlags(fset, args); err != nil {
		return err
	}
	if o.Partitions <= 0 || o.Docs < 0 || o.DocBytes <= 0 || o.LogFillings < 1 || o.LogFillings > bench.MaxLogFillings {
		return usagef("--partitions and --doc-bytes must be > 0, --docs >= 0, --log-fillings from 1 to %d", bench.MaxLogFillings)
	}
	return bench.RunBroker(ctx, o, s.in, s.out)
}

// runBenchThreads is `nerstream bench threads`: the engine's default
// thread count against fixed counts, on the machine as it is and while
// busy processes keep every CPU busy.
func runBenchThreads(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench threads", flag.ContinueOnError)
	ef := engines.Flags{MaxNewTokens: 8}
	ef.Register(fset, "the in-process model")
	o := bench.ThreadsOptions{Progress: s.err}
	fset.IntVar(&o.Docs, "docs", 8, "documents per measurement")
	fset.IntVar(&o.Types, "types", 4, "entity types per document")
	fset.IntVar(&o.DocTokens, "doc-tokens", 100, "tokens per document text")
	counts := fset.String("counts", "", "fixed thread counts to measure beside the default, comma-separated (default: 1 up to GOMAXPROCS)")
	fset.IntVar(&o.Hogs, "hogs", 0, "busy processes of the contended phase (default: one per CPU)")
	fset.IntVar(&o.Rounds, "rounds", 3, "measurements of each setting in each phase, taking turns; the figures are medians")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	o.MaxNewTokens = ef.MaxNewTokens
	if ef.Model == "" || ef.Engine == "openai" {
		return usagef("--model is required, and names an in-process model")
	}
	if ef.Threads != 0 {
		return usagef("--threads: bench threads measures every count itself (see --counts)")
	}
	for _, c := range splitList(*counts) {
		n, err := strconv.Atoi(c)
		if err != nil || n <= 0 {
			return usagef("--counts: %q is not a thread count > 0", c)
		}
		o.Counts = append(o.Counts, n)
	}
	if o.Hogs < 0 || o.Rounds <= 0 {
		return usagef("--hogs must be >= 0 and --rounds > 0")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Hog = []string{exe, "bench", "hog"}
	o.Open = func(ctx context.Context, threads int) (*engines.Model, error) {
		f := ef
		f.Threads = threads
		return openModel(ctx, &f, s.err, nil)
	}
	res, err := bench.Threads(ctx, o)
	if errors.Is(err, bench.ErrOptions) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	return writeJSON(s.out, res)
}

// runBenchHog is `nerstream bench hog` (hidden): one busy process of bench
// threads, until its standard input closes (at most an hour).
func runBenchHog(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench hog", flag.ContinueOnError)
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	return bench.Hog(ctx, s.in, time.Hour)
}

// runBenchScale is `nerstream bench scale`: throughput against consumer
// group members, each a process of its own (package internal/bench).
func runBenchScale(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench scale", flag.ContinueOnError)
	o := bench.ScaleOptions{Stderr: s.err}
	fset.IntVar(&o.Partitions, "partitions", 12, "partitions of the input topic")
	members := fset.String("members", "1,2,3,4,6,12,16", "member counts to measure, comma-separated")
	fset.IntVar(&o.Docs, "docs", 60000, "documents in the backlog, which each member count reads from its start")
	fset.IntVar(&o.DocBytes, "doc-bytes", 200, "bytes of one JSON document")
	fset.DurationVar(&o.Latency, "latency", 20*time.Millisecond, "the model's time per batch (a test double that sleeps, as a remote GPU makes a member wait)")
	fset.IntVar(&o.MaxDocs, "max-docs", 4, "batch.max_docs of the members (one batch at the model at a time)")
	fset.DurationVar(&o.Window, "window", 8*time.Second, "how long each member count is measured once consuming")
	fset.IntVar(&o.RebalanceMembers, "rebalance-members", 4, "members of the rebalance phase before one joins and one leaves (0: skip it)")
	fset.IntVar(&o.CrashMembers, "crash-members", 0, "members of the crash phase, which kills one by SIGKILL per round and measures the survivors' takeover, duplicates and losses (0: skip it)")
	fset.IntVar(&o.CrashRounds, "crash-rounds", 3, "kills of the crash phase, one after another, each followed by a fresh member joining; figures are medians")
	fset.DurationVar(&o.CrashSession, "crash-session-timeout", 6*time.Second, "kafka.session_timeout of the crash phase's members: how long the coordinator waits for a killed member (6s: a stock Kafka broker's minimum)")
	fset.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "limit of each wait for a group to be stable and consuming")
	fset.DurationVar(&o.Poll, "poll", 20*time.Millisecond, "how often the group and its committed offsets are read")
	plot := fset.String("plot", "", "also write the docs/s and efficiency curve to this SVG file")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	for _, f := range strings.Split(*members, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > bench.MaxScaleMembers {
			return usagef("--members: want counts within 1..%d, comma-separated", bench.MaxScaleMembers)
		}
		o.Members = append(o.Members, n)
	}
	if o.Partitions <= 0 || o.Docs <= 0 || o.DocBytes < 40 || o.Latency < 0 || o.MaxDocs <= 0 || o.Window <= 0 ||
		o.RebalanceMembers < 0 || o.RebalanceMembers >= bench.MaxScaleMembers || o.Timeout <= 0 || o.Poll <= 0 {
		return usagef("--partitions, --docs, --max-docs, --window, --timeout and --poll must be > 0, --latency >= 0, --rebalance-members within 0..%d, and --doc-bytes >= 40", bench.MaxScaleMembers-1)
	}
	if o.CrashMembers < 0 || o.CrashMembers == 1 || o.CrashMembers > bench.MaxScaleMembers || o.CrashRounds <= 0 || o.CrashSession < bench.MinCrashSession {
		return usagef("--crash-members must be 0 or within 2..%d, --crash-rounds > 0, and --crash-session-timeout at least %v", bench.MaxScaleMembers, bench.MinCrashSession)
	}
	res, err := bench.Scale(ctx, o)
	if errors.Is(err, bench.ErrOptions) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if *plot != "" {
		if err := os.WriteFile(*plot, bench.ScalePlot(res), 0o644); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	return writeJSON(s.out, res)
}

// runBenchMember is `nerstream bench member` (hidden): one member process
// of bench scale, which starts it; it stops when its stdin closes.
func runBenchMember(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("bench member", flag.ContinueOnError)
	var o bench.MemberOptions
	fset.StringVar(&o.Broker, "broker", "", "the broker, host:port")
	fset.StringVar(&o.Group, "group", "", "the consumer group")
	fset.DurationVar(&o.Latency, "latency", 20*time.Millisecond, "the model's time per batch")
	fset.IntVar(&o.MaxDocs, "max-docs", 4, "batch.max_docs")
	fset.DurationVar(&o.SessionTimeout, "session-timeout", 10*time.Second, "kafka.session_timeout")
	fset.StringVar(&o.ClientID, "client-id", "", "kafka.client_id (default nerstream)")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	err := bench.RunMember(ctx, o, s.in, s.err)
	if errors.Is(err, bench.ErrOptions) {
		return usageError{err}
	}
	return err
}
