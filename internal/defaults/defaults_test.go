package defaults

import (
	"reflect"
	"testing"
	"time"
)

type inner struct {
	Name  string
	Ratio float64
}

type opts struct {
	N       int
	D       time.Duration
	S       string
	List    []string
	Map     map[string]string
	Ptr     *int
	On      bool
	Inner   inner
	private int
}

func TestFill(t *testing.T) {
	seven := 7
	def := opts{N: 3, D: time.Second, S: "x", List: []string{"a"}, Map: map[string]string{"k": "v"}, Ptr: &seven, On: true,
		Inner: inner{Name: "in", Ratio: 0.5}, private: 9}
	got := Fill(opts{N: 5, Inner: inner{Ratio: 0.25}}, def)
	want := def
	want.N, want.Inner.Ratio, want.private = 5, 0.25, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Fill = %+v\nwant  %+v", got, want)
	}
	// Negative and non-empty values are settings, not zeros.
	got = Fill(opts{N: -1, S: "y", List: []string{}}, def)
	if got.N != -1 || got.S != "y" || got.List == nil || len(got.List) != 0 {
		t.Errorf("settings were replaced: %+v", got)
	}
}
