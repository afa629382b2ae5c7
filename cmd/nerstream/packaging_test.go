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
	for _, name := range []string{"Dockerfile", "Dockerfile.cuda"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile("../../" + name)
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
					t.Errorf("%s lacks %q", name, want)
				}
			}
			if name == "Dockerfile.cuda" {
				checkCUDAImage(t, df)
			}
		})
	}
	if d := config.Default(); d.HTTP.Address != ":8080" {
		t.Errorf("the HEALTHCHECK assumes http.address :8080, the default is %q", d.HTTP.Address)
	}
}

// checkCUDAImage: the CUDA image builds the module with backends/build.sh
// (the variables it sets are the script's), copies it outside the
// volumes, and points model.backends_dir at it through a variable that
// the configuration reads.
func checkCUDAImage(t *testing.T, df string) {
	script, err := os.ReadFile("../../backends/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(df, "backends/build.sh cuda /out/backends") {
		t.Error("Dockerfile.cuda does not build the CUDA module with backends/build.sh")
	}
	for _, v := range []string{"NERSTREAM_GGML_SOURCES", "CUDA_ARCHS"} {
		if !strings.Contains(df, v+"=") || !strings.Contains(string(script), "${"+v) {
			t.Errorf("%s: set by Dockerfile.cuda and read by backends/build.sh? (%v, %v)", v, strings.Contains(df, v+"="), strings.Contains(string(script), "${"+v))
		}
	}
	m := regexp.MustCompile(`(?m)^ENV NERSTREAM_MODEL_BACKENDS_DIR=(\S+)$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile.cuda does not set NERSTREAM_MODEL_BACKENDS_DIR")
	}
	dir := m[1]
	if !strings.Contains(df, "COPY --from=cuda /out/backends "+dir+"\n") {
		t.Errorf("the module is not copied to %s", dir)
	}
	if strings.HasPrefix(dir, "/var/lib/nerstream") || strings.HasPrefix(dir, "/etc/nerstream") {
		t.Errorf("%s is inside a volume, which a mount would hide", dir)
	}
	cfg, err := config.LoadFrom("", config.Sources{Env: []string{"NERSTREAM_MODEL_BACKENDS_DIR=" + dir}})
	if err != nil || cfg.Model.BackendsDir != dir {
		t.Errorf("NERSTREAM_MODEL_BACKENDS_DIR does not set model.backends_dir: %q, %v", cfg.Model.BackendsDir, err)
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
