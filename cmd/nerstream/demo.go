package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/hub"
	"github.com/nerstream/nerstream/stream"
)

// demoDocs are the sample documents; the last two are bad input on
// purpose, to show the dead-letter topic.
var demoDocs = []string{
	`{"id":"lovelace","text":"Ada Lovelace worked with Charles Babbage on the Analytical Engine in London.","entity_types":["person","location","machine"]}`,
	`{"id":"turing","text":"Alan Turing joined the Government Code and Cypher School at Bletchley Park in 1939."}`,
	`{"id":"curie","text":"Marie Curie won the Nobel Prize in Physics in 1903 with Pierre Curie and Henri Becquerel.","entity_types":["person","award"]}`,
	`{"id":"hopper","text":"Grace Hopper developed the first compiler for the UNIVAC I at Remington Rand."}`,
	`{"id":"menu","text":"The Golden Lotus on Market Street serves dim sum until midnight.","entity_types":["restaurant name","location","dish","hours"]}`,
	`{"id":"nlp","text":"BERT and GPT-2 were evaluated on SQuAD and GLUE by researchers at Google.","entity_types":["model","dataset","organization"]}`,
	`{"id":"unicode","text":"Zoë Saldaña flew from Zürich to São Paulo with Łukasz.","entity_types":["person","location"]}`,
	`{"id":"not-json" this is not JSON`,
	`{"id":"no-text","entity_types":["person"]}`,
}

func runDemo(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	ef := engines.Flags{Model: hub.DefaultModelRef, MaxNewTokens: 64}
	ef.Register(fset, "the model (default: "+hub.DefaultModelRef+"; synth:tiny for a synthetic one)")
	asJSON := fset.Bool("json", false, "print the output records as they are, one JSON per line")
	timeout := fset.Duration("timeout", 10*time.Minute, "give up after this long")
	verbose := fset.Bool("v", false, "log the member's warnings and group events")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// A model reference is pulled into the cache on first use; the line
	// that says so goes to standard output, beside the annotations.
	m, err := openModel(ctx, &ef, s.out, nil)
	if err != nil {
		if errors.Is(err, engines.ErrSpec) || ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("getting the model %s: %w; pass --model FILE.gguf, or try the demo now with --model synth:tiny (random weights: its entities are meaningless)", ef.Model, err)
	}
	defer m.Close()

	// The broker: kfake, an embedded Kafka-protocol broker, on loopback.
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(3, "docs", "entities", "entities-dlq"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("starting the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.GroupID = "nerstream-demo"
	cfg.Kafka.HeartbeatInterval = 200 * time.Millisecond
	cfg.Kafka.SessionTimeout = 3 * time.Second
	cfg.Kafka.RebalanceTimeout = 10 * time.Second
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.Input.Topics = []string{"docs"}
	cfg.Input.FetchMaxWait = 50 * time.Millisecond
	cfg.Output.Topic, cfg.Output.DeadLetterTopic = "entities", "entities-dlq"
	cfg.Model.Types = []string{"person", "organization", "location"}
	cfg.Model.MaxNewTokens = ef.MaxNewTokens
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	st, err := stream.New(cfg, m.Engine, stream.WithModelName(m.Name),
		stream.WithLogger(slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: level}))))
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(s.err, "demo: broker on %s; topics docs → entities, entities-dlq; model %s\n", brokers[0], m.Name)

	mctx, cancelMember := context.WithCancel(ctx)
	memberDone := make(chan error, 1)
	go func() { memberDone <- st.Run(mctx) }()
	// stopMember stops the member gracefully, once, and returns its error.
	var stopOnce sync.Once
	var memberErr error
	stopMember := func() error {
		stopOnce.Do(func() {
			cancelMember()
			memberErr = <-memberDone
		})
		return memberErr
	}
	defer stopMember()

	start := time.Now()
	if err := produceDemoDocs(ctx, brokers); err != nil {
		return err
	}
	// Print the records as they arrive, until every document has one.
	records := make(chan kafka.Message)
	var wg sync.WaitGroup
	rctx, stopReaders := context.WithCancel(ctx)
	for _, topic := range []string{"entities", "entities-dlq"} {
		for p := range 3 {
			wg.Go(func() { readDemoTopic(rctx, brokers, topic, p, records) })
		}
	}
	defer func() {
		stopReaders()
		wg.Wait()
	}()
	var annotated, deadLetters int
	for annotated+deadLetters < len(demoDocs) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo timed out after %s with %d of %d records", time.Since(start).Round(time.Millisecond), annotated+deadLetters, len(demoDocs))
		case msg := <-records:
			if msg.Topic == "entities" {
				annotated++
			} else {
				deadLetters++
			}
			printDemoRecord(s.out, msg, *asJSON)
		}
	}
	if err := stopMember(); err != nil {
		return err
	}
	fmt.Fprintf(s.err, "demo: %d annotations and %d dead letters in %s; offsets committed; left the group\n",
		annotated, deadLetters, time.Since(start).Round(time.Millisecond))
	return nil
}

// produceDemoDocs writes the sample documents, snappy-compressed.
func produceDemoDocs(ctx context.Context, brokers []string) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "docs", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, Compression: kafka.Snappy}
	defer w.Close()
	msgs := make([]kafka.Message, len(demoDocs))
	for i, d := range demoDocs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "sample-%d", i), Value: []byte(d)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producing the sample documents: %w", err)
	}
	return nil
}

func readDemoTopic(ctx context.Context, brokers []string, topic string, partition int, out chan<- kafka.Message) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// printDemoRecord prints one output record: the JSON itself, or a line per
// document with its entities.
func printDemoRecord(w io.Writer, m kafka.Message, raw bool) {
	if raw {
		fmt.Fprintf(w, "%s\n", m.Value)
		return
	}
	if m.Topic != "entities" {
		reason := "?"
		for _, h := range m.Headers {
			if h.Key == "nerstream-error" {
				reason = string(h.Value)
			}
		}
		fmt.Fprintf(w, "%-10s dead letter: %s\n", string(m.Key), reason)
		return
	}
	var a struct {
		ID       string `json:"id"`
		Entities []struct {
			Text       string `json:"text"`
			Type       string `json:"type"`
			Start, End int
		} `json:"entities"`
		Unaligned []struct{} `json:"unaligned"`
	}
	if err := json.Unmarshal(m.Value, &a); err != nil {
		fmt.Fprintf(w, "%s\n", m.Value)
		return
	}
	var parts []string
	for _, e := range a.Entities {
		parts = append(parts, fmt.Sprintf("[%s] %q %d:%d", e.Type, e.Text, e.Start, e.End))
	}
	if len(parts) == 0 {
		parts = []string{"(no entities)"}
	}
	if n := len(a.Unaligned); n > 0 {
		parts = append(parts, fmt.Sprintf("(+%d answers not found in the text)", n))
	}
	fmt.Fprintf(w, "%-10s %s\n", a.ID, strings.Join(parts, "  "))
}
