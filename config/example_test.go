package config

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/hub"
)

var update = flag.Bool("update", false, "rewrite examples/nerstream.yaml from the Config struct")

const exampleHeader = `# nerstream run --config examples/nerstream.yaml
#
# Every key with its default, generated from config.Config (the field docs in
# config/config.go say what each one does); only the brokers, topics and
# model are this example's own. Environment variables override the file
# (NERSTREAM_KAFKA_BROKERS=a:9092,b:9092, NERSTREAM_BATCH_LINGER=50ms: see the
# config package doc), and --set path=value flags override both.
# model.path is the default model, UniNER-7B-type (about 4 GB, CC BY-NC 4.0),
# pulled into the model cache on first use; a GGUF file's path, or its name
# alone for a model in the cache, also works. model.cache is on here (off by
# default): repeated texts are answered from memory. The container image runs this
# file as it is.
# Regenerate: go test ./config -run TestExampleFile -update
`

// exampleConfig is the configuration that examples/nerstream.yaml holds.
func exampleConfig() Config {
	c := Default()
	c.Kafka.Brokers = []string{"127.0.0.1:9092"}
	c.Input.Topics = []string{"docs"}
	c.Output.Topic = "entities"
	c.Output.DeadLetterTopic = "entities-dlq"
	c.Model.Path = hub.DefaultModelRef
	c.Model.Types = []string{"person", "organization", "location"}
	// The result cache is off by default and on here: logs repeat their
	// texts (README, "Log enrichment").
	c.Model.Cache = model.CacheOptions{Entries: 100_000, Bytes: 256 << 20, TTL: time.Hour}
	return c
}

// TestExampleFile keeps examples/nerstream.yaml equal to the defaults of
// the Config struct, and loadable by run.
func TestExampleFile(t *testing.T) {
	const path = "../examples/nerstream.yaml"
	var buf bytes.Buffer
	buf.WriteString(exampleHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(exampleConfig()); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("%s is stale; regenerate it with: go test ./config -run TestExampleFile -update", path)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateRun(); err != nil {
		t.Fatal(err)
	}
}
