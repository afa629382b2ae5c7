package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/nerstream/nerstream/model/modeltest"
	"github.com/nerstream/nerstream/server"
)

// Example serves an engine (here a scripted test double that names "Ada
// Lovelace" as a person) on an http.ServeMux of one's own, and annotates a
// document through POST /v1/annotate.
func Example() {
	srv, err := server.New(server.Options{Types: []string{"person"}})
	if err != nil {
		panic(err)
	}
	eng := &modeltest.ScriptedEngine{Answer: modeltest.Answers(map[string]string{"person": `["Ada Lovelace"]`})}
	if err := srv.SetModel(eng, "scripted"); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	for pattern, h := range srv.Routes() {
		mux.Handle(pattern, h)
	}
	ts := httptest.NewServer(mux)
	defer ts.Close()

	resp, err := http.Post(ts.URL+"/v1/annotate", "application/json",
		strings.NewReader(`{"id": "d1", "text": "Ada Lovelace met Charles Babbage."}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode)
	fmt.Print(string(body))
	// Output:
	// 200
	// {"id":"d1","model":"scripted","entity_types":["person"],"entities":[{"text":"Ada Lovelace","type":"person","start":0,"end":12}],"metadata":{}}
}
