package llama

import (
	"sync"
	"testing"
)

// TestSizesWhileClosing calls ModelBytes and KVCacheBytes while Close
// frees the model: with -race, a read outside the life lock fails here.
// Each goroutine calls one of them only, so that the lock of the other
// does not order its reads.
func TestSizesWhileClosing(t *testing.T) {
	e := loadTiny(t, Options{})
	model, kv := e.ModelBytes(), e.KVCacheBytes()
	if model == 0 || kv == 0 {
		t.Fatalf("model %d bytes, KV cache %d bytes", model, kv)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range []struct {
		name string
		size func() uint64
		want uint64
	}{{"ModelBytes", e.ModelBytes, model}, {"KVCacheBytes", e.KVCacheBytes, kv}} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					n := f.size()
					if n == 0 {
						return // closed
					}
					if n != f.want {
						t.Errorf("%s = %d, want %d or 0", f.name, n, f.want)
						return
					}
				}
			}()
		}
	}
	close(start)
	e.Close()
	wg.Wait()
	if m, k := e.ModelBytes(), e.KVCacheBytes(); m != 0 || k != 0 {
		t.Errorf("after Close: model %d bytes, KV cache %d bytes", m, k)
	}
}
