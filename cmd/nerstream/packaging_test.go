package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nerstream/nerstream/config"
	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model/gguf"
	"github.com/nerstream/nerstream/model/hub"
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

// containerImage is what a Dockerfile's last stage says about the
// container it makes.
type containerImage struct {
	workdir    string
	env        map[string]string
	entrypoint []string
	cmd        []string
	copies     map[string]string // in the image → in the build context
	volumes    []string
}

// readImage reads the last stage of a Dockerfile (instructions joined
// across line continuations).
func readImage(t *testing.T, path string) containerImage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img := containerImage{env: map[string]string{}, copies: map[string]string{}}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		jsonArray := func() []string {
			var a []string
			if err := json.Unmarshal([]byte(rest), &a); err != nil {
				t.Fatalf("%s: %s %s: not a JSON array (the exec form): %v", path, word, rest, err)
			}
			return a
		}
		switch word {
		case "FROM":
			img = containerImage{env: map[string]string{}, copies: map[string]string{}}
		case "WORKDIR":
			img.workdir = rest
		case "ENV":
			k, v, _ := strings.Cut(rest, "=")
			img.env[k] = v
		case "ENTRYPOINT":
			img.entrypoint = jsonArray()
		case "CMD":
			img.cmd = jsonArray()
		case "VOLUME":
			img.volumes = jsonArray()
		case "COPY":
			if f := strings.Fields(rest); len(f) == 2 {
				img.copies[f[1]] = f[0]
			}
		}
	}
	return img
}

// TestImageDefaultStarts is the regression test of issue 17's finding that
// the Docker image's default command failed: `run --config
// /etc/nerstream/nerstream.yaml` in /var/lib/nerstream read model.path
// UniNER-7B-type.Q4_K_M.gguf, a bare name that resolved against the
// working folder, not the model cache, so the container exited at once
// with "stat UniNER-7B-type.Q4_K_M.gguf: no such file". Now the image's
// configuration names the default model by its reference: the container
// pulls it into its cache volume on first start and runs.
//
// There is no Docker engine here, so the test plays the container from the
// Dockerfile's last stage: its ENTRYPOINT and CMD, the configuration file
// that it COPYs to the CMD's --config, NERSTREAM_HOME and WORKDIR (both
// temporary folders), with an empty cache and a stand-in for Hugging Face
// (HF_ENDPOINT) that serves a synthetic model under the reference's path.
// Only what a deployment sets anyway comes from the environment, as the
// compose example does it: the brokers (the image's 127.0.0.1:9092 is the
// container's own loopback); and, for a test beside others, a free port,
// one thread and short answers.
func TestImageDefaultStarts(t *testing.T) {
	img := readImage(t, "../../Dockerfile")
	if !slices.Equal(img.entrypoint, []string{"nerstream"}) {
		t.Fatalf("ENTRYPOINT %q, want nerstream", img.entrypoint)
	}
	conf := configArg(t, img.cmd)
	cuda := readImage(t, "../../Dockerfile.cuda")
	if !slices.Equal(cuda.cmd, img.cmd) || cuda.workdir != img.workdir || cuda.env["NERSTREAM_HOME"] != img.env["NERSTREAM_HOME"] || cuda.copies[conf] != img.copies[conf] {
		t.Errorf("the CUDA image does not start as the CPU one: %+v, %+v", cuda, img)
	}
	src, ok := img.copies[conf]
	if !ok {
		t.Fatalf("the CMD's configuration %s is not COPYed into the image", conf)
	}
	home := img.env["NERSTREAM_HOME"]
	if home == "" || !slices.ContainsFunc(img.volumes, func(v string) bool { return home == v || strings.HasPrefix(home, v+"/") }) {
		t.Fatalf("NERSTREAM_HOME %q is not in a volume %q: the pulled model would be lost with the container", home, img.volumes)
	}
	cfg, err := config.LoadFrom("../../"+src, config.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if !hub.IsRef(cfg.Model.Path) {
		t.Fatalf("the image's model.path %q is not a reference: with an empty model cache, the container cannot start", cfg.Model.Path)
	}
	ref, err := hub.ParseRef(cfg.Model.Path)
	if err != nil {
		t.Fatal(err)
	}

	// Hugging Face's stand-in, serving a synthetic model where the
	// reference points.
	var model bytes.Buffer
	if err := gguf.Synth(&model, gguf.SynthOptions{Preset: "tiny", Type: gguf.TypeF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	hf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if "http://"+r.Host+r.URL.Path != ref.DownloadURL("http://"+r.Host) {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(model.Bytes()))
	}))
	defer hf.Close()
	if !slices.Equal(cfg.Input.Topics, []string{kafkatest.InTopic}) || cfg.Output.Topic != kafkatest.OutTopic || cfg.Output.DeadLetterTopic != kafkatest.DLQTopic {
		t.Fatalf("the image's topics %v → %s, %s; the test's are %s → %s, %s", cfg.Input.Topics, cfg.Output.Topic, cfg.Output.DeadLetterTopic, kafkatest.InTopic, kafkatest.OutTopic, kafkatest.DLQTopic)
	}
	c := kafkatest.StartBroker(t, 3)
	brokers := c.ListenAddrs()
	kafkatest.ProduceDocs(t, brokers, 0, 6)

	homeDir, workdir := t.TempDir(), t.TempDir()
	if img.workdir == home {
		workdir = homeDir
	}
	args := slices.Clone(img.cmd)
	cfgPath, err := filepath.Abs("../../" + src)
	if err != nil {
		t.Fatal(err)
	}
	args[slices.Index(args, "--config")+1] = cfgPath
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = workdir
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "NERSTREAM_") || strings.HasPrefix(k, "NERSTREAM_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NERSTREAM_TEST_MAIN=1", "NERSTREAM_HOME="+homeDir, "HF_ENDPOINT="+hf.URL,
		"NERSTREAM_KAFKA_BROKERS="+brokers[0], "NERSTREAM_HTTP_ADDRESS=127.0.0.1:0", "NERSTREAM_MODEL_THREADS=1", "NERSTREAM_MODEL_MAX_NEW_TOKENS=8")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("the container's stderr:\n%s", stderr.String())
		}
	}()
	kafkatest.WaitCommittedAtEnd(t, brokers, cfg.Kafka.GroupID, 3, 2*time.Minute)
	cmd.Process.Signal(syscall.SIGTERM) // docker stop
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("still running a minute after SIGTERM")
	}
	recs := kafkatest.ReadTopic(t, brokers, kafkatest.OutTopic, 3)
	if len(recs) != 6 || !bytes.Contains(recs[0].Value, []byte(`"model":"`+ref.FileName()+`"`)) {
		t.Errorf("%d annotations, want 6 naming %s", len(recs), ref.FileName())
	}
	if st, err := os.Stat(ref.CachePath(filepath.Join(homeDir, "models"))); err != nil || st.Size() != int64(model.Len()) {
		t.Errorf("the model is not in the cache under NERSTREAM_HOME: %v", err)
	}
}

// configArg is the value of --config in a command line.
func configArg(t *testing.T, args []string) string {
	t.Helper()
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the image's CMD %q has no --config FILE", args)
	}
	return args[i+1]
}
