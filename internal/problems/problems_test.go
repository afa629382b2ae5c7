package problems

import (
	"errors"
	"testing"
)

func TestList(t *testing.T) {
	var none List
	if none.Err() != nil {
		t.Fatal("an empty list is an error")
	}
	var sub List
	sub.Addf("ca_file", "%s holds no certificate", "x.pem")
	sub.Addf("[2]", "must not be empty")
	var l List
	l.Addf("max_docs", "must be > %d", 0)
	l.Add("tls", sub.Err())
	l.Add("sasl", errors.New("broken"))
	l.Add("ignored", nil)
	want := "max_docs: must be > 0; tls.ca_file: x.pem holds no certificate; tls[2]: must not be empty; sasl: broken"
	if got := l.Err().Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back List
	if !errors.As(l.Err(), &back) || len(back) != 4 {
		t.Errorf("errors.As: %v", back)
	}
}
