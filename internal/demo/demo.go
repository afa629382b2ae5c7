// Package demo is `nerstream demo`: an embedded Kafka-protocol broker
// (kfake, started by internal/localbroker, as `nerstream broker` does) on
// loopback, sample documents produced to it, one stream member over a
// model, and the output records printed as they arrive, until every
// document has its annotation or dead letter. It is internal: the command
// is its one user.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/internal/localbroker"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/stream"
)

// docs are the sample documents; the last two are bad input on
// purpose, to show the dead-letter topic.
var docs = []string{
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

// Options configure [Run].
type Options struct {
	// MaxNewTokens bounds each answer.
	MaxNewTokens int
	// JSON prints the output records as they are, one per line, instead
	// of a line per document.
	JSON bool
	// Verbose logs the member's warnings and group events.
	Verbose bool
	// Out receives the records; Err the demo's own lines and the logs.
	Out, Err io.Writer
}

// Run runs the demo with the engine, whose model annotations call name,
// until every sample document has its record or ctx ends.
func Run(ctx context.Context, eng model.Engine, name string, o Options) error {
	// The broker: kfake, an embedded Kafka-protocol broker, on a free
	// loopback port (the one `nerstream broker` runs).
	broker, err := localbroker.Start(localbroker.Options{Listen: "127.0.0.1:0", Topics: []string{"docs", "entities", "entities-dlq"}, Partitions: 3})
	if err != nil {
		return fmt.Errorf("starting the embedded broker: %w", err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}

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
	cfg.Model.MaxNewTokens = o.MaxNewTokens
	level := slog.LevelError
	if o.Verbose {
		level = slog.LevelInfo
	}
	st, err := stream.New(cfg, eng, stream.WithModelName(name),
		stream.WithLogger(slog.New(slog.NewTextHandler(o.Err, &slog.HandlerOptions{Level: level}))))
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Err, "demo: broker on %s; topics docs → entities, entities-dlq; model %s\n", brokers[0], name)

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
	if err := produceDocs(ctx, brokers); err != nil {
		return err
	}
	// Print the records as they arrive, until every document has one.
	records := make(chan kafka.Message)
	var wg sync.WaitGroup
	rctx, stopReaders := context.WithCancel(ctx)
	for _, topic := range []string{"entities", "entities-dlq"} {
		for p := range 3 {
			wg.Go(func() { readTopic(rctx, brokers, topic, p, records) })
		}
	}
	defer func() {
		stopReaders()
		wg.Wait()
	}()
	var annotated, deadLetters int
	for annotated+deadLetters < len(docs) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo timed out after %s with %d of %d records", time.Since(start).Round(time.Millisecond), annotated+deadLetters, len(docs))
		case msg := <-records:
			if msg.Topic == "entities" {
				annotated++
			} else {
				deadLetters++
			}
			printRecord(o.Out, msg, o.JSON)
		}
	}
	if err := stopMember(); err != nil {
		return err
	}
	fmt.Fprintf(o.Err, "demo: %d annotations and %d dead letters in %s; offsets committed; left the group\n",
		annotated, deadLetters, time.Since(start).Round(time.Millisecond))
	return nil
}

// produceDocs writes the sample documents, snappy-compressed.
func produceDocs(ctx context.Context, brokers []string) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "docs", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, Compression: kafka.Snappy}
	defer w.Close()
	msgs := make([]kafka.Message, len(docs))
	for i, d := range docs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "sample-%d", i), Value: []byte(d)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producing the sample documents: %w", err)
	}
	return nil
}

// readTopic sends the records of one partition of topic to out until ctx
// ends.
func readTopic(ctx context.Context, brokers []string, topic string, partition int, out chan<- kafka.Message) {
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

// printRecord prints one output record: the JSON itself, or a line per
// document with its entities.
func printRecord(w io.Writer, m kafka.Message, raw bool) {
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
