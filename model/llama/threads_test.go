package llama

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
)

func TestAdaptiveThreads(t *testing.T) {
	tests := []struct {
		name          string
		ceiling, cpus int
		runnable      []int // readings, the caller included; -1: unreadable
		want          []int // the count after each reading
	}{
		{"idle machine: the ceiling", 4, 4, []int{1, 1, 1}, []int{4, 4, 4}},
		{"nothing but us, small ceiling", 2, 8, []int{1}, []int{2}},
		{"a hog per CPU: one thread", 2, 2, []int{3, 3, 3}, []int{1, 1, 1}},
		{"more hogs than CPUs: still one", 4, 4, []int{13, 13}, []int{1, 1}},
		{"one busy neighbour of four CPUs", 4, 4, []int{2, 2, 2}, []int{3, 3, 3}},
		{"a hog starts, then stops", 2, 2, []int{1, 3, 3, 1, 1, 1}, []int{2, 1, 1, 1, 2, 2}},
		{"one passing reading moves it by one, for two decodes", 8, 8, []int{1, 1, 1, 3, 1, 1}, []int{8, 8, 8, 7, 7, 8}},
		{"free CPUs above the ceiling", 2, 16, []int{5, 5}, []int{2, 2}},
		{"unreadable: the ceiling", 3, 8, []int{-1, -1}, []int{3, 3}},
		{"zero runnable (a bad reading) counts as idle", 2, 2, []int{0}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			a := &adaptiveThreads{ceiling: tt.ceiling, cpus: tt.cpus, runnable: func() (int, bool) {
				n := tt.runnable[i]
				i++
				return n, n >= 0
			}}
			for k, want := range tt.want {
				if got := a.threads(); got != want {
					t.Fatalf("reading %d (%v so far): %d threads, want %d", k, tt.runnable[:k+1], got, want)
				}
			}
		})
	}
}

func TestParseLoadavgRunnable(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0.87 1.76 2.28 3/110 16794\n", 3, true},
		{"12.01 11.00 9.50 14/1203 99", 14, true},
		{"0.87 1.76 2.28", 0, false},
		{"0.87 1.76 2.28 3 16794", 0, false},
		{"0.87 1.76 2.28 x/110 16794", 0, false},
		{"0.87 1.76 2.28 -3/110 16794", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseLoadavgRunnable(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseLoadavgRunnable(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want int // CPUs; -1: refused
	}{
		{"0", 1},
		{"0-3", 4},
		{"0-3,8,10-11", 7},
		{"", -1},
		{"3-1", -1},
		{"0-x", -1},
		{"-1", -1},
		{"0-99999999", -1}, // not a list to allocate
	}
	for _, tt := range tests {
		cpus, ok := parseCPUList(tt.in)
		got := len(cpus)
		if !ok {
			got = -1
		}
		if got != tt.want {
			t.Errorf("parseCPUList(%q): %d CPUs, want %d", tt.in, got, tt.want)
		}
	}
}

// TestPhysicalCores reads a made-up sysfs: four CPUs that are two cores
// with two hyperthreads each.
func TestPhysicalCores(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("online", "0-3")
	for cpu, core := range []string{"0", "1", "0", "1"} {
		write(filepath.Join("cpu"+strconv.Itoa(cpu), "topology", "physical_package_id"), "0")
		write(filepath.Join("cpu"+strconv.Itoa(cpu), "topology", "core_id"), core)
	}
	if got := physicalCores(dir); got != 2 {
		t.Errorf("physicalCores: %d, want 2", got)
	}
	// A second package with the same core ids is two more cores.
	write("online", "0-5")
	for cpu := 4; cpu < 6; cpu++ {
		write(filepath.Join("cpu"+strconv.Itoa(cpu), "topology", "physical_package_id"), "1")
		write(filepath.Join("cpu"+strconv.Itoa(cpu), "topology", "core_id"), strconv.Itoa(cpu-4))
	}
	if got := physicalCores(dir); got != 4 {
		t.Errorf("physicalCores with two packages: %d, want 4", got)
	}
	// A CPU without topology: cannot tell.
	write("online", "0-6")
	if got := physicalCores(dir); got != 0 {
		t.Errorf("physicalCores with a CPU missing its topology: %d, want 0", got)
	}
	if got := physicalCores(filepath.Join(dir, "absent")); got != 0 {
		t.Errorf("physicalCores of no directory: %d, want 0", got)
	}
}

// countingSource is a threadSource test double that replays counts.
type countingSource struct {
	counts []int
	i      int
}

func (c *countingSource) threads() int {
	n := c.counts[c.i]
	c.i++
	return n
}

// TestThreadedDecoder checks that a count reaches llama.cpp only when it
// changes, and that the stats sum what each decode ran on.
func TestThreadedDecoder(t *testing.T) {
	var (
		set   []int
		stats counters
	)
	d := &threadedDecoder{decoder: newFakeDecoder(4, 64, 16, false), source: &countingSource{counts: []int{2, 2, 1, 1, 2}},
		set: func(n int) { set = append(set, n) }, cur: 2, stats: &stats}
	for i := range 5 {
		b := &batch{}
		b.add(1, int32(i), []int32{0}, false)
		if err := d.decode(b); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int{1, 2}; !slices.Equal(set, want) {
		t.Errorf("set %v, want %v (only the changes)", set, want)
	}
	if got := stats.get().DecodeThreads; got != 8 {
		t.Errorf("DecodeThreads = %d, want 2+2+1+1+2 = 8", got)
	}
}

// TestAdaptiveThreadsUnderHog runs the real engine with the default thread
// count while busy processes keep every CPU busy: each decode must run on
// one thread (more would spin at ggml's barriers), and the answers must be
// those of a fixed single thread.
func TestAdaptiveThreadsUnderHog(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("SKIPPED: the adaptive thread count reads /proc/loadavg, which this system lacks")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("SKIPPED: no sh to run the CPU hogs")
	}
	path, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	adaptive, err := Load(path, Options{Device: "CPU"}) // Threads 0: adaptive
	if err != nil {
		t.Fatal(err)
	}
	defer adaptive.Close()
	fixed := loadTiny(t, Options{Threads: 1})

	// One busy process per CPU, each bounded: it exits after a minute
	// whatever happens to the test.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range runtime.NumCPU() {
		hog := exec.CommandContext(ctx, sh, "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); hog.Wait() }()
	}
	// Wait until the hogs show as runnable.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, ok := runnableThreads(); ok && n > runtime.NumCPU() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CPU hogs never showed as runnable in /proc/loadavg")
		}
		time.Sleep(10 * time.Millisecond)
	}

	groups := testGroups(3)
	gen := model.GenerateOptions{MaxNewTokens: 8}
	got, err := adaptive.Generate(ctx, groups, gen)
	if err != nil {
		t.Fatal(err)
	}
	st := adaptive.Stats()
	if st.DecodeCalls == 0 || st.DecodeThreads != st.DecodeCalls {
		t.Errorf("under a hog per CPU: %d decodes on %d threads in all; want one thread each", st.DecodeCalls, st.DecodeThreads)
	}
	want, err := fixed.Generate(ctx, groups, gen)
	if err != nil {
		t.Fatal(err)
	}
	for g := range want {
		for p := range want[g] {
			if got[g][p].Text != want[g][p].Text {
				t.Errorf("group %d prompt %d: %q, want %q (one fixed thread)", g, p, got[g][p].Text, want[g][p].Text)
			}
		}
	}
}
