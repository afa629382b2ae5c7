package kafkatest

import (
	"bytes"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that a process writes while a test reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Member is a `nerstream run` process that [StartMember] started.
type Member struct {
	// Base is its HTTP server, http://HOST:PORT.
	Base string
	// Stderr is what it wrote to standard error: its JSON log.
	Stderr *SyncBuffer
	// Exited is closed when the process has ended.
	Exited <-chan struct{}
}

// serving is the log line in which run announces its HTTP server.
var serving = regexp.MustCompile(`"msg":"http: serving[^}]*"address":"([^"]+)"`)

// StartMember starts cmd, a `nerstream run` whose http.address is set and
// whose log is JSON, and waits for the line that gives its server's
// address. The test fails at once, with the process's stderr, when it
// exits first. The process is killed when the test ends, and its stderr
// logged when the test failed.
func StartMember(t testing.TB, cmd *exec.Cmd) *Member {
	t.Helper()
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("run's stderr:\n%s", stderr.String())
		}
	})
	// A loaded machine is slow: a long bound, no timing assert.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := serving.FindStringSubmatch(stderr.String()); m != nil {
			return &Member{Base: "http://" + m[1], Stderr: stderr, Exited: exited}
		}
		select {
		case <-exited:
			t.Fatalf("run exited before it announced its server; stderr:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("run never announced its server")
		}
	}
}
