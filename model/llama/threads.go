package llama

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Why the thread count adapts (issue 17). ggml's CPU backend runs a graph
// on N threads that meet at a barrier after every node, and its barrier
// (ggml_barrier in ggml-cpu.c) spins: no yield, no sleep, no parameter to
// change that. ggml_threadpool_params.poll only governs how idle workers
// wait for the next graph, and llama.cpp, with no threadpool attached,
// makes a new pool for each graph, so nothing waits between graphs
// anyway. When other processes keep the CPUs busy, the kernel deschedules
// one of the N threads, and the others spin through their time slices at
// every barrier until it runs again: a decode slows by orders of magnitude
// (measured: 156 s against 0.31 s for one small document at load 12 on
// two cores). One thread has no barrier to wait at. So the default count
// is chosen before every decode: as many threads as there are CPUs that
// nothing else is running on, at least one, at most the ceiling below.

// threadSource says how many threads the next decode should run on.
type threadSource interface {
	threads() int
}

// fixedThreads is a thread count that the user chose.
type fixedThreads int

func (f fixedThreads) threads() int { return int(f) }

// adaptiveThreads picks a thread count before each decode from how many
// other threads are runnable on the machine now, so that the engine's
// threads never outnumber the CPUs they can get.
type adaptiveThreads struct {
	// ceiling is the most threads: the CPUs the process may use (Go's
	// GOMAXPROCS, which follows the cgroup CPU limit and the CPU
	// affinity), and no more than the physical cores, as llama.cpp's own
	// default (hyperthreads share a core's arithmetic units).
	ceiling int
	// cpus is the number of CPUs that the runnable count is shared by.
	cpus int
	// runnable reads the number of runnable threads on the machine, the
	// caller included; ok is false where the system does not say.
	runnable func() (n int, ok bool)
	// others is a moving average of the other runnable threads.
	others float64
	primed bool
}

// othersWeight is the weight of the newest reading in the moving average:
// a busy neighbour shows within two decodes, and one reading of a passing
// burst moves the count by at most one thread.
const othersWeight = 0.5

func (a *adaptiveThreads) threads() int {
	n, ok := a.runnable()
	if !ok {
		return a.ceiling
	}
	others := float64(max(n-1, 0)) // the caller is running
	if a.primed {
		others = othersWeight*others + (1-othersWeight)*a.others
	}
	a.others, a.primed = others, true
	free := a.cpus - int(math.Round(others))
	return min(max(free, 1), a.ceiling)
}

// newThreadSource is the thread count of options: fixed when they give
// one, else adaptive, read from the system.
func newThreadSource(fixed int) threadSource {
	if fixed > 0 {
		return fixedThreads(fixed)
	}
	return &adaptiveThreads{ceiling: defaultThreadCeiling(), cpus: runtime.NumCPU(), runnable: runnableThreads}
}

// defaultThreadCeiling is the most threads of the adaptive default:
// GOMAXPROCS, and no more than the physical cores where the system says.
func defaultThreadCeiling() int {
	n := runtime.GOMAXPROCS(0)
	if cores := physicalCores("/sys/devices/system/cpu"); cores > 0 {
		n = min(n, cores)
	}
	return max(n, 1)
}

// physicalCores counts the distinct cores (package and core id) of the
// online CPUs under a Linux sysfs cpu directory; 0 where it cannot tell.
func physicalCores(dir string) int {
	online, err := os.ReadFile(filepath.Join(dir, "online"))
	if err != nil {
		return 0
	}
	cpus, ok := parseCPUList(strings.TrimSpace(string(online)))
	if !ok {
		return 0
	}
	cores := map[[2]string]bool{}
	for _, c := range cpus {
		topo := filepath.Join(dir, "cpu"+strconv.Itoa(c), "topology")
		pkg, err1 := os.ReadFile(filepath.Join(topo, "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(topo, "core_id"))
		if err1 != nil || err2 != nil {
			return 0
		}
		cores[[2]string{strings.TrimSpace(string(pkg)), strings.TrimSpace(string(core))}] = true
	}
	return len(cores)
}

// parseCPUList parses a Linux CPU list such as "0-3,8,10-11". It refuses
// lists of more than 1<<16 CPUs.
func parseCPUList(s string) ([]int, bool) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, false
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, false
			}
		}
		if len(cpus)+b-a+1 > 1<<16 {
			return nil, false
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, len(cpus) > 0
}

// runnableThreads reads the number of runnable threads on the machine
// from /proc/loadavg's fourth field ("runnable/total"), which Linux
// counts at the moment of reading. Elsewhere it reports !ok.
func runnableThreads() (int, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	return parseLoadavgRunnable(string(b))
}

// parseLoadavgRunnable takes the runnable count out of a /proc/loadavg
// line ("0.87 1.76 2.28 3/110 16794").
func parseLoadavgRunnable(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return 0, false
	}
	run, _, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(run)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// threadedDecoder is a decoder whose thread count a threadSource picks
// before each decode; set applies a count (llama_set_n_threads).
type threadedDecoder struct {
	decoder
	source threadSource
	set    func(n int)
	cur    int
	stats  *counters
}

func (d *threadedDecoder) decode(b *batch) error {
	if n := d.source.threads(); n != d.cur {
		d.set(n)
		d.cur = n
	}
	d.stats.add(func(st *Stats) { st.DecodeThreads += d.cur })
	return d.decoder.decode(b)
}
