package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nerstream/nerstream/internal/localbroker"
)

// The markers of the README's Quickstart blocks: the HTML comment on the
// line before each ```sh block says how TestQuickstart treats it.
var (
	markerRE = regexp.MustCompile(`^<!-- quickstart: (run|start|skip)(?:, ready when it prints "([^"]+)"|: (.+))? -->$`)
	idRE     = regexp.MustCompile(`"id":\s*"([^"]+)"`)
)

// quickstartBlock is one shell block of the Quickstart, with its marker.
type quickstartBlock struct {
	line  int    // of the fence, 1-based
	kind  string // run, start or skip
	ready string // for start: the text that says it is ready
	code  string
}

// quickstartBlocks reads the shell blocks of README.md's Quickstart
// section. Every block must have a marker.
func quickstartBlocks(t *testing.T, readme string) []quickstartBlock {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []quickstartBlock
	var in, inBlock bool
	var prev string // the last non-empty line before a fence
	var cur *quickstartBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inBlock:
			if line == "```" {
				blocks = append(blocks, *cur)
				inBlock, cur = false, nil
			} else {
				cur.code += line + "\n"
			}
			continue
		case strings.HasPrefix(line, "## "):
			in = line == "## Quickstart"
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "```") {
			if line != "```sh" {
				t.Fatalf("README.md:%d: a %q block in the Quickstart; its blocks are ```sh", n, line)
			}
			m := markerRE.FindStringSubmatch(prev)
			if m == nil {
				t.Fatalf("README.md:%d: a Quickstart block without a marker (<!-- quickstart: run|start|skip… --> on the line before; see the section's last paragraph); the line before is %q", n, prev)
			}
			if m[1] == "skip" && m[3] == "" {
				t.Fatalf("README.md:%d: quickstart: skip says no reason", n)
			}
			cur, inBlock = &quickstartBlock{line: n, kind: m[1], ready: m[2]}, true
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inBlock {
		t.Fatal("README.md: a Quickstart block is not closed")
	}
	return blocks
}

// TestQuickstart is the test of issue 17's "Done when": on a fresh clone,
// a person following only the README gets the demo, the tests, and `run`
// annotating the documents they produced with kcat to the local broker. It
// runs the README's Quickstart blocks as written (see the markers), with
// bin/nerstream being this test binary, and checks that the kcat consumer
// prints an annotation for each document that the kcat producer wrote.
// It runs in a private network namespace (unshare -rn) where one can be
// made, so that the README's fixed port 9092 is free however busy the
// machine; elsewhere on the machine's loopback, if the port is free.
func TestQuickstart(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("NERSTREAM_REQUIRE_KCAT") != "" {
			t.Fatal("kcat is not installed, and NERSTREAM_REQUIRE_KCAT is set (CI installs it: apt-get install kcat)")
		}
		t.Skip("kcat is not installed (apt-get install kcat); .ci/run installs it and sets NERSTREAM_REQUIRE_KCAT")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("the README's blocks are bash: %v", err)
	}
	readme, err := filepath.Abs("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := quickstartBlocks(t, readme)
	checkQuickstartShape(t, blocks)

	const inside = "NERSTREAM_TEST_QUICKSTART_NETNS"
	switch {
	case os.Getenv(inside) == "1":
		if err := loopbackUp(); err != nil {
			t.Fatalf("bringing up the private namespace's loopback: %v", err)
		}
	case privateNetwork():
		// This test again, in a network namespace of its own.
		cmd := exec.Command("unshare", "-rn", os.Args[0], "-test.run=^TestQuickstart$", "-test.count=1", "-test.v", "-test.timeout=10m")
		cmd.Env = append(os.Environ(), inside+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a private network namespace (unshare -rn):\n%s", out)
		if err != nil {
			t.Fatalf("the Quickstart failed: %v", err)
		}
		return
	default:
		ln, err := net.Listen("tcp", localbroker.DefaultListen)
		if err != nil {
			t.Fatalf("no private network namespace here (unshare -rn), and the Quickstart's broker address is taken: %v", err)
		}
		ln.Close()
		t.Log("no private network namespace here (unshare -rn): on the machine's loopback")
	}
	runQuickstart(t, blocks)
}

// checkQuickstartShape: the blocks that the test runs hold the steps of
// issue 17's Quickstart: the local broker and run, each in a terminal of
// its own, and kcat producing and consuming.
func checkQuickstartShape(t *testing.T, blocks []quickstartBlock) {
	t.Helper()
	has := func(kind, cmd string) bool {
		return slices.ContainsFunc(blocks, func(b quickstartBlock) bool { return b.kind == kind && strings.Contains(b.code, cmd) })
	}
	for _, want := range []struct{ kind, cmd string }{
		{"start", "bin/nerstream broker"}, {"start", "bin/nerstream run "}, {"run", "kcat -P"}, {"run", "kcat -C"},
	} {
		if !has(want.kind, want.cmd) {
			t.Errorf("no %q block of the Quickstart runs %q", want.kind, want.cmd)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// started is a start block, running.
type started struct {
	block  quickstartBlock
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error // Wait's answer, once
	done   bool       // exited has been received from
}

// wait waits up to timeout (0: not at all) for the block to exit, and
// returns whether it exited, and its error.
func (s *started) wait(timeout time.Duration) (exited bool, err error) {
	if timeout <= 0 {
		select {
		case err := <-s.exited:
			s.done = true
			return true, err
		default:
			return false, nil
		}
	}
	select {
	case err := <-s.exited:
		s.done = true
		return true, err
	case <-time.After(timeout):
		return false, nil
	}
}

// runQuickstart runs the blocks in a folder that stands for the clone:
// bin/nerstream is this test binary, examples/ the repository's.
func runQuickstart(t *testing.T, blocks []quickstartBlock) {
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nNERSTREAM_TEST_MAIN=1 exec '%s' \"$@\"\n", exe)
	if err := os.WriteFile(filepath.Join(root, "bin", "nerstream"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(examples, filepath.Join(root, "examples")); err != nil {
		t.Fatal(err)
	}
	// The reader's environment, less any NERSTREAM_* setting of theirs
	// (the tests' own kept), and a model cache of its own.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		mine := strings.HasPrefix(k, "NERSTREAM_TEST_") || strings.HasPrefix(k, "NERSTREAM_REQUIRE_")
		if (!strings.HasPrefix(k, "NERSTREAM_") || mine) && k != "NERSTREAM_TEST_QUICKSTART_NETNS" {
			env = append(env, kv)
		}
	}
	env = append(env, "NERSTREAM_MODEL_DIR="+t.TempDir())

	var running []*started
	var report strings.Builder // every block's output, for a failure
	defer func() {
		if t.Failed() {
			for _, s := range running {
				fmt.Fprintf(&report, "--- README.md:%d (start) ---\n%s", s.block.line, s.out.String())
			}
			t.Logf("the blocks' output:\n%s", report.String())
		}
		for _, s := range running {
			if !s.done {
				syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.exited
			}
		}
	}()
	const blockTimeout = 2 * time.Minute
	var produced, consumed []string
	for _, b := range blocks {
		switch b.kind {
		case "skip":
			continue
		case "start":
			s := &started{block: b, out: &syncBuffer{}, exited: make(chan error, 1)}
			s.cmd = exec.Command("bash", "-c", b.code)
			s.cmd.Dir, s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = root, env, s.out, s.out
			s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := s.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { s.exited <- s.cmd.Wait() }()
			running = append(running, s)
			if b.ready != "" {
				start := time.Now()
				waitPrinted(t, s, b.ready, blockTimeout)
				t.Logf("README.md:%d ready in %s", b.line, time.Since(start).Round(time.Millisecond))
			}
		case "run":
			var out, errb syncBuffer
			cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", b.code)
			cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, &out, &errb
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			start := time.Now()
			err := runFor(cmd, blockTimeout)
			t.Logf("README.md:%d ran in %s", b.line, time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(&report, "--- README.md:%d (run) ---\n%s%s", b.line, out.String(), errb.String())
			if err != nil {
				t.Fatalf("README.md:%d: %v", b.line, err)
			}
			if strings.Contains(b.code, "kcat -P") {
				for _, m := range idRE.FindAllStringSubmatch(b.code, -1) {
					produced = append(produced, m[1])
				}
			}
			if strings.Contains(b.code, "kcat -C") {
				consumed = append(consumed, annotationIDs(t, b.line, out.String())...)
			}
		}
	}
	// Ctrl-C in each terminal, the last started first (run, then its
	// broker): each stops and exits 0.
	for _, s := range slices.Backward(running) {
		if gone, err := s.wait(0); gone {
			t.Errorf("README.md:%d exited (%v) before it was stopped", s.block.line, err)
			continue
		}
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
		ok, err := s.wait(blockTimeout)
		switch {
		case !ok:
			t.Fatalf("README.md:%d: still running %s after SIGINT", s.block.line, blockTimeout)
		case err != nil:
			t.Errorf("README.md:%d: after SIGINT: %v", s.block.line, err)
		}
	}
	slices.Sort(produced)
	slices.Sort(consumed)
	if len(produced) == 0 || !slices.Equal(produced, consumed) {
		t.Errorf("kcat -C printed annotations of %q; kcat -P produced %q", consumed, produced)
	}
}

// waitPrinted waits until the started block has printed text. It fails
// when the block exits first, or after timeout.
func waitPrinted(t *testing.T, s *started, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.out.String(), text) {
		select {
		case err := <-s.exited:
			s.done = true
			t.Fatalf("README.md:%d exited (%v), having printed %q: %v; a start block runs until it is stopped", s.block.line, err, text, strings.Contains(s.out.String(), text))
		case <-deadline:
			t.Fatalf("README.md:%d did not print %q in %s", s.block.line, text, timeout)
		case <-tick.C:
		}
	}
}

// runFor runs cmd, killing its process group after timeout.
func runFor(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("still running after %s", timeout)
	}
}

// annotationIDs are the ids of the annotation records, one JSON object a
// line, that a block printed; each must be a whole annotation.
func annotationIDs(t *testing.T, line int, out string) []string {
	t.Helper()
	var ids []string
	for l := range strings.Lines(out) {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var a struct {
			ID     string `json:"id"`
			Source *struct {
				Topic  string `json:"topic"`
				Offset *int64 `json:"offset"`
			} `json:"source"`
			Model       string            `json:"model"`
			EntityTypes []string          `json:"entity_types"`
			Entities    []json.RawMessage `json:"entities"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Errorf("README.md:%d printed %q: %v", line, l, err)
			continue
		}
		if a.Source == nil || a.Source.Topic == "" || a.Source.Offset == nil || a.Model == "" || len(a.EntityTypes) == 0 || a.Entities == nil {
			t.Errorf("README.md:%d printed %q, not an annotation record", line, l)
		}
		ids = append(ids, a.ID)
	}
	return ids
}

// privateNetwork reports whether this test can run itself in a network
// namespace of its own.
func privateNetwork() bool {
	if _, err := exec.LookPath("unshare"); err != nil {
		return false
	}
	return exec.Command("unshare", "-rn", "true").Run() == nil
}
