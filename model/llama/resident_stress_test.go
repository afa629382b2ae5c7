package llama

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// stressPrompt returns a prompt that begins with some of the preamble
// (all, part, none, or more than it), for the resident prefix's stress
// test.
func stressPrompt(rng *rand.Rand) []int32 {
	var words []int32
	switch rng.IntN(6) {
	case 0: // none of the preamble
	case 1: // part of it
		words = slices.Clone(fakePreamble[:rng.IntN(len(fakePreamble))])
	case 2: // the preamble and a repeated start
		words = append(slices.Clone(fakePreamble), 20, 21, 22)
	default:
		words = slices.Clone(fakePreamble)
	}
	words = append(words, passage(rng.IntN(40), rng.IntN(12))...)
	typ := []int32{typList, typEOS, typLong, typOther}[rng.IntN(4)]
	p := fakePrompt(typ, words...)
	if rng.IntN(20) == 0 {
		// Short: BOS and a part of the preamble, ending in fkAsk.
		p = append([]int32{fkBOS}, fakePreamble[:rng.IntN(len(fakePreamble))]...)
		p = append(p, typList, fkAsk)
	}
	return p
}

// TestResidentStress runs many callers against the fake with the resident
// prefix toggled, requests cancelled, decodes failing, serial requests and
// probes mixed in, and checks the reservations at every decode, the
// answers of the requests that succeed, and that the engine let go of
// everything at the end.
func TestResidentStress(t *testing.T) {
	for seed := range stressSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			o := fakeOptions{sequences: 1 + rng.IntN(8), cells: 40 + rng.IntN(200), batchTokens: 8 + rng.IntN(40)}
			e := startFake(t, o)
			var errs []string
			checkReservations(e, &errs)
			check, after := e.f.hook, e.f.after
			failRng := rand.New(rand.NewPCG(uint64(seed), 9))
			probing := false
			e.f.hook = func(call int, b *batch) error {
				probing = len(b.seqs) == o.batchTokens && len(e.s.active) == 0 && len(e.s.probes) > 0
				if !probing {
					check(call, b)
				}
				if failRng.IntN(60) == 0 {
					return errFakeDecode
				}
				return nil
			}
			e.f.after = func(call int) {
				if !probing {
					after(call)
				}
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var cerrs []string
			for c := range 4 {
				crng := rand.New(rand.NewPCG(uint64(seed), uint64(c)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 12 {
						switch crng.IntN(10) {
						case 0:
							e.s.residentOn.Store(crng.IntN(2) == 0)
							continue
						case 1:
							req := &request{ctx: context.Background(), probe: passage(0, o.batchTokens), pending: 1, finished: make(chan struct{})}
							if o.cells >= o.batchTokens {
								e.s.do(context.Background(), req)
							}
							continue
						}
						maxNew := 1 + crng.IntN(8)
						var groups [][][]int32
						for range 1 + crng.IntN(4) {
							var g [][]int32
							for range 1 + crng.IntN(5) {
								p := stressPrompt(crng)
								if len(p)+maxNew > o.cells {
									continue
								}
								g = append(g, p)
							}
							groups = append(groups, g)
						}
						ctx, cancel := context.WithCancel(context.Background())
						if crng.IntN(5) == 0 {
							time.AfterFunc(time.Duration(crng.IntN(2000))*time.Microsecond, cancel)
						}
						out, err := e.generate(ctx, groups, maxNew, crng.IntN(6) == 0)
						cancel()
						if err != nil {
							if !errors.Is(err, context.Canceled) && !errors.Is(err, errFakeDecode) {
								mu.Lock()
								cerrs = append(cerrs, err.Error())
								mu.Unlock()
							}
							continue
						}
						for gi, g := range groups {
							for pi, p := range g {
								want := wantAnswer(p, maxNew)
								if c := out[gi][pi]; c.Text != want.Text || c.Err != nil {
									mu.Lock()
									cerrs = append(cerrs, fmt.Sprintf("prompt %v: %q (%v), want %q", p, c.Text, c.Err, want.Text))
									mu.Unlock()
								}
							}
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the callers did not finish: the scheduler hangs")
			}
			e.stop()
			mu.Lock()
			for _, m := range append(errs, cerrs...) {
				t.Error(m)
			}
			mu.Unlock()
			e.checkIdle(t)
			st := e.stats.get()
			t.Logf("%+v: %d copies, %d resident tokens, %d decodes", o, e.f.copies, st.ResidentTokens, e.f.calls)
		})
	}
}

// stressSeeds is the number of runs of TestResidentStress.
var stressSeeds = 100
