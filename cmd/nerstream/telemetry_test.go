package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nerstream/nerstream/internal/kafkatest"
	"github.com/nerstream/nerstream/model"
)

// TestReadinessAndMetrics runs `nerstream run` as its own process, started
// before its broker exists: /readyz says 503 while there is no broker, 200
// once the broker is up and the member has joined, and 503 again once the
// broker is gone. Meanwhile /metrics shows the records counted.
func TestReadinessAndMetrics(t *testing.T) {
	port := kafkatest.FreePort(t)
	brokers := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	cfg := kafkatest.StreamConfig(brokers)
	cfg.Model.Path = "synth:tiny"
	cfg.Model.MaxNewTokens = 4
	cfg.Model.Threads = 1
	cfg.HTTP.ReadinessInterval = 100 * time.Millisecond
	cfg.Model.Cache = model.CacheOptions{Entries: 1000, Bytes: 1 << 20} // the cache's metrics too
	cmd := exec.Command(os.Args[0], "run", "--config", kafkatest.WriteConfig(t, cfg))
	cmd.Env = append(os.Environ(), "NERSTREAM_TEST_MAIN=1")
	member := kafkatest.StartMember(t, cmd)
	base := member.Base
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	// No broker yet: not ready, saying why.
	time.Sleep(300 * time.Millisecond) // a few readiness intervals
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "producer:") || !strings.Contains(body, "consumer_group:") {
		t.Fatalf("/readyz without a broker: %d %q, want 503 naming the producer and the consumer group", code, body)
	}

	c := kafkatest.StartBroker(t, 3, kfake.Ports(port))
	const n = 30
	kafkatest.ProduceDocs(t, brokers, 0, n)
	waitUntil(t, 60*time.Second, "/readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	waitUntil(t, 60*time.Second, "every record counted", func() bool {
		return metricValue(t, base, `nerstream_records_consumed_total{topic="docs"}`) == n &&
			metricValue(t, base, `nerstream_records_produced_total{topic="entities"}`) == n
	})
	kafkatest.ProduceDocs(t, brokers, n, n)
	waitUntil(t, 60*time.Second, "the counters to move on", func() bool {
		return metricValue(t, base, `nerstream_records_consumed_total{topic="docs"}`) == 2*n &&
			metricValue(t, base, `nerstream_records_produced_total{topic="entities"}`) == 2*n
	})
	_, metrics := get(t, base+"/metrics")
	for _, name := range []string{"nerstream_batch_size_bucket", "nerstream_record_latency_seconds_bucket", "nerstream_model_latency_seconds_bucket",
		"nerstream_model_tokens_total", "nerstream_model_tokens_per_second_bucket", "nerstream_documents_in_flight", "nerstream_consumer_lag{",
		"nerstream_engine_queue_depth", "nerstream_cache_hits_total", "nerstream_cache_evictions_total", "nerstream_cache_hit_ratio", "go_goroutines"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if v := metricValue(t, base, `nerstream_model_tokens_total{kind="input"}`); v <= 0 {
		t.Errorf("input tokens %v", v)
	}
	// Every text is new: each of its prompts missed, and is kept.
	if miss, held := metricValue(t, base, `nerstream_cache_misses_total`), metricValue(t, base, `nerstream_cache_entries`); miss < 2*n || held != miss {
		t.Errorf("cache misses %v, entries %v, want %d or more of each", miss, held, 2*n)
	}

	// The broker goes away.
	c.Close()
	waitUntil(t, 30*time.Second, "/readyz 503 after the broker is lost", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the broker is lost: %d; the process is alive", code)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue is the value of one series of /metrics (name and labels as
// exposed), or -1 when it is absent.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

var _ = json.Valid

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer = kafkatest.SyncBuffer
