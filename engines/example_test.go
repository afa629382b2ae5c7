package engines_test

import (
	"context"
	"fmt"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model"
	"github.com/nerstream/nerstream/model/llama"
	"github.com/nerstream/nerstream/record"
)

// ExampleOpen opens a model from a spec, here a synthetic one (random
// weights, so its entities mean nothing), and annotates a document with
// it. A GGUF file, an hf:// or https:// reference, or openai:URL for
// OpenAI-compatible servers open the same way.
func ExampleOpen() {
	ctx := context.Background()
	m, err := engines.Open(ctx, "synth:tiny", engines.Options{Llama: llama.Options{Threads: 1}})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rec, err := model.NewRecognizer(m.Engine, model.RecognizerOptions{Types: []string{"person"}, MaxNewTokens: 8})
	if err != nil {
		panic(err)
	}
	anns, err := rec.Recognize(ctx, []record.Document{{ID: "d1", Text: "Ada Lovelace met Charles Babbage."}})
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Name)
	fmt.Println(anns[0].ID, anns[0].Types, anns[0].Err)
	// Output:
	// synthetic-tiny (random weights: entities are meaningless)
	// d1 [person] <nil>
}
