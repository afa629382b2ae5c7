package stream_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/stream"
)

// ExampleNew runs a member of the consumer group "ner" over the topic docs,
// writing annotations to entities: here against an embedded broker and with
// a scripted engine (a test double that names "Ada Lovelace" as a person),
// where a program would give its brokers and engines.Open's engine.
func ExampleNew() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "docs", "entities", "entities-dlq"))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	cfg := config.Default()
	cfg.Kafka.Brokers, cfg.Kafka.GroupID = brokers, "ner"
	cfg.Input.Topics = []string{"docs"}
	cfg.Output.Topic, cfg.Output.DeadLetterTopic = "entities", "entities-dlq"
	cfg.Model.Types = []string{"person"}
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Ada Lovelace"]`})}
	s, err := stream.New(cfg, eng, stream.WithModelName("scripted"))
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "docs"}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte(`{"id": "d1", "text": "Ada Lovelace met Charles Babbage."}`)}); err != nil {
		panic(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "entities", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s\n", m.Key, m.Value)

	stop() // a graceful stop: the claims drain, commit and leave the group
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// d1 {"id":"d1","source":{"topic":"docs","partition":0,"offset":0},"model":"scripted","entity_types":["person"],"entities":[{"text":"Ada Lovelace","type":"person","start":0,"end":12}],"metadata":{}}
}

// ExampleAnnotateLines annotates JSON lines, one record per input line, in
// order: the annotation, or the line's error.
func ExampleAnnotateLines() {
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Ada Lovelace"]`})}
	rec, err := model.NewRecognizer(eng, model.RecognizerOptions{Types: []string{"person"}})
	if err != nil {
		panic(err)
	}
	in := strings.NewReader(`{"text": "Ada Lovelace met Charles Babbage."}
not JSON
`)
	if err := stream.AnnotateLines(context.Background(), rec, in, os.Stdout, stream.LinesOptions{Name: "in.jsonl", Model: "scripted"}); err != nil {
		panic(err)
	}
	// Output:
	// {"id":"in.jsonl:1","model":"scripted","entity_types":["person"],"entities":[{"text":"Ada Lovelace","type":"person","start":0,"end":12}],"metadata":{}}
	// {"line":2,"error":"invalid_json: value is not a JSON object"}
}
