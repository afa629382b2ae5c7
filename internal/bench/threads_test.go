package bench

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/llama"
)

// TestMain makes this test binary a CPU hog when NERSTREAM_TEST_HOG is
// set: the hog processes of TestThreads are the binary itself.
func TestMain(m *testing.M) {
	if os.Getenv("NERSTREAM_TEST_HOG") == "1" {
		Hog(context.Background(), os.Stdin, time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestThreads runs the threads benchmark on the synthetic tiny model: a
// quiet phase and a phase with a busy process per CPU, the default and a
// fixed count in each. Under the hogs the default must choose one thread.
func TestThreads(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opened := map[int]int{}
	o := ThreadsOptions{
		EngineOptions: EngineOptions{Docs: 2, Types: 2, DocTokens: 20, MaxNewTokens: 4},
		Counts:        []int{1},
		Rounds:        1,
		Hog:           []string{"env", "NERSTREAM_TEST_HOG=1", exe},
		Open: func(ctx context.Context, threads int) (*engines.Model, error) {
			opened[threads]++
			return engines.Open(ctx, "synth:tiny", engines.Options{Llama: llama.Options{Threads: threads}, Devices: []string{"CPU"}})
		},
	}
	res, err := Threads(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 2 || res.Phases[0].Hogs != 0 || res.Phases[1].Hogs != runtime.NumCPU() {
		t.Fatalf("phases %+v; want a quiet one, then one with %d hogs", res.Phases, runtime.NumCPU())
	}
	if opened[0] != 2 || opened[1] != 2 {
		t.Errorf("models opened per thread count: %v; want the default and 1, once per phase", opened)
	}
	for _, ph := range res.Phases {
		if len(ph.Settings) != 2 || ph.Settings[0].Threads != 0 || ph.Settings[1].Threads != 1 {
			t.Fatalf("%d hogs: settings %+v", ph.Hogs, ph.Settings)
		}
		for _, s := range ph.Settings {
			if s.DocsPerS <= 0 || len(s.Runs) != 1 || s.MeanThreads < 1 {
				t.Errorf("%d hogs, threads %d: %+v", ph.Hogs, s.Threads, s)
			}
		}
		if ph.BestFixed != 1 || ph.Slowdown != ph.Settings[1].DocsPerS/ph.Settings[0].DocsPerS {
			t.Errorf("%d hogs: best %d, slowdown %v", ph.Hogs, ph.BestFixed, ph.Slowdown)
		}
	}
	if got := res.Phases[1].Settings[0].MeanThreads; got != 1 {
		t.Errorf("the default ran on %.2f threads on average with a busy process per CPU; want 1", got)
	}
	if want := res.Phases[0].Slowdown <= threadsTarget && res.Phases[1].Slowdown <= threadsTarget; res.TargetMet != want {
		t.Errorf("target_met %v with slowdowns %v and %v", res.TargetMet, res.Phases[0].Slowdown, res.Phases[1].Slowdown)
	}
}

func TestThreadsOptions(t *testing.T) {
	open := func(context.Context, int) (*engines.Model, error) { return nil, errors.New("not opened") }
	base := ThreadsOptions{EngineOptions: EngineOptions{Docs: 1, Types: 1, DocTokens: 10, MaxNewTokens: 1}, Hog: []string{"true"}, Open: open}
	for name, change := range map[string]func(*ThreadsOptions){
		"no docs":         func(o *ThreadsOptions) { o.Docs = 0 },
		"a zero count":    func(o *ThreadsOptions) { o.Counts = []int{1, 0} },
		"negative hogs":   func(o *ThreadsOptions) { o.Hogs = -1 },
		"no hog command":  func(o *ThreadsOptions) { o.Hog = nil },
		"no model opener": func(o *ThreadsOptions) { o.Open = nil },
	} {
		o := base
		change(&o)
		if _, err := Threads(t.Context(), o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v, want ErrOptions", name, err)
		}
	}
}

// TestHogStops: a hog ends when its standard input closes, and by its
// limit.
func TestHogStops(t *testing.T) {
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Hog(t.Context(), r, time.Hour) }()
	w.Close()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the hog went on after its input closed")
	}
	r2, w2 := io.Pipe()
	defer w2.Close()
	go func() { done <- Hog(t.Context(), r2, 50*time.Millisecond) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the hog went on past its limit")
	}
}
