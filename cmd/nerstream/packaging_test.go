package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nerstream/nerstream/config"
)

// The images are built outside CI (no Docker engine here), so these tests
// check what can be checked without one: that the Dockerfile and the
// compose example agree with the program they package.

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	// Every file it copies from the context exists.
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--from=\S+ )?(\S+) `).FindAllStringSubmatch(df, -1) {
		if strings.HasPrefix(m[0], "COPY --from") || m[1] == "." {
			continue
		}
		for _, f := range strings.Fields(m[1]) {
			if _, err := os.Stat("../../" + f); err != nil {
				t.Errorf("COPY %s: %v", f, err)
			}
		}
	}
	for _, want := range []string{
		"USER nerstream",                                  // non-root
		"http://127.0.0.1:8080/healthz",                   // the HEALTHCHECK hits the server's default address
		`VOLUME ["/etc/nerstream", "/var/lib/nerstream"]`, // config and model cache
		"ENV NERSTREAM_HOME=/var/lib/nerstream",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if d := config.Default(); d.HTTP.Address != ":8080" {
		t.Errorf("the HEALTHCHECK assumes http.address :8080, the default is %q", d.HTTP.Address)
	}
}

// TestComposeConfig loads the compose example's configuration the way the
// container does: the image's file, then the service's NERSTREAM_*
// environment; run must accept it.
func TestComposeConfig(t *testing.T) {
	b, err := os.ReadFile("../../examples/compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["nerstream"]
	if !ok {
		t.Fatal("no nerstream service")
	}
	var env []string
	for k, v := range svc.Environment {
		env = append(env, k+"="+v)
	}
	cfg, err := config.LoadFrom("../../examples/nerstream.yaml", config.Sources{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateRun(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Kafka.Brokers) != 1 || cfg.Kafka.Brokers[0] != "kafka:9092" {
		t.Errorf("brokers %v: the environment did not override the file", cfg.Kafka.Brokers)
	}
}
